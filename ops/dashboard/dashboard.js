/*
 * ops/dashboard/dashboard.js: the live operator view. Plain JS, no libraries.
 * Status (lanes, warnings with series, readiness) arrives over SSE from
 * GET /v1/events; each warning's community table is polled from
 * GET /v1/warnings/{id} every 2 s. The cookie set by /?token= authenticates
 * both (same origin). Numbers carry stable ids and data-value attributes.
 */
"use strict";
(function () {
  const T = {
    zh: { title: "预警发布态势", connecting: "连接中", open: "实时", error: "连接中断，重试中",
      large: "大字", warnings: "当前预警", none: "暂无预警", communities: "社区覆盖（最差在前）",
      segment: "区域", census: "人口", targeted: "目标人数", reached: "已送达", accepted: "已受理",
      failed: "失败", share: "送达率", lanes: "发送通道", lane: "通道", gateway: "网关",
      rate: "速率/秒", inflight: "在途", queued: "排队", state: "状态", failures: "失败原因",
      readiness: "广播终端就绪", terminals_online: "在线终端", population_covered: "覆盖人口",
      offline_longest: "离线最久的终端", updated: "更新于", since: "发布后", t90: "达到90%用时",
      t90_not: "未达90%", up: "在线", down: "离线", paused: "暂停", running: "运行",
      total: "合计", sms: "短信", app: "应用", terminal: "终端", drill: "演练", lang: "English",
      chart: "各渠道覆盖随时间变化", last_seen: "最后在线", faulty: "报告故障的终端",
      muted: "音量为0的终端", faults_latest: "最近的故障报告", volume: "音量" },
    en: { title: "Warning dissemination", connecting: "connecting", open: "live",
      error: "disconnected, retrying", large: "Large text", warnings: "Active warnings",
      none: "No active warning", communities: "Communities (worst first)", segment: "Area",
      census: "Census", targeted: "Targeted", reached: "Reached", accepted: "Accepted",
      failed: "Failed", share: "Reached %", lanes: "Lanes", lane: "Lane", gateway: "Gateway",
      rate: "Rate/s", inflight: "In flight", queued: "Queued", state: "State",
      failures: "Failures", readiness: "Broadcast readiness", terminals_online: "Terminals online",
      population_covered: "Population covered", offline_longest: "Offline longest",
      updated: "Updated", since: "since admission", t90: "time to 90%", t90_not: "90% not yet",
      up: "up", down: "DOWN", paused: "paused", running: "running", total: "total", sms: "SMS",
      app: "App", terminal: "Terminal", drill: "DRILL", lang: "中文",
      chart: "Coverage over time per channel", last_seen: "last seen",
      faulty: "Terminals reporting faults", muted: "Terminals at volume 0",
      faults_latest: "Latest fault reports", volume: "volume" },
  };
  const store = window.localStorage || { getItem() { return null; }, setItem() {} };
  let lang = store.getItem("tocsin.lang") || "zh";
  let status = null, statusAt = 0, segWarning = null;
  const $ = (id) => document.getElementById(id);
  const t = (k) => (T[lang] && T[lang][k]) || k;
  const fmt = (n) => (n == null ? "–" : Number(n).toLocaleString(lang === "zh" ? "zh-CN" : "en-US"));
  const pct = (a, b) => (b > 0 ? (100 * a / b) : 0);
  const pctText = (a, b) => pct(a, b).toFixed(1) + "%";
  function dur(ms) {
    const s = Math.max(0, Math.floor(ms / 1000)), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(s % 60).padStart(2, "0");
  }
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "style") e.style.cssText = v; /* CSSOM: allowed by the CSP */
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  function svgEl(tag, attrs) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n); });
    $("lang").textContent = t("lang");
    document.title = "tocsin · " + t("title");
    if (status) render();
  }
  function num(id, label, value, extra) {
    return el("div", {}, el("dt", { text: label }),
      el("dd", Object.assign({ id: id, "data-value": String(value == null ? "" : value) }, extra || {}),
        typeof value === "number" ? fmt(value) : (value || "–")));
  }
  function chart(w) {
    const W = 600, H = 180, P = 30;
    const s = w.series || [], maxT = Math.max(1000, ...s.map((p) => p[0]));
    const maxY = Math.max(1, w.targeted || 0);
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
      "aria-label": t("chart"), id: "chart-" + w.id, "data-points": String(s.length) });
    const x = (ms) => P + (W - 2 * P) * ms / maxT, y = (v) => H - P - (H - 2 * P) * v / maxY;
    svg.append(svgEl("line", { x1: P, x2: W - P, y1: y(0.9 * maxY), y2: y(0.9 * maxY), stroke: "#fff", "stroke-dasharray": "6 4" }));
    const l90 = svgEl("text", { x: W - P - 30, y: y(0.9 * maxY) - 4 }); l90.textContent = "90%"; svg.append(l90);
    const cols = [["sms", 1, "var(--sms)"], ["app", 2, "var(--app)"], ["terminal", 3, "var(--terminal)"], ["total", 4, "var(--total)"]];
    for (const [, i, c] of cols) {
      if (!s.length) break;
      const pts = s.map((p) => x(p[0]).toFixed(1) + "," + y(p[i] || 0).toFixed(1)).join(" ");
      svg.append(svgEl("polyline", { points: pts, fill: "none", stroke: c, "stroke-width": i === 4 ? 3 : 2 }));
    }
    const tl = svgEl("text", { x: W - P - 40, y: H - 8 }); tl.textContent = dur(maxT); svg.append(tl);
    const legend = el("div", { class: "legend", "aria-hidden": "true" },
      ...cols.map(([k, , c]) => el("span", {}, el("i", { style: "background:" + c }), t(k))));
    return el("figure", {}, svg, legend);
  }
  function warningCard(w, age) {
    const tg = w.targeted || 0, met = w.t90_ms != null;
    const bar = el("div", { class: "bar", role: "img", "aria-label": t("reached") + " " + pctText(w.reached, tg) },
      el("div", { class: "reached", style: `width:${pct(w.reached, tg)}%` }),
      el("div", { class: "accepted", style: `left:${pct(w.reached, tg)}%;width:${pct(w.accepted, tg)}%` }),
      el("div", { class: "line90" }));
    const card = el("article", { class: "warning", id: "w-" + w.id, "data-id": w.id, "data-colour": w.colour || "",
      "data-state": w.state || "" },
      el("h3", {}, el("span", { class: "badge", "data-colour": w.colour || "" },
        (w.colour || "") + " · " + (w.severity || "")), w.drill ? el("span", { class: "badge" }, t("drill")) : null,
        w.headline || w.id),
      el("div", { class: "muted" }, w.id + " · " + (w.state || "") + " · " + t("since") + " ",
        el("span", { id: "elapsed-" + w.id, "data-value": String(w.elapsed_ms + age) }, dur(w.elapsed_ms + age))),
      el("dl", { class: "nums", "aria-live": "polite" },
        num("targeted-" + w.id, t("targeted"), tg),
        num("reached-" + w.id, t("reached"), w.reached),
        num("accepted-" + w.id, t("accepted"), w.accepted),
        num("share-" + w.id, t("share"), pctText(w.reached, tg), { "data-value": String(pct(w.reached, tg)) }),
        num("t90-" + w.id, t("t90"), met ? dur(w.t90_ms) : t("t90_not"), { "data-value": met ? String(w.t90_ms) : "", class: met ? "met" : "notmet" })),
      bar, chart(w));
    card.addEventListener("click", () => { segWarning = w.id; pollSegments(); });
    return card;
  }
  function renderLanes(lanes) {
    const tb = $("lanes").tBodies[0];
    tb.replaceChildren(...(lanes || []).map((l) => {
      const fails = Object.entries(l.counters || {}).filter(([k, v]) => v && k !== "sent" && k !== "accepted" && k !== "delivered")
        .map(([k, v]) => k + " " + fmt(v)).join(", ");
      const adapter = Object.entries(l.adapter || {}).filter(([, v]) => typeof v !== "object")
        .map(([k, v]) => k + "=" + v).join(" ");
      const st = l.paused ? t("paused") + (l.pause_reason ? " (" + l.pause_reason + ")" : "") +
        (l.paused_for_ms ? " " + dur(l.paused_for_ms) : "") : t("running");
      return el("tr", { id: "lane-" + l.name, "data-up": String(!!l.up) },
        el("th", { scope: "row" }, l.name + " · " + t(l.channel) + (l.platform && l.channel === "app" ? "/" + l.platform : "")),
        el("td", { class: l.up ? "up" : "down", title: adapter }, l.up ? t("up") : t("down")),
        el("td", { text: l.rate ? fmt(l.rate) : "∞" }), el("td", { text: fmt(l.inflight) }),
        el("td", { text: fmt(l.queued) }), el("td", { text: st }), el("td", { text: fails || "–" }));
    }));
  }
  function renderReadiness(r) {
    if (!r) return;
    $("r-terminals").textContent = fmt(r.terminals_online) + " / " + fmt(r.terminals_total);
    $("r-terminals").dataset.value = String(r.terminals_online);
    $("r-population").textContent = fmt(r.persons_online) + " (" + (100 * (r.share || 0)).toFixed(1) + "%)";
    $("r-population").dataset.value = String(r.persons_online);
    $("r-offline").replaceChildren(...(r.offline_longest || []).slice(0, 10).map((o) =>
      el("li", {}, o.id + " · " + t("last_seen") + " " + (o.last_seen ? new Date(o.last_seen * 1000).toLocaleString() : "–"))));
    $("r-faulty").textContent = fmt(r.terminals_faulty);
    $("r-faulty").dataset.value = String(r.terminals_faulty || 0);
    $("r-muted").textContent = fmt(r.terminals_muted);
    $("r-muted").dataset.value = String(r.terminals_muted || 0);
    $("r-faults").replaceChildren(...(r.faults_latest || []).slice(0, 10).map((f) =>
      el("li", { "data-id": f.id }, f.id + " · " + f.faults + (f.volume >= 0 ? " · " + t("volume") + " " + f.volume : "") +
        " · " + new Date(f.at * 1000).toLocaleString())));
  }
  function render() {
    const age = Date.now() - statusAt, ws = status.warnings || [];
    $("warnings").replaceChildren(...ws.map((w) => warningCard(w, age)));
    $("no-warnings").hidden = ws.length > 0;
    if (!segWarning || !ws.some((w) => w.id === segWarning)) segWarning = ws.length ? ws[0].id : segWarning;
    renderLanes(status.lanes);
    renderReadiness(status.readiness);
    $("updated").textContent = new Date(statusAt).toLocaleTimeString();
    $("updated").dataset.value = String(statusAt);
  }
  function renderSegments(id, cov) {
    $("communities-for").textContent = id ? "· " + id : "";
    const segs = (cov && cov.segments) || [];
    $("communities").dataset.warning = id || "";
    $("communities").tBodies[0].replaceChildren(...segs.map((s) => el("tr",
      { "data-segment": s.id, class: pct(s.reached, s.targeted) < 90 ? "low" : "" },
      el("th", { scope: "row", text: s.id }), el("td", { text: fmt(s.census) }), el("td", { text: fmt(s.targeted) }),
      el("td", { text: fmt(s.reached), "data-value": String(s.reached) }), el("td", { text: fmt(s.accepted) }),
      el("td", { text: fmt(s.failed) }), el("td", { text: pctText(s.reached, s.targeted) }))));
  }
  async function pollSegments() {
    if (!segWarning) return;
    const id = segWarning;
    try {
      const r = await fetch("/v1/warnings/" + encodeURIComponent(id), { credentials: "same-origin", cache: "no-store" });
      if (r.ok) renderSegments(id, (await r.json()).coverage);
    } catch (e) { /* the SSE indicator shows connectivity */ }
  }
  function connect() {
    const es = new EventSource("/v1/events");
    es.addEventListener("open", () => { $("conn").dataset.state = "open"; $("conn").dataset.i18n = "open"; $("conn").textContent = t("open"); });
    es.addEventListener("error", () => { $("conn").dataset.state = "error"; $("conn").dataset.i18n = "error"; $("conn").textContent = t("error"); });
    es.addEventListener("status", (ev) => {
      try { status = JSON.parse(ev.data); } catch (e) { return; }
      statusAt = Date.now();
      window.tocsinEvents = (window.tocsinEvents || 0) + 1;
      render();
    });
  }
  $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; store.setItem("tocsin.lang", lang); applyLang(); });
  $("large").addEventListener("click", () => {
    const on = document.body.classList.toggle("large");
    $("large").setAttribute("aria-pressed", String(on)); store.setItem("tocsin.large", on ? "1" : "");
  });
  if (store.getItem("tocsin.large")) { document.body.classList.add("large"); $("large").setAttribute("aria-pressed", "true"); }
  if (new URLSearchParams(location.search).get("lang") === "en") lang = "en";
  applyLang();
  connect();
  setInterval(pollSegments, 2000);
  setInterval(() => { if (status) { const age = Date.now() - statusAt;
    (status.warnings || []).forEach((w) => { const e = $("elapsed-" + w.id); if (e) e.textContent = dur(w.elapsed_ms + age); }); } }, 1000);
})();
