/* The territory's public page: air quality (European Air Quality Index) per station, the
   territory's energy and water this month against last year, and alerts of public interest,
   in Italian and English. One fetch of /api/v1/public/summary, refreshed every 5 minutes
   while the page is visible (the browser revalidates with the server's ETag); the last
   answer is kept so a failed fetch still shows data, with its time. Everything that comes
   from the server is inserted as text, never as HTML. No third-party code, no network
   beyond this server. */
"use strict";
(function () {
  const SUMMARY_URL = "/api/v1/public/summary";
  const OPENDATA_URL = "/api/v1/public/opendata";
  const REFRESH_MS = 5 * 60 * 1000;
  const STORE_KEY = "eco.public.summary";
  const LANG_KEY = "eco.public.lang";
  const LEVELS = ["good", "fair", "moderate", "poor", "very_poor", "extremely_poor"];
  const POLLUTANTS = { pm2_5: "PM2.5", pm10: "PM10", no2: "NO₂", o3: "O₃", so2: "SO₂" };
  const ORDER = Object.keys(POLLUTANTS);
  const rank = (p) => { const i = ORDER.indexOf(norm(p)); return i < 0 ? ORDER.length : i; };
  const DATASETS = ["eaqi-now", "stations-hourly", "consumption-monthly", "alerts"];
  const HOUR = 3600000;
  const LOCALES = { it: "it-IT", en: "en-GB" }; // a European park: 24-hour clock, day before month

  const I18N = {
    it: {
      skip: "Vai ai contenuti", title: "Il territorio oggi", page: "aria, energia e acqua",
      subtitle: "Aria, energia e acqua: come sta il territorio",
      air_title: "Qualità dell'aria",
      air_note: "Indice europeo di qualità dell'aria (EAQI) dell'Agenzia europea dell'ambiente, "
        + "dal livello 1 (buona) al 6 (estremamente scadente).",
      use_title: "Energia e acqua del territorio", alerts_title: "Avvisi di interesse pubblico",
      opendata_lead: "Dati aperti", catalogue: "catalogo (JSON)",
      loading: "Caricamento dei dati…", updated: "Dati aggiornati: {time}",
      stale: "Aggiornamento non riuscito: questi sono i dati di {time}.",
      none: "Nessun dato disponibile al momento. Riproveremo tra poco.",
      aq_now: "Qualità dell'aria ora", no_level: "Nessun dato",
      good: "Buona", fair: "Discreta", moderate: "Moderata", poor: "Scadente",
      very_poor: "Molto scadente", extremely_poor: "Estremamente scadente",
      level_of: "livello {n} di 6", set_by: "determinata da {p}", at: "alle {time}",
      advice_good: "Si possono svolgere le normali attività all'aperto.",
      advice_fair: "Si possono svolgere le normali attività all'aperto.",
      advice_moderate: "Chi ha sintomi può ridurre le attività intense all'aperto.",
      advice_poor: "Meglio ridurre le attività fisiche all'aperto, soprattutto se si hanno sintomi.",
      advice_very_poor: "Ridurre le attività fisiche all'aperto.",
      advice_extremely_poor: "Evitare le attività fisiche all'aperto.",
      advice_none: "Dati insufficienti per calcolare l'indice.",
      pollutants: "Inquinanti", avg_1h: "media oraria", avg_24h: "media 24 ore",
      avg_8h: "massima media mobile di 8 ore del giorno", missing: "manca: {p}",
      not_captured: "dati insufficienti", altitude: "{m} m s.l.m.",
      chart_caption: "Ultime 48 ore, medie orarie in µg/m³",
      chart_title: "{station}: concentrazioni orarie degli inquinanti nelle ultime 48 ore",
      table: "Valori orari in tabella", hour: "Ora", no_chart: "Nessun dato nelle ultime 48 ore.",
      limits_ok: "Nessun valore limite o soglia superato.",
      limits_unknown: "Dati insufficienti per verificare limiti e soglie.",
      limit_value: "{p} oltre il valore limite{avg}: {v}, limite {l}",
      information_threshold: "{p} oltre la soglia di informazione{avg}: {v}, soglia {l}",
      alert_threshold: "{p} oltre la soglia di allarme{avg}: {v}, soglia {l}",
      alert_rule: "{p} oltre la soglia di attenzione del territorio{avg}: {v}, soglia {l}",
      since: "dalle {time}", no_stations: "Nessuna stazione pubblica di qualità dell'aria.",
      energy_kwh: "Energia elettrica", water_m3: "Acqua",
      to_date: "{month}, dal 1 al {day} (mese in corso)", full_month: "{month}",
      last_to_date: "Stessi giorni del {year}: {v}", last_full: "Stesso mese del {year}: {v}",
      change: "{pct} rispetto al {year}", change_none: "Variazione: —",
      no_last_year: "nessun dato del {year}", no_consumption: "Nessun dato sui consumi.",
      not_comparable: "non confrontabile: i contatori sono cambiati",
      info: "Informazione", warning: "Attenzione", critical: "Allerta",
      open: "in corso", resolved: "risolto", alert_since: "dalle {time}",
      resolved_at: "risolto alle {time}", no_alerts: "Nessun avviso in corso o recente.",
      licence: "Licenza dei dati:", csv: "CSV", json: "JSON",
      "eaqi-now": "indice dell'aria ora", "stations-hourly": "medie orarie delle stazioni",
      "consumption-monthly": "consumi mensili", alerts: "avvisi",
    },
    en: {
      skip: "Skip to content", title: "The territory today", page: "air, energy and water",
      subtitle: "Air, energy and water: how the territory is doing",
      air_title: "Air quality",
      air_note: "European Air Quality Index (EAQI) of the European Environment Agency, "
        + "from level 1 (good) to 6 (extremely poor).",
      use_title: "The territory's energy and water", alerts_title: "Public notices",
      opendata_lead: "Open data", catalogue: "catalogue (JSON)",
      loading: "Loading data…", updated: "Data updated: {time}",
      stale: "Could not update: this is the data of {time}.",
      none: "No data available right now. We will try again shortly.",
      aq_now: "Air quality now", no_level: "No data",
      good: "Good", fair: "Fair", moderate: "Moderate", poor: "Poor",
      very_poor: "Very poor", extremely_poor: "Extremely poor",
      level_of: "level {n} of 6", set_by: "set by {p}", at: "at {time}",
      advice_good: "Enjoy your usual outdoor activities.",
      advice_fair: "Enjoy your usual outdoor activities.",
      advice_moderate: "If you have symptoms, consider reducing intense outdoor activities.",
      advice_poor: "Consider reducing physical activities outdoors, especially if you have symptoms.",
      advice_very_poor: "Reduce physical activities outdoors.",
      advice_extremely_poor: "Avoid physical activities outdoors.",
      advice_none: "Not enough data to compute the index.",
      pollutants: "Pollutants", avg_1h: "1-hour mean", avg_24h: "24-hour mean",
      avg_8h: "maximum daily 8-hour mean", missing: "missing: {p}",
      not_captured: "not enough data", altitude: "{m} m above sea level",
      chart_caption: "Last 48 hours, hourly means in µg/m³",
      chart_title: "{station}: hourly pollutant concentrations over the last 48 hours",
      table: "Hourly values as a table", hour: "Hour", no_chart: "No data in the last 48 hours.",
      limits_ok: "No limit value or threshold exceeded.",
      limits_unknown: "Not enough data to check limits and thresholds.",
      limit_value: "{p} above the limit value{avg}: {v}, limit {l}",
      information_threshold: "{p} above the information threshold{avg}: {v}, threshold {l}",
      alert_threshold: "{p} above the alert threshold{avg}: {v}, threshold {l}",
      alert_rule: "{p} above the territory's alert level{avg}: {v}, level {l}",
      since: "since {time}", no_stations: "No public air-quality station.",
      energy_kwh: "Electricity", water_m3: "Water",
      to_date: "{month}, 1 to {day} (month to date)", full_month: "{month}",
      last_to_date: "Same days in {year}: {v}", last_full: "Same month in {year}: {v}",
      change: "{pct} compared with {year}", change_none: "Change: —",
      no_last_year: "no data for {year}", no_consumption: "No consumption data.",
      not_comparable: "not comparable: the meters have changed",
      info: "Information", warning: "Warning", critical: "Alert",
      open: "ongoing", resolved: "resolved", alert_since: "since {time}",
      resolved_at: "resolved at {time}", no_alerts: "No current or recent notices.",
      licence: "Data licence:", csv: "CSV", json: "JSON",
      "eaqi-now": "air quality index now", "stations-hourly": "station hourly means",
      "consumption-monthly": "monthly use", alerts: "notices",
    },
  };

  const state = { lang: pickLang(), data: null, failed: false, loading: true, timer: null,
    lastAttempt: 0, width: 0 };
  const $ = (sel) => document.querySelector(sel);
  const loc = () => LOCALES[state.lang] || "it-IT";

  function t(key, vars) {
    const table = I18N[state.lang] || I18N.it;
    let s = key in table ? table[key] : key;
    for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  function pickLang() {
    const asked = new URLSearchParams(location.search).get("lang");
    if (asked === "it" || asked === "en") return asked;
    const saved = recall(LANG_KEY);
    if (saved === "it" || saved === "en") return saved;
    for (const tag of navigator.languages || [navigator.language || ""]) {
      const base = String(tag).slice(0, 2).toLowerCase();
      if (base === "it" || base === "en") return base;
    }
    return "en"; // a visitor whose browser asks for neither reads English more likely
  }

  function recall(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }
  function keep(key, value) {
    try { localStorage.setItem(key, value); } catch (e) { /* private mode or full: fine */ }
  }

  // -- building blocks: text only -------------------------------------------------------------
  function make(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, String(v));
    }
    for (const c of children || []) {
      if (c !== null && c !== undefined) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }
  const isNum = (v) => typeof v === "number" && isFinite(v);
  const str = (v) => (typeof v === "string" ? v : v === null || v === undefined ? "" : String(v));
  const ms = (iso) => { const v = Date.parse(iso); return isFinite(v) ? v : null; };

  function num(v, digits) {
    if (!isNum(v)) return "—";
    return new Intl.NumberFormat(loc(), { maximumFractionDigits: digits }).format(v);
  }
  function tz() {
    const zone = state.data && state.data.territory && state.data.territory.timezone;
    try { new Intl.DateTimeFormat("en", { timeZone: zone }); return zone || undefined; } catch (e) { return undefined; }
  }
  function when(iso) {
    const v = ms(iso);
    if (v === null) return "—";
    return new Intl.DateTimeFormat(loc(), { weekday: "short", day: "numeric", month: "short",
      hour: "2-digit", minute: "2-digit", timeZone: tz() }).format(new Date(v));
  }
  function amount(v, unit) {
    if (!isNum(v)) return "—";
    if (unit === "kWh" && Math.abs(v) >= 10000) return num(v / 1000, 1) + " MWh";
    return num(v, Math.abs(v) >= 100 ? 0 : 1) + " " + unit;
  }
  function pct(v) {
    if (!isNum(v)) return "—";
    const s = new Intl.NumberFormat(loc(), { maximumFractionDigits: 1 }).format(Math.abs(v));
    return (v > 0 ? "+" : v < 0 ? "−" : "±") + s + " %";
  }
  /** The contract says "pm2_5"; the store says "pm25_ugm3": accept both. */
  function norm(p) {
    const base = str(p).replace(/_ugm3$/, "");
    return base === "pm25" ? "pm2_5" : base;
  }
  const pollutantName = (p) => POLLUTANTS[norm(p)] || str(p);
  const AVERAGING = { "1h": "avg_1h", "24h": "avg_24h", "max daily 8h": "avg_8h", "8h": "avg_8h" };
  const averaging = (a) => (AVERAGING[a] ? t(AVERAGING[a]) : str(a));

  function band(eaqi) {
    const b = eaqi && eaqi.band;
    if (Number.isInteger(b) && b >= 1 && b <= 6) return b;
    const i = eaqi ? LEVELS.indexOf(eaqi.level) : -1;
    return i >= 0 ? i + 1 : null;
  }

  // -- the page ---------------------------------------------------------------------------------
  function applyI18n() {
    document.documentElement.lang = state.lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const b of document.querySelectorAll("[data-lang]")) {
      b.setAttribute("aria-pressed", b.dataset.lang === state.lang ? "true" : "false");
    }
  }

  function render() {
    applyI18n();
    const d = state.data;
    const name = d && d.territory ? str(d.territory.name) : "";
    $("#title").textContent = name || t("title");
    document.title = (name || t("title")) + " — " + t("page");
    renderStatus();
    renderStations(d ? list(d.stations) : null);
    renderConsumption(d ? list(d.consumption) : null);
    renderAlerts(d ? list(d.alerts) : null);
    renderFooter(d ? d.licence : null);
  }
  const list = (v) => (Array.isArray(v) ? v : []);

  function renderStatus() {
    const box = $("#status");
    const d = state.data;
    box.className = "status";
    if (!d) {
      box.textContent = state.loading ? t("loading") : t("none");
      if (!state.loading) box.classList.add("warn");
    } else if (state.failed) {
      box.textContent = t("stale", { time: when(d.generated_at) });
      box.classList.add("warn");
    } else box.textContent = t("updated", { time: when(d.generated_at) });
  }

  function empty(box, key) {
    box.appendChild(make("p", { class: "empty", text: t(key) }));
  }

  // -- air quality -----------------------------------------------------------------------------
  function renderStations(stations) {
    const box = $("#stations");
    box.textContent = "";
    if (stations === null) return;
    if (!stations.length) { empty(box, "no_stations"); return; }
    for (const s of stations) box.appendChild(stationCard(s));
    drawCharts();
  }

  function stationCard(s) {
    const eaqi = s.eaqi || {};
    const b = band(eaqi);
    const heading = make("h3", { text: str(s.name) || str(s.id) });
    const where = isNum(s.altitude_m) ? make("p", { class: "where", text: t("altitude", { m: num(s.altitude_m, 0) }) }) : null;
    return make("article", { class: "station", "data-station": str(s.id) }, [
      heading, where, eaqiBox(eaqi, b), pollutantList(list(eaqi.pollutants)),
      exceedances(list(s.exceedances), list(eaqi.pollutants)),
      make("figure", { class: "chart" }, [make("figcaption", { text: t("chart_caption") }),
        make("div", { class: "plot", "data-chart": "" }), legend(s.chart), chartTable(s)]),
    ]);
  }

  function eaqiBox(eaqi, b) {
    const level = b ? LEVELS[b - 1] : null;
    const details = [];
    if (b) details.push(t("level_of", { n: b }));
    if (b && eaqi.pollutant) details.push(t("set_by", { p: pollutantName(eaqi.pollutant) }));
    if (eaqi.at) details.push(t("at", { time: when(eaqi.at) }));
    const missing = list(eaqi.missing).map((g) => str(g).split("|").map(pollutantName).join("/"));
    if (!b && missing.length) details.push(t("missing", { p: missing.join(", ") }));
    const scale = make("div", { class: "scale", "aria-hidden": "true" },
      LEVELS.map((_, i) => make("span", { class: "b" + (i + 1) + (b === i + 1 ? " on" : "") })));
    return make("div", { class: "eaqi " + (b ? "band-" + b : "band-none"), "data-band": b || "" }, [
      make("p", { class: "label", text: t("aq_now") }),
      make("p", { class: "level", "data-level": level || "", text: level ? t(level) : t("no_level") }),
      make("p", { class: "detail", text: details.join(" · ") }),
      scale,
      make("p", { class: "advice", text: t(level ? "advice_" + level : "advice_none") }),
    ]);
  }

  function pollutantList(rows) {
    if (!rows.length) return null;
    const sorted = rows.slice().sort((a, b) => rank(a.pollutant) - rank(b.pollutant));
    const dl = make("dl", { class: "pollutants", "aria-label": t("pollutants") });
    for (const r of sorted) {
      const rb = Number.isInteger(r.band) && r.band >= 1 && r.band <= 6 ? r.band : null;
      const value = r.captured === false || !isNum(r.value)
        ? t("not_captured")
        : num(r.value, 1) + " " + (str(r.unit) || "µg/m³") + (rb ? " · " + t(LEVELS[rb - 1]) : "");
      dl.appendChild(make("div", { class: "pollutant" + (rb ? " band-" + rb : ""), "data-pollutant": norm(r.pollutant) }, [
        make("dt", {}, [make("b", { text: pollutantName(r.pollutant) }), " " + averaging(r.averaging)]),
        make("dd", { text: value }),
      ]));
    }
    return dl;
  }

  function exceedances(rows, pollutants) {
    if (!rows.length) {
      const known = pollutants.some((p) => p.captured !== false && isNum(p.value));
      return make("p", { class: known ? "limits ok" : "limits unknown", text: t(known ? "limits_ok" : "limits_unknown") });
    }
    const ul = make("ul", { class: "limits over" });
    for (const e of rows) {
      const unit = " µg/m³";
      let line = t(e.kind in I18N.it ? e.kind : "limit_value", { p: pollutantName(e.pollutant),
        avg: e.averaging && e.averaging !== "rule" ? " (" + averaging(e.averaging) + ")" : "", v: num(e.value, 1) + unit, l: num(e.limit, 1) + unit });
      if (e.since) line += " " + t("since", { time: when(e.since) });
      ul.appendChild(make("li", { "data-kind": str(e.kind), text: line }));
    }
    return ul;
  }

  // -- the 48-hour chart: own SVG, sized to its box so text stays readable on a phone -----------
  function series(chart) {
    return list(chart && chart.series)
      .slice().sort((a, b) => rank(a.pollutant) - rank(b.pollutant))
      .map((s) => ({ pollutant: norm(s.pollutant), points: list(s.points)
        .map((p) => [ms(p && p[0]), p && isNum(p[1]) ? p[1] : null]).filter((p) => p[0] !== null) }));
  }

  function legend(chart) {
    const rows = series(chart);
    if (!rows.length) return null;
    return make("ul", { class: "legend" }, rows.map((s) =>
      make("li", {}, [make("span", { class: "swatch p-" + s.pollutant, "aria-hidden": "true" }), pollutantName(s.pollutant)])));
  }

  function chartTable(station) {
    const rows = series(station.chart);
    if (!rows.some((s) => s.points.some((p) => p[1] !== null))) return null;
    const hours = [...new Set(rows.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => b - a);
    const lookup = rows.map((s) => new Map(s.points.map((p) => [p[0], p[1]])));
    const fmt = new Intl.DateTimeFormat(loc(), { weekday: "short", hour: "2-digit", minute: "2-digit", timeZone: tz() });
    const head = make("tr", {}, [make("th", { scope: "col", text: t("hour") }),
      ...rows.map((s) => make("th", { scope: "col", text: pollutantName(s.pollutant) }))]);
    const body = hours.map((h) => make("tr", {}, [make("th", { scope: "row", text: fmt.format(new Date(h)) }),
      ...lookup.map((m) => make("td", { text: num(m.has(h) ? m.get(h) : null, 1) }))]));
    const table = make("table", {}, [make("caption", { text: t("chart_caption") }),
      make("thead", {}, [head]), make("tbody", {}, body)]);
    return make("details", { class: "table" }, [make("summary", { text: t("table") }),
      make("div", { class: "scroll" }, [table])]);
  }

  function drawCharts() {
    const stations = state.data ? list(state.data.stations) : [];
    for (const card of document.querySelectorAll("article.station")) {
      const s = stations.find((x) => str(x.id) === card.dataset.station);
      const box = card.querySelector("[data-chart]");
      if (s && box) drawChart(box, s);
    }
    state.width = window.innerWidth;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }
  function label(parent, x, y, s, anchor) {
    svg("text", { x: x, y: y, "text-anchor": anchor || "middle" }, parent).textContent = s;
  }
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= raw) return k * p;
    return 10 * p;
  }

  function drawChart(box, station) {
    box.textContent = "";
    const rows = series(station.chart);
    const values = rows.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null);
    if (!values.length) { box.appendChild(make("p", { class: "empty", text: t("no_chart") })); return; }
    const chart = station.chart || {};
    const allTs = rows.flatMap((s) => s.points.map((p) => p[0]));
    const from = ms(chart.from) ?? Math.min(...allTs), to = ms(chart.to) ?? Math.max(...allTs);
    const W = Math.max(240, Math.round(box.clientWidth || 320)), H = W < 480 ? 200 : 230;
    const m = { l: 38, r: 8, t: 10, b: 38 };
    const top = Math.max(...values, 1) * 1.08; // headroom: a line at the maximum stays off the frame
    const step = niceStep(top / 4), hi = Math.ceil(top / step) * step;
    const x = (v) => m.l + ((v - from) / Math.max(to - from, 1)) * (W - m.l - m.r);
    const y = (v) => H - m.b - (v / hi) * (H - m.t - m.b);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
      "aria-label": t("chart_title", { station: str(station.name) }) }, box);
    svg("title", {}, root).textContent = t("chart_title", { station: str(station.name) });
    const grid = svg("g", { class: "grid", "aria-hidden": "true" }, root);
    for (let v = 0; v <= hi + step / 2; v += step) {
      svg("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }, grid);
      label(grid, m.l - 5, y(v) + 4, num(v, 1), "end");
    }
    const every = W < 480 ? 12 : 6;
    const hourOf = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", hourCycle: "h23", timeZone: tz() });
    const hhmm = new Intl.DateTimeFormat(loc(), { hour: "2-digit", minute: "2-digit", timeZone: tz() });
    const day = new Intl.DateTimeFormat(loc(), { weekday: "short", day: "numeric", timeZone: tz() });
    let first = true;
    for (let h = Math.ceil(from / HOUR) * HOUR; h <= to; h += HOUR) {
      const local = parseInt(hourOf.format(new Date(h)), 10) % 24;
      if (local % every) continue;
      svg("line", { x1: x(h), x2: x(h), y1: m.t, y2: H - m.b, class: local === 0 ? "midnight" : "" }, grid);
      const anchor = x(h) < m.l + 18 ? "start" : x(h) > W - m.r - 18 ? "end" : "middle";
      label(grid, x(h), H - m.b + 15, hhmm.format(new Date(h)), anchor);
      if (local === 0 || first) label(grid, x(h), H - m.b + 30, day.format(new Date(h)), anchor);
      first = false;
    }
    for (const s of rows) drawSeries(root, s, x, y, from, to);
  }

  function drawSeries(root, s, x, y, from, to) {
    let d = "", pen = false, n = 0;
    const pts = s.points.filter((p) => p[0] >= from && p[0] <= to).sort((a, b) => a[0] - b[0]);
    const g = svg("g", { class: "series p-" + s.pollutant, "data-pollutant": s.pollutant }, root);
    pts.forEach((p, i) => {
      if (p[1] === null) { pen = false; return; }
      n += 1;
      d += (pen ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1);
      const alone = (i === 0 || pts[i - 1][1] === null) && (i === pts.length - 1 || pts[i + 1][1] === null);
      if (alone) svg("circle", { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.5, class: "dot" }, g);
      pen = true;
    });
    if (d) svg("path", { d: d, class: "line", "data-n": n }, g);
  }

  // -- energy and water ------------------------------------------------------------------------
  function renderConsumption(rows) {
    const box = $("#consumption");
    box.textContent = "";
    if (rows === null) return;
    if (!rows.length) { empty(box, "no_consumption"); return; }
    for (const r of rows) box.appendChild(consumptionCard(r));
  }

  function monthParts(month) {
    const match = /^(\d{4})-(\d{2})$/.exec(str(month));
    if (!match) return null;
    const y = parseInt(match[1], 10), mo = parseInt(match[2], 10);
    return { year: y, name: new Intl.DateTimeFormat(loc(), { month: "long", year: "numeric", timeZone: "UTC" })
      .format(new Date(Date.UTC(y, mo - 1, 15))) };
  }
  function today() {
    const at = state.data ? ms(state.data.generated_at) : null;
    return new Intl.DateTimeFormat("en-GB", { day: "numeric", timeZone: tz() }).format(at === null ? new Date() : new Date(at));
  }

  function consumptionCard(r) {
    const unit = str(r.unit);
    const mp = monthParts(r.month);
    const period = mp ? t(r.to_date ? "to_date" : "full_month", { month: mp.name, day: today() }) : str(r.month);
    const lastYear = mp ? mp.year - 1 : "";
    const last = isNum(r.same_month_last_year)
      ? t(r.to_date ? "last_to_date" : "last_full", { year: lastYear, v: amount(r.same_month_last_year, unit) })
      : t(r.to_date ? "last_to_date" : "last_full", { year: lastYear, v: "—" }) + " (" + t("no_last_year", { year: lastYear }) + ")";
    let change = isNum(r.change_pct) ? t("change", { pct: pct(r.change_pct), year: lastYear }) : t("change_none");
    if (!isNum(r.change_pct) && isNum(r.same_month_last_year) && r.comparable === false) {
      change += " (" + t("not_comparable") + ")";
    }
    const trend = !isNum(r.change_pct) ? "none" : r.change_pct < 0 ? "down" : r.change_pct > 0 ? "up" : "flat";
    return make("article", { class: "use", "data-quantity": str(r.quantity) }, [
      make("h3", { text: t(r.quantity === "energy_kwh" || r.quantity === "water_m3" ? r.quantity : str(r.quantity)) }),
      make("p", { class: "period", text: period }),
      make("p", { class: "figure", text: amount(r.this_month, unit) }),
      make("p", { class: "last", text: last }),
      make("p", { class: "change " + trend, text: change }),
    ]);
  }

  // -- alerts ------------------------------------------------------------------------------------
  function renderAlerts(rows) {
    const box = $("#alerts");
    box.textContent = "";
    if (rows === null) return;
    if (!rows.length) { box.appendChild(make("li", { class: "empty", text: t("no_alerts") })); return; }
    const sorted = rows.slice().sort((a, b) => (a.state === "open" ? 0 : 1) - (b.state === "open" ? 0 : 1)
      || (ms(b.since) || 0) - (ms(a.since) || 0));
    for (const a of sorted) {
      const sev = ["info", "warning", "critical"].includes(a.severity) ? a.severity : "info";
      const open = a.state !== "resolved";
      const text = str(a["text_" + state.lang]) || str(a.text_it) || str(a.text_en);
      const meta = [str(a.place), t("alert_since", { time: when(a.since) }),
        open ? t("open") : t("resolved_at", { time: when(a.resolved_at) })].filter(Boolean);
      box.appendChild(make("li", { class: `alert ${sev} ${open ? "open" : "resolved"}`, "data-alert": str(a.id) }, [
        make("span", { class: "sev", text: t(sev) }), " ",
        make("span", { class: "what", text: text }), " ",
        make("span", { class: "meta", text: meta.join(" · ") }),
      ]));
    }
  }

  // -- footer: licence and open data ------------------------------------------------------------
  function renderFooter(licence) {
    const box = $("#licence");
    box.textContent = "";
    if (licence) {
      const name = str(licence.name) || str(licence.id);
      const url = str(licence.url);
      box.append(t("licence") + " ");
      box.appendChild(/^https?:\/\//.test(url)
        ? make("a", { href: url, rel: "license noopener", text: name }) : make("span", { text: name }));
      if (licence.attribution) box.append(" — " + str(licence.attribution));
    }
    const sets = $("#datasets");
    sets.textContent = "";
    for (const id of DATASETS) {
      sets.append(" · " + t(id) + " ");
      sets.appendChild(make("a", { href: `${OPENDATA_URL}/${id}.csv`, "data-dataset": id, text: t("csv") }));
      sets.append(" / ");
      sets.appendChild(make("a", { href: `${OPENDATA_URL}/${id}.json`, "data-dataset": id, text: t("json") }));
    }
  }

  // -- data: one fetch, kept for when the next one fails -------------------------------------------
  async function load() {
    state.lastAttempt = Date.now();
    try {
      const res = await fetch(SUMMARY_URL, { headers: { Accept: "application/json" } });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const data = await res.json();
      if (!data || typeof data !== "object") throw new Error("not a summary");
      state.data = data;
      state.failed = false;
      keep(STORE_KEY, JSON.stringify(data));
    } catch (e) {
      state.failed = true;
      if (!state.data) {
        try { state.data = JSON.parse(recall(STORE_KEY) || "null"); } catch (err) { state.data = null; }
      }
    }
    state.loading = false;
    render();
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(async () => {
      if (document.visibilityState === "visible") await load();
      schedule();
    }, REFRESH_MS);
  }

  // -- wiring ------------------------------------------------------------------------------------
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => {
      state.lang = b.dataset.lang;
      keep(LANG_KEY, state.lang);
      const url = new URL(location.href);
      url.searchParams.set("lang", state.lang);
      history.replaceState(null, "", url.pathname + url.search + url.hash);
      render();
    });
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && Date.now() - state.lastAttempt >= REFRESH_MS) load().then(schedule);
  });
  window.addEventListener("online", () => load());
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (state.data && window.innerWidth !== state.width) drawCharts(); }, 150);
  });
  render();
  load().then(schedule);
})();
