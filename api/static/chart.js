/* ecocluster's own small SVG charts: a time-series line chart with alert bands, and a
   site map drawn from coordinates. No third-party code, no network. */
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }
  function text(parent, x, y, s, attrs) {
    const t = el("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    t.textContent = s;
    return t;
  }
  function niceNumber(v, fmt) {
    return fmt ? fmt(v) : (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1));
  }

  /* opts: {series: [{ts: [ms], values: [num|null], cls}], bands: [{from, to, cls}],
     from, to (ms), tz, title, format(v), lang, width, height} */
  function line(container, opts) {
    const W = opts.width || 480, H = opts.height || 150;
    const m = { l: 44, r: 8, t: 16, b: 20 };
    container.textContent = "";
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" }, container);
    if (opts.title) el("title", {}, svg).textContent = opts.title;
    const from = opts.from, to = opts.to;
    let lo = Infinity, hi = -Infinity;
    for (const s of opts.series) for (const v of s.values) {
      if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    lo = Math.min(lo, 0);
    if (hi === lo) hi = lo + 1;
    hi = hi * 1.08;
    const x = (t) => m.l + ((t - from) / (to - from)) * (W - m.l - m.r);
    const y = (v) => H - m.b - ((v - lo) / (hi - lo)) * (H - m.t - m.b);
    for (const b of opts.bands || []) {
      const x0 = Math.max(x(b.from), m.l), x1 = Math.min(x(b.to), W - m.r);
      if (x1 > x0) el("rect", { x: x0, y: m.t, width: x1 - x0, height: H - m.t - m.b,
        class: "band " + (b.cls || "") }, svg);
    }
    el("line", { x1: m.l, y1: H - m.b, x2: W - m.r, y2: H - m.b, class: "axis" }, svg);
    el("line", { x1: m.l, y1: m.t, x2: m.l, y2: H - m.b, class: "axis" }, svg);
    text(svg, m.l - 4, y(hi / 1.08) + 3, niceNumber(hi / 1.08, opts.format), { "text-anchor": "end" });
    text(svg, m.l - 4, H - m.b, niceNumber(lo, opts.format), { "text-anchor": "end" });
    const fmt = new Intl.DateTimeFormat(opts.lang || "it", { hour: "2-digit", minute: "2-digit",
      timeZone: opts.tz || undefined });
    const ticks = 4;
    for (let i = 0; i <= ticks; i++) {
      const t = from + ((to - from) * i) / ticks;
      text(svg, x(t), H - 6, fmt.format(new Date(t)),
        { "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" });
    }
    for (const s of opts.series) {
      let d = "", pen = false;
      for (let i = 0; i < s.ts.length; i++) {
        const v = s.values[i];
        if (v === null || !isFinite(v) || s.ts[i] < from || s.ts[i] > to) { pen = false; continue; }
        d += (pen ? "L" : "M") + x(s.ts[i]).toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
      }
      if (d) el("path", { d: d, class: "line " + (s.cls || "") }, svg);
    }
    if (opts.caption) text(svg, m.l + 4, 11, opts.caption, { class: "title" });
    return svg;
  }

  /* sites: [{site, name, lat, lon, cls}] → dots on an equirectangular projection. */
  function map(container, sites) {
    container.textContent = "";
    const W = 480, H = 320, pad = 24;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
    if (!sites.length) return svg;
    const lats = sites.map((s) => s.lat), lons = sites.map((s) => s.lon);
    const midLat = (Math.min(...lats) + Math.max(...lats)) / 2;
    const k = Math.cos((midLat * Math.PI) / 180);
    const minX = Math.min(...lons) * k, maxX = Math.max(...lons) * k;
    const minY = Math.min(...lats), maxY = Math.max(...lats);
    const span = Math.max(maxX - minX, maxY - minY, 0.01);
    const scale = Math.min((W - 2 * pad) / span, (H - 2 * pad) / span);
    const ox = (W - (maxX - minX) * scale) / 2, oy = (H - (maxY - minY) * scale) / 2;
    const order = { ok: 0, info: 1, warning: 2, critical: 3 };
    const sorted = sites.slice().sort((a, b) => order[a.cls] - order[b.cls]);
    for (const s of sorted) {
      const cx = ox + (s.lon * k - minX) * scale, cy = H - (oy + (s.lat - minY) * scale);
      const g = el("g", { "data-site": s.site }, svg);
      el("title", {}, g).textContent = s.label || s.name;
      el("circle", { cx: cx, cy: cy, r: s.cls === "ok" ? 5 : 7, class: s.cls }, g);
      text(g, cx + 8, cy + 3, s.name.length > 18 ? s.name.slice(0, 17) + "…" : s.name);
    }
    return svg;
  }

  window.EcoChart = { line: line, map: map };
})();
