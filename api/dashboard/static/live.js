// The live page: one EventSource on /dashboard/stream; every message (a DashboardSnapshot,
// see api/dashboard/snapshot.py) redraws the cards, charts and tables. Text nodes only.
"use strict";

(() => {
  const { el, replace, table, num, ms, bytes } = Attimo;
  const $ = (id) => document.getElementById(id);

  const charts = {
    rates: Attimo.lineChart($("chart-rates"), ["received: gateway", "received: HTTP", "processed"], { units: "/s" }),
    latency: Attimo.lineChart($("chart-latency"), ["heartbeat latency"], { units: " ms" }),
    lag: null, // one line per shard, made on the first snapshot
    segments: Attimo.keyedChart($("chart-segments")),
  };
  const seenRates = new Set();
  const seenBeats = new Set();

  function card(label, value, sub, cls) {
    return el("div", { class: "card" }, el("div", { class: "label" }, label),
      el("div", { class: `value ${cls || ""}`, "data-card": label }, value), sub ? el("div", { class: "sub" }, sub) : null);
  }

  function drawCards(s) {
    const last = s.rates.last;
    const hb = s.heartbeat;
    const lagClass = s.lag.max_age_s > 5 ? "bad" : s.lag.max_age_s > 1 ? "warn" : "ok";
    replace($("cards"),
      card("Received / s", num(last.gateway + last.http), `gateway ${num(last.gateway)} · HTTP ${num(last.http)}`),
      card("Processed / s", num(last.processed), `totals: ${num(s.rates.totals.processed)} in 60 s`),
      card("Event → state p99", ms(hb.p99_s), `p50 ${ms(hb.p50_s)} · p95 ${ms(hb.p95_s)}`,
        hb.p99_s !== null && hb.p99_s > 1 ? "warn" : "ok"),
      card("Oldest unprocessed", `${num(s.lag.max_age_s)} s`, s.lag.backpressure ? "backpressure ON" : "backpressure off", lagClass),
      card("Visitors active (5 min)", num(s.contacts.active)),
      card("Contacts", num(s.contacts.total), `known ${num(s.contacts.known)} · anonymous ${num(s.contacts.anonymous)}`),
      card("Triggers fired", num(s.triggers_fired), `${s.workflows.length} workflows`),
      card("Webhooks & messages", num(s.deliveries.delivered),
        `retrying ${num(s.deliveries.retrying)} · dead ${num(s.deliveries.dead)}`, s.deliveries.dead ? "warn" : ""),
      card("Recommendations age", s.recommendations.age_s === null ? "–" : `${num(s.recommendations.age_s)} s`,
        "since the products stage last wrote"),
    );
  }

  function drawCharts(s) {
    for (const p of s.rates.series) {
      if (seenRates.has(p.at)) continue;
      seenRates.add(p.at);
      charts.rates.push(p.at, [p.gateway, p.http, p.processed]);
    }
    for (const p of s.heartbeat.points) {
      if (seenBeats.has(p.seq) || p.latency_s === null) continue;
      seenBeats.add(p.seq);
      charts.latency.push(p.sent_at, [p.latency_s * 1000]);
    }
    if (charts.lag === null) charts.lag = Attimo.lineChart($("chart-lag"), s.lag.shards.map((x) => `shard ${x.shard}`));
    charts.lag.push(Math.floor(s.at), s.lag.shards.map((x) => x.entries_behind));
    const sizes = {};
    for (const seg of s.segments) sizes[seg.name || seg.id] = seg.size;
    if (s.segments.length) charts.segments.push(Math.floor(s.at), sizes);
    else replace($("chart-segments"), el("p", { class: "muted" }, "No segments configured."));
  }

  function drawTables(s) {
    replace($("shards"), table(["shard", "entries behind", "oldest unprocessed"],
      s.lag.shards.map((x) => [x.shard, x.entries_behind === null ? "–" : num(x.entries_behind), `${num(x.oldest_age_s)} s`])));
    const now = s.at;
    replace($("processes"), table(["part", "pid", "CPU", "memory", "restarts", "up"],
      s.processes.map((p) => [p.part, p.pid, `${num(p.cpu_percent)} %`, bytes(p.rss_bytes), p.restarts,
        `${num((now - p.started_at) / 60)} min`])));
    replace($("workflows"), s.workflows.length ? table(["workflow", "enabled", "entered", "converted"],
      s.workflows.map((w) => [w.name || w.id, w.enabled ? "yes" : "no", num(w.entered), num(w.converted)])) : el("p", { class: "muted" }, "No workflows."));
    replace($("deliveries"), table(["target", "delivered", "retrying", "dead-lettered"],
      [...s.deliveries.targets.map((t) => [t.target, num(t.delivered), num(t.retrying), num(t.dead)]),
       ["all", num(s.deliveries.delivered), num(s.deliveries.retrying), num(s.deliveries.dead)]]));
    replace($("popups"), s.campaigns.length ? table(["popup", "shown", "clicked", "converted"],
      s.campaigns.map((c) => [c.name || c.id, num(c.shown), num(c.clicked), num(c.converted)])) : el("p", { class: "muted" }, "No popups."));
    replace($("recommendations"), el("p", {}, s.recommendations.updated_at
      ? `Neighbour documents last written ${num(s.recommendations.age_s)} s ago.` : "No recommendation written yet."));
  }

  function drawBanner(alerts) {
    const banner = $("banner");
    banner.classList.toggle("on", alerts.length > 0);
    replace(banner, alerts.map((a) => el("div", {}, a)));
  }

  const feed = new EventSource("/dashboard/stream");
  window.attimoLive = { snapshots: 0, last: null, latencyPoints: () => charts.latency.points(), ratePoints: () => charts.rates.points() };
  feed.onmessage = (message) => {
    const s = JSON.parse(message.data);
    window.attimoLive.snapshots += 1;
    window.attimoLive.last = s;
    replace($("connection"), `live · ${new Date(s.at * 1000).toLocaleTimeString()}`);
    drawBanner(s.alerts);
    drawCards(s);
    drawCharts(s);
    drawTables(s);
  };
  feed.addEventListener("error", (event) => {
    const why = event.data ? JSON.parse(event.data).error : "connection lost, retrying…";
    replace($("connection"), el("span", { class: "bad" }, `feed: ${why}`));
  });
})();
