// The contact explorer: find a contact by any of its ids and watch it change (read again every 2 s).
// The id lives in the URL's hash (#<id>), so a link to a contact can be shared; nothing else is put in
// a URL. Everything from the API is written as text nodes (Attimo.el / replace), never parsed as HTML.
"use strict";

(() => {
  const { api, el, replace, table, num, when } = Attimo;
  const REFRESH_MS = 2000;
  const MAX_POINTS = 500;
  const $ = (id) => document.getElementById(id);

  let current = null;        // the id being watched
  let generation = 0;        // bumps when another contact is opened: late answers for the old one are dropped
  let inFlight = false;
  let chart = null;          // uPlot of the score history, rebuilt per contact
  let history = new Map();   // epoch second -> score, accumulated while the contact is watched

  const seconds = (iso) => (iso ? Date.parse(iso) / 1000 : null);
  const ago = (epoch) => {
    if (!epoch) return "–";
    const s = Math.round(Date.now() / 1000 - epoch);
    if (Math.abs(s) < 90) return s >= 0 ? `${s} s ago` : `in ${-s} s`;
    const m = Math.round(s / 60);
    if (Math.abs(m) < 90) return m >= 0 ? `${m} min ago` : `in ${-m} min`;
    const h = Math.round(m / 60);
    return h >= 0 ? `${h} h ago` : `in ${-h} h`;
  };
  const stamp = (epoch) => (epoch ? `${when(epoch)} (${ago(epoch)})` : "–");
  const money = (x) => (x === null || x === undefined ? "" : num(x));
  const empty = (what) => el("p", { class: "muted" }, what);

  function card(label, value, sub) {
    return el("div", { class: "card" }, el("div", { class: "label" }, label),
      el("div", { class: "value" }, value), sub ? el("div", { class: "sub" }, sub) : null);
  }

  function chips(label, names) {
    return el("p", {}, el("span", { class: "muted" }, `${label}: `), names.length ? names.join(", ") : "none");
  }

  function summary(p) {
    const ids = [...(p.anonymous_ids || [])];
    return [
      card("Contact", p.contact_id, p.user_id ? "known" : "anonymous"),
      card("User id", p.user_id || "–", ids.length ? `anonymous ids: ${ids.join(", ")}` : ""),
      card("E-mail", p.email || "–"),
      // Fields at their default are left out of the profile's JSON (docs/protocol.md §6.6): read them as it.
      card("Stage", p.stage || "awareness"),
      card("Temperature", p.temperature || "cold"),
      card("Score", num(p.score || 0), `config v${p.config_version || 0}`),
      card("Events", num((p.counters && p.counters.events) || 0), `last seen ${ago(seconds(p.last_seen))}`),
      card("Orders", num((p.orders && p.orders.orders) || 0), `revenue ${num((p.orders && p.orders.revenue) || 0)}`),
    ];
  }

  function traits(p) {
    const entries = Object.entries(p.traits || {});
    if (!entries.length) return empty("No traits.");
    return table(["trait", "value"], entries.map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
  }

  function cart(p) {
    const lines = p.cart || [];
    if (!lines.length) return empty("The cart is empty.");
    const updated = seconds(p.cart_updated_at);
    const abandoned = p.extra && p.extra.cart_abandoned;
    return [
      el("p", {}, `Value ${num(p.cart_value || 0)} · last changed ${stamp(updated)}`,
        abandoned ? el("span", { class: "warn" }, " · abandoned") : null),
      table(["product", "name", "category", "price", "quantity"],
        lines.map((l) => [l.product_id, l.name || "", l.category || "", num(l.price || 0), num(l.quantity || 0)])),
    ];
  }

  function timeline(p) {
    const events = p.recent_events || [];
    if (!events.length) return empty("No recent events (or the event log is off: ATTIMO_EVENT_LOG_SIZE=0).");
    return table(["time", "type", "event", "page", "product", "campaign", "value"],
      events.map((e) => [stamp(e.at), e.type, e.name || "", e.page || "",
        [e.product_id, e.product].filter(Boolean).join(" · "), e.campaign || "", money(e.value)]));
  }

  function workflows(p) {
    const runs = p.workflows || [];
    if (!runs.length) return empty("In no workflow.");
    return table(["workflow", "version", "step", "entered", "next due", "waiting", "branch"],
      runs.map((w) => [w.workflow, w.version, w.step, stamp(w.entered_at), stamp(w.due_at),
        w.waiting ? "yes" : "", w.branch || ""]));
  }

  function actions(p) {
    const log = p.actions || [];
    if (!log.length) return empty("No workflow actions.");
    return table(["time", "workflow", "step", "outcome", "reason", "action id"],
      [...log].reverse().map((a) => [stamp(a.at), a.workflow, a.step, a.outcome, a.reason || "", a.action_id || ""]));
  }

  function popups(p) {
    const seen = Object.entries((p.extensions && p.extensions.popups) || {});
    if (!seen.length) return empty("No popup seen.");
    return table(["campaign", "arm", "impressions", "last shown", "clicked", "closed", "converted"],
      seen.map(([campaign, s]) => [campaign, s.arm || "", num(s.impressions || 0), stamp(s.shown_at),
        stamp(s.clicked_at), stamp(s.closed_at), stamp(s.converted_at)]));
  }

  function recommendations(decisions) {
    if (!decisions) return empty("Decisions could not be read.");
    const parts = [];
    const offered = decisions.popups || [];
    parts.push(el("p", {}, el("span", { class: "muted" }, "Popups offered now: "),
      offered.length ? offered.map((o) => `${o.campaign} (${o.variant})`).join(", ") : "none"));
    const strips = Object.entries(decisions.recommendations || {}).filter(([, cards]) => cards.length);
    if (!strips.length) parts.push(empty("No recommendations."));
    for (const [strip, cards] of strips) {
      parts.push(el("h3", {}, strip.replace("_", " ")));
      parts.push(table(["product", "name", "category", "price"],
        cards.map((c) => [c.id, c.name || "", c.category || "", money(c.price)])));
    }
    return parts;
  }

  function drawScore(p) {
    for (const [t, score] of p.score_history || []) history.set(t, score);
    if (history.size > MAX_POINTS) {
      const keep = [...history.keys()].sort((a, b) => a - b).slice(-MAX_POINTS);
      history = new Map(keep.map((t) => [t, history.get(t)]));
    }
    const xs = [...history.keys()].sort((a, b) => a - b);
    if (!chart) {
      const container = $("chart-score");
      container.replaceChildren();
      chart = Attimo.lineChart(container, ["score"], { keep: MAX_POINTS });
    }
    chart.plot.setData([xs, xs.map((t) => history.get(t))]);
    if (xs.length === 1) chart.plot.setScale("x", { min: xs[0] - 60, max: xs[0] + 60 });  // not a span of years
  }

  function show(p, decisions) {
    $("contact").hidden = false;
    replace($("summary"), summary(p));
    replace($("traits"), traits(p));
    replace($("memberships"), chips("Segments", p.segments || []), chips("Tags", p.tags || []),
      chips("Lists", p.lists || []));
    replace($("cart"), cart(p));
    replace($("timeline"), timeline(p));
    replace($("workflows"), workflows(p));
    replace($("actions"), actions(p));
    replace($("popups"), popups(p));
    replace($("recommendations"), recommendations(decisions));
    drawScore(p);
  }

  function status(text, cls) {
    const node = $("status");
    node.className = cls || "muted";
    node.textContent = text;
  }

  async function refresh() {
    if (!current || inFlight) return;
    const id = current;
    const mine = generation;
    inFlight = true;
    try {
      const path = `/v1/contacts/${encodeURIComponent(id)}`;
      const [profile, decisions] = await Promise.all([
        api(path), api(`${path}/decisions`).catch(() => null)]);
      if (mine !== generation) return;
      show(profile, decisions);
      status(`updated ${new Date().toLocaleTimeString()}`);
      $("connection").textContent = `watching ${profile.contact_id}`;
    } catch (error) {
      if (mine !== generation) return;
      const unknown = String(error.message).startsWith("404");
      if (unknown) $("contact").hidden = true;
      status(unknown ? `No contact is known by “${id}” (yet).` : `Could not read the contact: ${error.message}`,
        unknown ? "muted" : "error");
    } finally {
      inFlight = false;
    }
  }

  function open(id) {
    current = id || null;
    generation += 1;
    history = new Map();
    chart = null;
    $("chart-score").replaceChildren();
    $("contact").hidden = true;
    $("contact-id").value = id || "";
    if (!current) { status(""); return; }
    status("loading…");
    refresh();
  }

  function fromHash() {
    const raw = window.location.hash.slice(1);
    try { return raw ? decodeURIComponent(raw) : ""; } catch (error) { return ""; }
  }

  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("contact-id").value.trim();
    if (!id) return;
    if (fromHash() === id) open(id);
    else window.location.hash = encodeURIComponent(id);  // hashchange opens it
  });
  window.addEventListener("hashchange", () => open(fromHash()));
  setInterval(refresh, REFRESH_MS);
  open(fromHash());

  // For tests and the curious: what the explorer shows, read from its state (no private data beyond the page's).
  window.attimoExplorer = {
    contactId: () => current,
    scorePoints: () => (chart ? chart.plot.data[0].length : 0),
  };
})();
