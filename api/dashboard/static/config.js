// The configuration page: segments (live counts, editor, count preview), scoring rules,
// workflows (stats per step, enable / disable) and popups (stats per variant).
// Every value from the API is written as text (Attimo.el / Attimo.replace); nothing is parsed as HTML.
"use strict";

(() => {
  const { api, el, replace, table, num } = Attimo;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const pct = (x) => (x === null || x === undefined ? "–" : `${num(x * 100)} %`);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const EXAMPLE = {
    kind: "all",
    of: [
      { kind: "count", dimension: "category", value: "shoes", event: "Product Viewed", window_s: 604800, op: "gte", n: 3 },
      { kind: "not", of: { kind: "tag", tag: "unsubscribed" } },
    ],
  };

  function showError(id, error) { replace($(id), error ? String(error.message || error) : ""); }

  // ---- segments ---------------------------------------------------------------

  let segments = [];

  async function memberCount(id) {
    const page = await api(`/v1/admin/segments/${enc(id)}/members?limit=1`);
    return page.count;
  }

  async function loadSegments() {
    const list = await api("/v1/admin/segments");
    segments = list.data;
    const counts = await Promise.all(segments.map((s) => memberCount(s.id).catch(() => null)));
    const rows = segments.map((s, i) => el("tr", { "data-segment": s.id },
      el("td", {}, s.id), el("td", {}, s.name || ""),
      el("td", { class: "members" }, num(counts[i])),
      el("td", {}, el("code", {}, summary(s.when))),
      el("td", {}, el("button", { type: "button", onclick: () => edit(s) }, "Edit"))));
    const body = rows.length ? table(["Id", "Name", "Members", "Condition", ""], []) : el("p", { class: "muted" }, "No segments yet.");
    if (rows.length) body.querySelector("tbody").replaceChildren(...rows);
    replace($("segment-list"), body);
  }

  function summary(when) {
    const text = JSON.stringify(when);
    return text.length > 140 ? `${text.slice(0, 137)}…` : text;
  }

  function edit(segment) {
    $("segment-id").value = segment.id;
    $("segment-name").value = segment.name || "";
    $("segment-when").value = JSON.stringify(segment.when, null, 2);
    showError("segment-error", null);
    replace($("segment-status"));
    $("segment-form").scrollIntoView();
  }

  // The editor as a segment body ({when, name, id}); a pasted {"when": …} body is taken as is.
  function segmentBody() {
    let tree;
    try { tree = JSON.parse($("segment-when").value); } catch (error) {
      throw new Error(`condition tree: not valid JSON (${error.message})`);
    }
    if (tree && typeof tree === "object" && !Array.isArray(tree) && "when" in tree && !("kind" in tree)) tree = tree.when;
    const body = { when: tree, name: $("segment-name").value };
    const id = $("segment-id").value.trim();
    if (id) body.id = id;
    return body;
  }

  async function preview() {
    showError("segment-error", null);
    replace($("segment-status"), "counting…");
    try {
      const result = await api("/v1/admin/segments/preview", { method: "POST", body: segmentBody() });
      replace($("segment-status"), el("strong", { id: "preview-count" }, num(result.matching)),
        ` of ${num(result.evaluated)} contacts match now`,
        el("span", { class: "muted" }, ` (${num(result.took_ms)} ms, ${num(result.shards)} shards answered)`));
    } catch (error) {
      replace($("segment-status"));
      showError("segment-error", error);
    }
  }

  async function save(event) {
    event.preventDefault();
    showError("segment-error", null);
    const id = $("segment-id").value.trim();
    if (!id) { showError("segment-error", "id: a segment needs an id"); return; }
    try {
      const body = segmentBody();
      const published = await api(`/v1/admin/segments/${enc(id)}`, { method: "PUT", body });
      replace($("segment-status"), `saved as configuration version ${published.version}; re-evaluating every contact…`);
      await waitForBackfill(id, published.version);
      replace($("segment-status"), `saved as configuration version ${published.version}`);
    } catch (error) {
      replace($("segment-status"));
      showError("segment-error", error);
    }
    await loadSegments().catch((error) => showError("segment-error", error));
  }

  async function waitForBackfill(id, version) {
    for (let i = 0; i < 60; i += 1) {
      const status = await api(`/v1/admin/segments/${enc(id)}/backfill?version=${version}`);
      if (status.done) return;
      await sleep(500);
    }
    throw new Error("the backfill has not finished after 30 s: is the dataflow running?");
  }

  async function remove() {
    showError("segment-error", null);
    const id = $("segment-id").value.trim();
    if (!id) { showError("segment-error", "id: which segment?"); return; }
    if (!window.confirm(`Delete segment ${id}?`)) return;
    try {
      const deleted = await api(`/v1/admin/segments/${enc(id)}`, { method: "DELETE" });
      replace($("segment-status"), `deleted (configuration version ${deleted.version})`);
      await loadSegments();
    } catch (error) { showError("segment-error", error); }
  }

  // ---- scoring rules -------------------------------------------------------------

  async function loadScoring() {
    const rules = await api("/v1/admin/scoring/rules");
    $("scoring-json").value = JSON.stringify(rules, null, 2);
    const rows = rules.map((r) => [r.id, r.match.event,
      (r.match.where || []).map((w) => `${w.name} ${w.op || "eq"} ${JSON.stringify(w.value)}`).join(", "),
      num(r.points), r.mode === "at_most" ? `at most ${r.max_times} per ${num(r.per_window_s)} s` : r.mode, r.group]);
    replace($("scoring-list"), rows.length ? table(["Id", "Event", "Where", "Points", "Mode", "Group"], rows)
      : el("p", { class: "muted" }, "No scoring rules."));
  }

  async function saveScoring() {
    showError("scoring-error", null);
    let rules;
    try { rules = JSON.parse($("scoring-json").value); } catch (error) {
      showError("scoring-error", `scoring rules: not valid JSON (${error.message})`);
      return;
    }
    try {
      const published = await api("/v1/admin/scoring/rules", { method: "PUT", body: rules });
      replace($("scoring-status"), `saved as configuration version ${published.version}`);
      await loadScoring();
    } catch (error) { showError("scoring-error", error); }
  }

  // ---- workflows -------------------------------------------------------------------

  async function loadWorkflows() {
    const list = await api("/v1/admin/workflows");
    const stats = await Promise.all(list.data.map((w) => api(`/v1/admin/workflows/${enc(w.id)}/stats`).catch(() => null)));
    if (!list.data.length) { replace($("workflow-list"), el("p", { class: "muted" }, "No workflows.")); return; }
    const parts = list.data.map((w, i) => {
      const counters = (stats[i] && stats[i].counters) || {};
      const c = (name) => num(counters[name] || 0);
      const toggle = el("button", { type: "button", class: "toggle", onclick: () => setEnabled(w.id, !w.enabled) },
        w.enabled ? "Disable" : "Enable");
      const steps = table(["Step", "Kind", "Reached", "Waiting now", "Actions queued", "Held", "Skipped"],
        w.steps.map((s) => [s.id, s.kind, c(`step:${s.id}`), c(`waiting:${s.id}`), c(`queued:${s.id}`),
          c(`held:${s.id}`), c(`skipped:${s.id}`)]));
      return el("div", { class: "workflow", "data-workflow": w.id },
        el("h3", {}, `${w.name || w.id} `, el("span", { class: w.enabled ? "ok state" : "muted state" }, w.enabled ? "enabled" : "disabled"),
          el("span", { class: "muted" }, ` · ${w.id} v${w.version} · trigger ${w.trigger.kind}`)),
        el("div", { class: "row" }, toggle,
          el("span", {}, `entered ${c("entered")} · converted ${c("converted")} · ended ${c("ended")} · unsubscribed ${c("unsubscribed")}`)),
        steps);
    });
    replace($("workflow-list"), parts);
  }

  async function setEnabled(id, enabled) {
    showError("workflow-error", null);
    try {
      await api(`/v1/admin/workflows/${enc(id)}/${enabled ? "enable" : "disable"}`, { method: "POST" });
      await loadWorkflows();
    } catch (error) { showError("workflow-error", error); }
  }

  // ---- popups ------------------------------------------------------------------------

  async function loadCampaigns() {
    const list = await api("/v1/admin/campaigns");
    if (!list.data.length) { replace($("campaign-list"), el("p", { class: "muted" }, "No popup campaigns.")); return; }
    const stats = await Promise.all(list.data.map((c) => api(`/v1/admin/campaigns/${enc(c.id)}/stats`).catch(() => null)));
    replace($("campaign-list"), list.data.map((c, i) => el("div", { class: "campaign", "data-campaign": c.id },
      el("h3", {}, `${c.name || c.id} `, el("span", { class: c.enabled ? "ok" : "muted" }, c.enabled ? "enabled" : "disabled"),
        el("span", { class: "muted" }, ` · ${c.id} · holdout ${num(c.holdout_percent)} %`)),
      stats[i] ? table(["Arm", "Impressions", "Clicks", "Closes", "Contacts", "Conversions", "Conversion rate", "Click rate", "P(beats holdout)"],
        stats[i].arms.map((a) => [a.arm, num(a.impressions), num(a.clicks), num(a.closes), num(a.contacts), num(a.conversions),
          pct(a.conversion_rate), pct(a.click_rate), a.beats_holdout === null ? "–" : pct(a.beats_holdout)]))
        : el("p", { class: "error" }, "stats unavailable"))));
  }

  // ---- start -------------------------------------------------------------------------

  async function refresh() {
    const results = await Promise.allSettled([loadSegments(), loadWorkflows(), loadCampaigns()]);
    const failed = results.filter((r) => r.status === "rejected");
    replace($("connection"), failed.length ? `refresh failed: ${failed[0].reason.message}` : `updated ${new Date().toLocaleTimeString()}`);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("segment-when").placeholder = JSON.stringify(EXAMPLE, null, 2);
    $("segment-example").addEventListener("click", () => { $("segment-when").value = JSON.stringify(EXAMPLE, null, 2); });
    $("segment-clear").addEventListener("click", () => {
      for (const id of ["segment-id", "segment-name", "segment-when"]) $(id).value = "";
      replace($("segment-status"));
      showError("segment-error", null);
    });
    $("segment-preview").addEventListener("click", preview);
    $("segment-form").addEventListener("submit", save);
    $("segment-delete").addEventListener("click", remove);
    $("scoring-save").addEventListener("click", saveScoring);
    loadScoring().catch((error) => showError("scoring-error", error));
    refresh();
    setInterval(refresh, 5000);
  });
})();
