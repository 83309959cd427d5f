/* The ecocluster dashboard: a facility manager's sites page and the coordinator's territory
   page, in Italian and English, live over Server-Sent Events. Plain browser JavaScript, no
   build step, nothing fetched from outside this server. */
"use strict";
(function () {
  const I18N = {
    it: {
      sites: "Siti", territory: "Territorio", logout: "Esci", token: "Token di accesso",
      signin: "Entra", open_alerts: "Allarmi aperti", map: "Mappa dei siti",
      alerts_by_severity: "Allarmi aperti per gravità", by_org: "Per organizzazione",
      power: "Potenza ora", flow: "Portata ora", energy_today: "Energia oggi",
      water_today: "Acqua oggi", alerts: "Allarmi", ack: "Prendo in carico",
      acked_by: "Preso in carico da", details: "Dettagli", since: "dal", no_alerts: "Nessun allarme aperto",
      bad_token: "Token non valido o revocato", power_24h: "Potenza, ultime 24 ore",
      flow_24h: "Portata, ultime 24 ore", profile: "Energia per ora: oggi (rosso), stesso giorno delle 4 settimane precedenti (tratteggio), media (blu)",
      profile_water: "Acqua per ora: oggi (rosso), stesso giorno delle 4 settimane precedenti, media (blu)",
      organisation: "Organizzazione", sites_reporting: "Siti attivi", offline: "non in linea",
      critical: "critici", warning: "avvisi", info: "info", live: "Aggiornamento in tempo reale",
      value: "valore", threshold: "soglia", comment: "Commento (facoltativo)",
      fired: "scattato", acked: "preso in carico", resolved: "rientrato", notified: "notificato",
      assigned: "assegnato", escalated: "escalation", delivered: "consegnato", failed: "fallito",
    },
    en: {
      sites: "Sites", territory: "Territory", logout: "Sign out", token: "Access token",
      signin: "Sign in", open_alerts: "Open alerts", map: "Site map",
      alerts_by_severity: "Open alerts by severity", by_org: "By organisation",
      power: "Power now", flow: "Flow now", energy_today: "Energy today",
      water_today: "Water today", alerts: "Alerts", ack: "Acknowledge",
      acked_by: "Acknowledged by", details: "Details", since: "since", no_alerts: "No open alerts",
      bad_token: "Invalid or revoked token", power_24h: "Power, last 24 hours",
      flow_24h: "Flow, last 24 hours", profile: "Energy per hour: today (red), same weekday of the previous 4 weeks (dashed), mean (blue)",
      profile_water: "Water per hour: today (red), same weekday of the previous 4 weeks, mean (blue)",
      organisation: "Organisation", sites_reporting: "Sites reporting", offline: "offline",
      critical: "critical", warning: "warnings", info: "info", live: "Live updates",
      value: "value", threshold: "threshold", comment: "Comment (optional)",
      fired: "fired", acked: "acknowledged", resolved: "resolved", notified: "notified",
      assigned: "assigned", escalated: "escalated", delivered: "delivered", failed: "failed",
    },
  };
  const ACKERS = new Set(["coordinator", "facility_manager", "emergency_coordinator"]);
  const state = {
    token: localStorage.getItem("eco.token") || "",
    lang: localStorage.getItem("eco.lang") || ((navigator.language || "it").startsWith("en") ? "en" : "it"),
    me: null, page: null, skew: 0, tz: undefined, staleMs: 900000,
    latest: new Map(), sites: [], siteById: new Map(), alerts: new Map(), charts: new Map(),
    lastId: null, abort: null, dirty: new Set(), territoryTimer: null, openAudits: new Set(),
  };
  const $ = (sel, root) => (root || document).querySelector(sel);
  const t = (key) => (I18N[state.lang] || I18N.it)[key] || key;
  const now = () => Date.now() + state.skew;

  function make(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined) node.setAttribute(k, v);
    }
    for (const c of children || []) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return node;
  }
  function num(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    return new Intl.NumberFormat(state.lang, { maximumFractionDigits: digits }).format(v);
  }
  function power(w) { return w === null || w === undefined ? "—" : Math.abs(w) >= 1000 ? num(w / 1000, 1) + " kW" : num(w, 0) + " W"; }
  function when(ms) {
    return new Intl.DateTimeFormat(state.lang, { day: "2-digit", month: "2-digit", hour: "2-digit",
      minute: "2-digit", timeZone: state.tz }).format(new Date(ms));
  }

  async function api(path, opts) {
    const o = opts || {};
    const headers = Object.assign({ Authorization: "Bearer " + state.token }, o.headers || {});
    if (o.body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method: o.method || "GET", headers: headers,
      body: o.body === undefined ? undefined : JSON.stringify(o.body) });
    if (res.status === 401) { signOut(t("bad_token")); throw new Error("unauthorized"); }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((body.error && body.error.message) || String(res.status));
    return body;
  }

  function applyI18n() {
    document.documentElement.lang = state.lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
    $("#lang").value = state.lang;
  }

  // -- sign in -------------------------------------------------------------------------------
  function signOut(message) {
    localStorage.removeItem("eco.token");
    state.token = "";
    if (state.abort) state.abort.abort();
    for (const id of ["page-sites", "page-territory", "tabs", "logout"]) $("#" + id).hidden = true;
    $("#login").hidden = false;
    $("#login-error").textContent = message || "";
  }
  async function signIn() {
    try {
      state.me = await api("/api/v1/me");
    } catch (e) { return; }
    state.tz = state.me.timezone;
    $("#title").textContent = state.me.territory_name;
    $("#login").hidden = true;
    $("#logout").hidden = false;
    $("#tabs").hidden = state.me.role === "viewer";
    const first = ["coordinator", "viewer"].includes(state.me.role) ? "territory" : "sites";
    await show(location.hash === "#sites" || location.hash === "#territory" ? location.hash.slice(1) : first);
    startStream();
  }

  async function show(page) {
    if (state.me.role === "viewer") page = "territory";
    state.page = page;
    for (const b of document.querySelectorAll("#tabs button")) {
      if (b.dataset.page === page) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
    }
    $("#page-sites").hidden = page !== "sites";
    $("#page-territory").hidden = page !== "territory";
    history.replaceState(null, "", "#" + page);
    if (page === "sites") await loadSites(); else await loadTerritory();
  }

  // -- the facility manager's page -------------------------------------------------------------
  const key = (r) => r.site + "/" + r.meter + "/" + r.quantity;

  async function loadSites() {
    const live = await api("/api/v1/live");
    state.skew = live.at_ms - Date.now();
    state.tz = live.timezone;
    state.staleMs = live.stale_after_ms;
    state.latest = new Map(live.readings.map((r) => [key(r), r]));
    state.sites = live.sites;
    state.siteById = new Map(live.sites.map((s) => [s.site, s]));
    state.alerts = new Map((live.alerts || []).map((a) => [a.id, a]));
    renderCards();
    renderAlerts();
  }

  function siteSum(site, quantity) {
    let total = 0, any = false;
    const fresh = now() - state.staleMs;
    for (const r of state.latest.values()) {
      if (r.site === site && r.quantity === quantity && r.ts_ms >= fresh && !r.offline) { total += r.value; any = true; }
    }
    return any ? total : null;
  }

  function kpi(name, label, value) {
    return make("div", { class: "kpi", "data-kpi": name }, [make("b", { text: value }), make("span", { text: label })]);
  }

  function renderCards() {
    const box = $("#site-cards");
    box.textContent = "";
    const observer = new IntersectionObserver((entries) => {
      for (const e of entries) if (e.isIntersecting) { observer.unobserve(e.target); loadCharts(e.target.dataset.site); }
    });
    for (const s of state.sites) {
      const card = make("article", { class: "card", "data-site": s.site }, [
        make("h3", { text: s.name }),
        make("div", { class: "org", text: s.org + (s.meters_offline ? " · " + s.meters_offline + " " + t("offline") : "") }),
        make("div", { class: "kpis" }, [
          kpi("power_w", t("power"), power(siteSum(s.site, "power_w"))),
          kpi("flow_lpm", t("flow"), siteSum(s.site, "flow_lpm") === null ? "—" : num(siteSum(s.site, "flow_lpm"), 1) + " l/min"),
          kpi("energy", t("energy_today"), s.today_energy_kwh === null ? "—" : num(s.today_energy_kwh, 1) + " kWh"),
          kpi("water", t("water_today"), s.today_water_m3 === null ? "—" : num(s.today_water_m3, 2) + " m³"),
        ]),
        make("div", { class: "chart-live" }),
        make("div", { class: "chart-profile" }),
      ]);
      box.appendChild(card);
      observer.observe(card);
    }
    updateAlertCounts();
  }

  function updateSite(site) {
    const card = document.querySelector(`.card[data-site="${CSS.escape(site)}"]`);
    if (!card) return;
    const p = siteSum(site, "power_w"), f = siteSum(site, "flow_lpm");
    $('[data-kpi="power_w"] b', card).textContent = power(p);
    $('[data-kpi="flow_lpm"] b', card).textContent = f === null ? "—" : num(f, 1) + " l/min";
    const chart = state.charts.get(site);
    if (chart) {
      const v = chart.quantity === "power_w" ? p : f;
      if (v !== null) { chart.ts.push(now()); chart.values.push(v); drawLive(site); }
    }
  }

  function alertBands(alerts) {
    return alerts.map((a) => ({ from: a.started_ms, to: a.resolved_ms || now(), cls: a.severity }));
  }

  async function loadCharts(site) {
    const s = state.siteById.get(site);
    if (!s) return;
    const hasPower = [...state.latest.values()].some((r) => r.site === site && r.quantity === "power_w");
    const hasFlow = [...state.latest.values()].some((r) => r.site === site && r.quantity === "flow_lpm");
    const quantity = hasPower ? "power_w" : hasFlow ? "flow_lpm" : null;
    const hasEnergy = s.today_energy_kwh !== null, hasWater = s.today_water_m3 !== null;
    try {
      const past = await api(`/api/v1/alerts?site=${encodeURIComponent(site)}&since=-24h&limit=200`);
      if (quantity) {
        const h = await api(`/api/v1/history?quantity=${quantity}&site=${encodeURIComponent(site)}&group=site&every=5m&start=-24h`);
        const serie = h.series[0] || { ts_ms: [], values: [] };
        state.charts.set(site, { quantity: quantity, ts: serie.ts_ms.slice(), values: serie.values.slice(),
          bands: alertBands(past), drawn: 0 });
        drawLive(site, true);
      }
      if (hasEnergy || hasWater) {
        const q = hasEnergy ? "energy_kwh" : "water_m3";
        const p = await api(`/api/v1/sites/${encodeURIComponent(site)}/profile?quantity=${q}`);
        const start = p.today.start_ms, hours = (v) => v.map((_, i) => start + i * 3600000);
        const series = p.previous.map((d) => ({ ts: hours(d.values), values: d.values, cls: "prev" }));
        series.push({ ts: hours(p.previous_mean), values: p.previous_mean, cls: "mean" });
        series.push({ ts: hours(p.today.values), values: p.today.values, cls: "today" });
        const card = document.querySelector(`.card[data-site="${CSS.escape(site)}"]`);
        if (card) EcoChart.line($(".chart-profile", card), { series: series, from: start, to: start + 24 * 3600000,
          tz: state.tz, lang: state.lang, caption: t(q === "energy_kwh" ? "profile" : "profile_water").split(":")[0],
          title: t(q === "energy_kwh" ? "profile" : "profile_water"), format: (v) => num(v, 1) });
      }
    } catch (e) { /* the card keeps its numbers; the next reload retries */ }
  }

  function drawLive(site, force) {
    const chart = state.charts.get(site);
    const card = document.querySelector(`.card[data-site="${CSS.escape(site)}"]`);
    if (!chart || !card || (!force && Date.now() - chart.drawn < 3000)) return;
    chart.drawn = Date.now();
    const to = now();
    EcoChart.line($(".chart-live", card), {
      series: [{ ts: chart.ts, values: chart.values }], bands: chart.bands, from: to - 86400000, to: to,
      tz: state.tz, lang: state.lang, caption: t(chart.quantity === "power_w" ? "power_24h" : "flow_24h"),
      format: chart.quantity === "power_w" ? (v) => power(v) : (v) => num(v, 0),
    });
  }

  function updateAlertCounts() {
    const counts = new Map();
    for (const a of state.alerts.values()) if (a.state === "firing") counts.set(a.labels.site, (counts.get(a.labels.site) || 0) + 1);
    for (const card of document.querySelectorAll(".card[data-site]")) {
      const n = counts.get(card.dataset.site) || 0;
      let box = $('[data-kpi="alerts"]', card);
      if (!n) { if (box) box.remove(); continue; }
      if (!box) { box = kpi("alerts", t("alerts"), ""); box.classList.add("alerting"); $(".kpis", card).appendChild(box); }
      $("b", box).textContent = String(n);
    }
  }

  function renderAlerts() {
    const list = $("#alert-list");
    list.textContent = "";
    const open = [...state.alerts.values()].filter((a) => a.state === "firing")
      .sort((a, b) => (b.severity === "critical") - (a.severity === "critical") || b.started_ms - a.started_ms);
    if (!open.length) { list.appendChild(make("li", { class: "empty", text: t("no_alerts") })); return; }
    for (const a of open) {
      const li = alertItem(a);
      list.appendChild(li);
      // an audit trail the user opened stays open, refreshed, across live re-renders
      if (state.openAudits.has(a.id)) api(`/api/v1/alerts/${encodeURIComponent(a.id)}`).then((d) => showAudit(li, d), () => {});
    }
    updateAlertCounts();
  }

  function alertItem(a) {
    const site = state.siteById.get(a.labels.site);
    const li = make("li", { class: "alert " + a.severity, "data-alert": a.id });
    const row = make("div", { class: "row" }, [
      make("span", { class: "what", text: `${a.severity.toUpperCase()} · ${a.rule} · ${site ? site.name : a.labels.site || ""}` }),
      make("span", { text: `${t("since")} ${when(a.started_ms)}` }),
    ]);
    if (a.value !== null) row.appendChild(make("span", { text: `${t("value")} ${num(a.value, 1)}` + (a.threshold !== null ? ` / ${t("threshold")} ${num(a.threshold, 1)}` : "") }));
    if (a.acked_by) row.appendChild(make("span", { class: "acked", text: `✔ ${t("acked_by")} ${a.acked_by}` }));
    else if (ACKERS.has(state.me.role)) row.appendChild(make("button", { class: "ack", type: "button", text: t("ack"), onclick: () => ack(a.id, li) }));
    row.appendChild(make("button", { class: "link details", type: "button", text: t("details"), onclick: () => toggleAudit(a.id, li) }));
    li.appendChild(row);
    return li;
  }

  async function ack(id, li) {
    const button = $("button.ack", li);
    if (button) button.disabled = true;
    state.openAudits.add(id); // a live re-render while the POST runs keeps the trail open
    try {
      const detail = await api(`/api/v1/alerts/${encodeURIComponent(id)}/ack`, { method: "POST", body: {} });
      state.alerts.set(id, detail);
      const fresh = alertItem(detail);
      // the list may have been re-rendered meanwhile: replace whatever item is shown now
      const current = document.querySelector(`li.alert[data-alert="${CSS.escape(id)}"]`) || li;
      current.replaceWith(fresh);
      showAudit(fresh, detail);
    } catch (e) {
      state.openAudits.delete(id);
      if (button) button.disabled = false;
    }
  }

  async function toggleAudit(id, li) {
    const open = $(".audit", li);
    if (open) { open.remove(); state.openAudits.delete(id); return; }
    showAudit(li, await api(`/api/v1/alerts/${encodeURIComponent(id)}`));
  }

  function showAudit(li, detail) {
    state.openAudits.add(detail.id);
    const old = $(".audit", li);
    if (old) old.remove();
    const ul = make("ol", { class: "audit" });
    for (const e of detail.events) {
      const parts = [when(e.at_ms), t(e.kind)];
      if (e.by) parts.push(e.by);
      if (e.channel) parts.push(`(${e.channel})`);
      if (e.detail) parts.push("— " + e.detail);
      ul.appendChild(make("li", { text: parts.join(" ") }));
    }
    li.appendChild(ul);
  }

  // -- the coordinator's territory page ------------------------------------------------------------
  async function loadTerritory() {
    const d = await api("/api/v1/live/territory");
    state.skew = d.at_ms - Date.now();
    state.tz = d.timezone;
    $("#title").textContent = d.name;
    const totals = $("#territory-totals");
    totals.textContent = "";
    totals.append(
      kpi("power_w", t("power"), power(d.totals.power_w)),
      kpi("flow_lpm", t("flow"), d.totals.flow_lpm === null ? "—" : num(d.totals.flow_lpm, 0) + " l/min"),
      kpi("energy", t("energy_today"), d.totals.today_energy_kwh === null ? "—" : num(d.totals.today_energy_kwh, 0) + " kWh"),
      kpi("water", t("water_today"), d.totals.today_water_m3 === null ? "—" : num(d.totals.today_water_m3, 1) + " m³"),
      kpi("sites", t("sites_reporting"), String(d.totals.sites_reporting)),
    );
    for (const k of totals.children) k.classList.add("card");
    const table = $("#org-table");
    table.textContent = "";
    table.appendChild(make("tr", {}, [t("organisation"), t("power"), t("flow"), t("energy_today"), t("water_today")].map((h) => make("th", { text: h }))));
    for (const o of d.by_org) {
      table.appendChild(make("tr", { "data-org": o.org }, [
        make("td", { text: o.name }), make("td", { text: power(o.power_w) }),
        make("td", { text: o.flow_lpm === null ? "—" : num(o.flow_lpm, 0) + " l/min" }),
        make("td", { text: o.today_energy_kwh === null ? "—" : num(o.today_energy_kwh, 0) + " kWh" }),
        make("td", { text: o.today_water_m3 === null ? "—" : num(o.today_water_m3, 1) + " m³" }),
      ]));
    }
    EcoChart.map($("#map"), d.sites.map((s) => ({ site: s.site, name: s.name, lat: s.lat, lon: s.lon,
      cls: s.worst_severity || "ok", label: `${s.name}: ${s.open_alerts} ${t("alerts")}` })));
    const sev = $("#severity-counts");
    sev.textContent = "";
    for (const name of ["critical", "warning", "info"]) {
      const n = (d.open_alerts_by_severity || {})[name] || 0;
      sev.appendChild(make("li", { "data-severity": name }, [make("span", { class: "n", text: String(n) }), t(name)]));
    }
  }

  // -- the live stream -----------------------------------------------------------------------
  function setConn(s) { $("#conn").dataset.state = s; }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function startStream() {
    if (state.abort) state.abort.abort();
    const abort = (state.abort = new AbortController());
    while (!abort.signal.aborted && state.token) {
      setConn("wait");
      try {
        const headers = { Authorization: "Bearer " + state.token };
        if (state.lastId) headers["Last-Event-ID"] = state.lastId;
        const res = await fetch("/api/v1/stream", { headers: headers, signal: abort.signal });
        if (res.status === 401) { signOut(t("bad_token")); return; }
        if (!res.ok || !res.body) throw new Error(String(res.status));
        setConn("on");
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf = (buf + decoder.decode(value, { stream: true })).replace(/\r\n/g, "\n");
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            handleFrame(buf.slice(0, cut));
            buf = buf.slice(cut + 2);
          }
        }
      } catch (e) { if (abort.signal.aborted) return; }
      setConn("off");
      await sleep(2000);
    }
  }

  function handleFrame(frame) {
    let event = "message", data = "", id = null;
    for (const line of frame.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "id") id = value;
    }
    if (id) state.lastId = id;
    if (event === "reset") { show(state.page); return; }
    if (!data || event === "ready") return;
    const body = JSON.parse(data);
    if (event === "readings") onReadings(body.readings);
    else if (event === "alert") onAlerts(body.alerts);
    else if (event === "status") onStatus(body.statuses);
  }

  function onReadings(rows) {
    for (const r of rows) {
      const k = key(r), old = state.latest.get(k);
      if (!old || r.ts_ms >= old.ts_ms) state.latest.set(k, Object.assign({}, old || {}, r, { offline: false }));
      state.dirty.add(r.site);
    }
    if (state.page === "sites") {
      for (const site of state.dirty) updateSite(site);
    } else scheduleTerritory();
    state.dirty.clear();
  }

  function onStatus(rows) {
    for (const s of rows) for (const r of state.latest.values()) {
      if (r.site === s.site && r.meter === s.meter) r.offline = !s.online;
    }
    if (state.page === "sites") for (const s of rows) updateSite(s.site);
  }

  function onAlerts(rows) {
    for (const a of rows) state.alerts.set(a.id, a);
    if (state.page === "sites") renderAlerts(); else scheduleTerritory();
  }

  function scheduleTerritory() {
    if (state.territoryTimer) return;
    state.territoryTimer = setTimeout(() => { state.territoryTimer = null; if (state.page === "territory") loadTerritory(); }, 3000);
  }

  // -- wiring ----------------------------------------------------------------------------------
  $("#login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("#token-input").value.trim();
    localStorage.setItem("eco.token", state.token);
    $("#token-input").value = "";
    signIn();
  });
  $("#logout").addEventListener("click", () => signOut(""));
  $("#lang").addEventListener("change", () => {
    state.lang = $("#lang").value;
    localStorage.setItem("eco.lang", state.lang);
    applyI18n();
    if (state.me) show(state.page);
  });
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.page));
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    state.token = fragment.get("token");
    localStorage.setItem("eco.token", state.token);
    history.replaceState(null, "", location.pathname + (fragment.get("page") ? "#" + fragment.get("page") : ""));
  }
  applyI18n();
  if (state.token) signIn(); else signOut("");
})();
