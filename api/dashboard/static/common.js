// Shared by every dashboard page: the admin API through the session cookie, safe DOM
// building (text nodes only: nothing from the API is ever parsed as HTML), number
// formatting and a small rolling line chart on uPlot.
"use strict";

const Attimo = (() => {
  async function api(path, options = {}) {
    const init = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
    if (init.body !== undefined && typeof init.body !== "string") {
      init.body = JSON.stringify(init.body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    if (response.status === 401) { window.location.assign("/dashboard/login"); throw new Error("logged out"); }
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const why = data && (data.detail || data.error || data.message);
      throw new Error(`${response.status}: ${typeof why === "string" ? why : JSON.stringify(why || data)}`);
    }
    return data;
  }

  // el("td", {class: "ok"}, "text", child) — attributes set as attributes, children as text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function replace(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null)
      .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  }

  function table(headers, rows) {
    return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c)))))));
  }

  const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
  const num = (x) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Math.abs(x) >= 100 ? integer.format(x) : decimal.format(x));
  const ms = (seconds) => (seconds === null || seconds === undefined ? "–" : `${num(seconds * 1000)} ms`);
  const bytes = (b) => (b >= 1 << 30 ? `${decimal.format(b / (1 << 30))} GB` : `${decimal.format(b / (1 << 20))} MB`);
  const when = (epochSeconds) => (epochSeconds ? new Date(epochSeconds * 1000).toLocaleString() : "–");

  const COLORS = ["#58a6ff", "#3fb950", "#d29922", "#f85149", "#bc8cff", "#39c5cf", "#ff7b72", "#e3b341"];

  // A line chart of the last `keep` points, x = epoch seconds; push(t, [y1, y2, ...]) appends.
  function lineChart(container, labels, { keep = 300, height = 180, units = "" } = {}) {
    const data = [[], ...labels.map(() => [])];
    const opts = {
      width: Math.max(300, container.clientWidth - 10), height,
      series: [{}, ...labels.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 1.5,
        value: (u, v) => (v === null || v === undefined ? "–" : `${num(v)}${units}`) }))],
      axes: [{ stroke: "#8b97a3", grid: { stroke: "#2a3541" } },
             { stroke: "#8b97a3", grid: { stroke: "#2a3541" }, size: 70, values: (u, vals) => vals.map((v) => `${num(v)}${units}`) }],
      scales: { x: { time: true } },
    };
    const plot = new uPlot(opts, data, container);
    window.addEventListener("resize", () => plot.setSize({ width: Math.max(300, container.clientWidth - 10), height }));
    return {
      plot,
      push(t, values) {
        if (data[0].length && t <= data[0][data[0].length - 1]) return;
        data[0].push(t);
        values.forEach((v, i) => data[i + 1].push(v === undefined ? null : v));
        if (data[0].length > keep) data.forEach((column) => column.splice(0, column.length - keep));
        plot.setData(data);
      },
      points() { return data[0].length; },
    };
  }

  // Multi-series chart whose series set can change (e.g. one line per segment): rebuilt when it does.
  function keyedChart(container, options = {}) {
    let names = [];
    let chart = null;
    const history = new Map();
    return {
      push(t, byName) {
        const now = Object.keys(byName).sort();
        for (const name of now) {
          if (!history.has(name)) history.set(name, new Map());
          history.get(name).set(t, byName[name]);
        }
        if (now.join("\u0000") !== names.join("\u0000")) {
          names = now;
          container.replaceChildren();
          chart = lineChart(container, names, options);
          const times = [...new Set([...history.values()].flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
          for (const time of times) chart.push(time, names.map((n) => history.get(n).get(time) ?? null));
          return;
        }
        chart.push(t, names.map((n) => byName[n]));
      },
    };
  }

  return { api, el, replace, table, num, ms, bytes, when, lineChart, keyedChart };
})();
