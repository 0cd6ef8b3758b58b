// runyard UI: charts, live log and live status, drawn from the JSON API.
// Every user string is put in the page with textContent, or escaped before plotly sees it
// (plotly reads a few HTML-like tags in labels), never with innerHTML.
"use strict";

const LOG_POLL_MS = 1000;
const CHART_POLL_MS = 3000;
const LOG_TAIL_BYTES = 256 * 1024;

function $(sel, root) { return (root || document).querySelector(sel); }
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function plain(s) {  // text for plotly labels
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
function pageData(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}
function fileUrl(runId, name) {
  return "/runs/" + encodeURIComponent(runId) + "/files/" + name.split("/").map(encodeURIComponent).join("/");
}
async function getJSON(url) {
  const response = await fetch(url, {credentials: "same-origin", cache: "no-store"});
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  return response.json();
}
// plotly.min.js is loaded async (see markup.layout): wait for it only when drawing
let plotlyPromise = null;
function plotlyReady() {
  if (window.Plotly) return Promise.resolve();
  if (!plotlyPromise) {
    plotlyPromise = new Promise((resolve, reject) => {
      const script = document.getElementById("plotly-js");
      if (!script) { reject(new Error("plotly.js is not on this page")); return; }
      script.addEventListener("load", () => resolve());
      script.addEventListener("error", () => reject(new Error("plotly.js failed to load")));
      if (window.Plotly) resolve();
    });
  }
  return plotlyPromise;
}
const PLOT_CONFIG = {displaylogo: false, responsive: true};
function plotLayout(title, xtitle, ytitle) {
  return {title: {text: plain(title)}, margin: {l: 60, r: 20, t: 40, b: 50}, height: 320,
          xaxis: {title: {text: plain(xtitle || "")}}, yaxis: {title: {text: plain(ytitle || "")}},
          showlegend: true, legend: {orientation: "h"}};
}

// ------------------------------------------------------------------ tables
function dataTable(columns) {
  const names = Object.keys(columns);
  const rows = Math.max(0, ...names.map(n => columns[n].length));
  const table = el("table", {class: "grid"});
  const head = table.createTHead().insertRow();
  for (const name of names) head.appendChild(el("th", {}, name));
  const body = table.createTBody();
  for (let i = 0; i < rows; i++) {
    const tr = body.insertRow();
    for (const name of names) {
      const v = columns[name][i];
      tr.appendChild(el("td", {}, v === null || v === undefined ? "" : (typeof v === "object" ? JSON.stringify(v) : v)));
    }
  }
  return table;
}

// ------------------------------------------------------------------ charts
function lineTraces(spec) {
  if (spec.chart === "line") {
    const mode = spec.y.length <= 200 ? "lines+markers" : "lines";
    return [[{x: spec.x, y: spec.y, type: "scatter", mode: mode, name: plain(spec.name)}], spec.xlabel];
  }
  if (spec.chart === "xy") {
    return [spec.series.map(s => ({x: s.x, y: s.y, type: "scatter", mode: "lines+markers", name: plain(s.name)})),
            spec.x_name];
  }
  if (spec.chart === "bars") return [[{x: spec.x, y: spec.y, type: "bar", name: plain(spec.name)}], ""];
  if (spec.chart === "matrix") {
    return [[{z: spec.matrix, x: spec.labels.map(plain), y: spec.labels.map(plain), type: "heatmap",
              colorscale: [[0, "#f7fbff"], [1, "#08306b"]], texttemplate: "%{z}", hoverongaps: false}], "predicted"];
  }
  return null;
}

function renderChart(card, spec, runId) {
  const signature = JSON.stringify([spec.chart, spec.count]);
  if (card.dataset.signature === signature) return;
  card.dataset.signature = signature;
  card.dataset.kind = spec.kind;
  card.dataset.chart = spec.chart;
  if (spec.total !== undefined) card.dataset.total = spec.total;
  const body = $(".chart-body", card);
  const plotted = lineTraces(spec);
  if (plotted) {
    let div = $(".chart", body);
    if (!div) { body.textContent = ""; div = el("div", {class: "chart"}); body.appendChild(div); }
    const layout = plotLayout(spec.name, plotted[1], spec.chart === "matrix" ? "actual" : "");
    if (spec.chart === "matrix") layout.yaxis.autorange = "reversed";
    if (spec.downsampled) layout.title.text += " <span>(" + spec.total + " points, min/max envelope)</span>";
    Plotly.react(div, plotted[0], layout, PLOT_CONFIG);
    if (spec.chart === "xy" && !$("details", body)) {
      const details = el("details"); details.appendChild(el("summary", {}, "table"));
      details.appendChild(dataTable(spec.columns)); body.appendChild(details);
    }
    return;
  }
  body.textContent = "";
  if (spec.chart === "table") body.appendChild(dataTable(spec.columns));
  else if (spec.chart === "values") body.appendChild(dataTable({step: spec.values.map(r => r[0]), value: spec.values.map(r => r[1])}));
  else if (spec.chart === "images") {
    for (const name of spec.files) {
      const fig = el("figure");
      fig.appendChild(el("img", {src: fileUrl(runId, name), alt: name, loading: "lazy"}));
      fig.appendChild(el("figcaption", {}, name));
      body.appendChild(fig);
    }
  } else if (spec.chart === "json") body.appendChild(el("pre", {}, JSON.stringify(spec.value, null, 2)));
}

function renderCharts(container, charts, runId) {
  const loading = $("#charts-loading"); if (loading) loading.remove();
  for (const spec of charts) {
    if (spec.chart === "single") continue;  // shown in the single-values table
    let card = Array.from(container.children).find(c => c.dataset.metric === spec.name);
    if (!card) {
      card = el("section", {class: "chart-card"}); card.dataset.metric = spec.name;
      card.appendChild(el("h3", {}, spec.name + " "));
      $("h3", card).appendChild(el("span", {class: "muted"}, spec.kind));
      card.appendChild(el("div", {class: "chart-body"}));
      container.appendChild(card);
    }
    renderChart(card, spec, runId);
  }
  if (!container.children.length) container.appendChild(el("p", {class: "muted", id: "charts-empty"}, "No charts."));
}

// -------------------------------------------------------------- run page
function setStatus(status) {
  for (const badge of document.querySelectorAll("#overview .status")) {
    badge.textContent = status; badge.className = "status status-" + status; badge.dataset.status = status;
  }
}

async function followLog(runId) {
  const pre = $("#log"), state = $("#log-state");
  let next = 0, first = true;
  for (;;) {
    let data;
    try {
      data = await getJSON("/api/runs/" + encodeURIComponent(runId) + "/log?start=" + next +
                           (first ? "&tail=" + LOG_TAIL_BYTES : ""));
    } catch (err) { state.textContent = "(" + err.message + ", retrying)"; await sleep(LOG_POLL_MS * 3); continue; }
    if (first && data.skipped) pre.appendChild(el("span", {class: "muted"}, "… " + data.skipped + " earlier chunks not shown\n"));
    first = false;
    if (data.text) {
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(data.text));
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    next = data.next;
    setStatus(data.status);
    state.textContent = data.terminal ? "(" + data.status + ")" : "(live)";
    pre.dataset.chunks = String(next);
    if (data.more) continue;
    if (data.terminal) { pre.dataset.done = "1"; return; }
    await sleep(LOG_POLL_MS);
  }
}

async function followCharts(runId) {
  const container = $("#charts");
  for (;;) {
    let data;
    try { data = await getJSON("/api/runs/" + encodeURIComponent(runId) + "/charts"); }
    catch (err) { container.dataset.error = err.message; await sleep(CHART_POLL_MS); continue; }
    await plotlyReady();
    renderCharts(container, data.charts, runId);
    container.dataset.loaded = "1";
    if (data.terminal) return;
    await sleep(CHART_POLL_MS);
  }
}

function sleep(ms) { return new Promise(resolve => setTimeout(resolve, ms)); }

// ---------------------------------------------------------- compare page
async function drawCompare(info) {
  const query = info.runs.map(r => "run=" + encodeURIComponent(r)).join("&");
  const data = await getJSON("/api/compare?" + query);
  await plotlyReady();
  const container = $("#compare-charts");
  for (const [name, traces] of Object.entries(data.metrics)) {
    const card = el("section", {class: "chart-card"}); card.dataset.metric = name;
    card.appendChild(el("h3", {}, name));
    const div = el("div", {class: "chart"}); card.appendChild(div); container.appendChild(card);
    Plotly.newPlot(div, traces.map(t => ({x: t.x, y: t.y, type: "scatter", mode: "lines+markers",
                                          name: plain(t.label), meta: t.run_id})),
                   plotLayout(name, traces[0].xlabel, name), PLOT_CONFIG);
  }
  container.dataset.loaded = "1";
}

// ------------------------------------------------------------ sweep page
function drawSweep(info) {
  const trials = info.trials.filter(t => t.primary !== null);
  const better = info.goal === "MAXIMIZE" ? Math.max : Math.min;
  let best = null;
  const bestSoFar = trials.map(t => (best = best === null ? t.primary : better(best, t.primary)));
  Plotly.newPlot($("#sweep-primary"), [
    {x: trials.map(t => t.order), y: trials.map(t => t.primary), type: "scatter", mode: "markers",
     name: plain(info.primary_metric), text: trials.map(t => plain(t.run_id))},
    {x: trials.map(t => t.order), y: bestSoFar, type: "scatter", mode: "lines", name: "best so far"},
  ], plotLayout(info.primary_metric + " by trial", "trial", info.primary_metric), PLOT_CONFIG);
  if (!trials.length) return;
  const dims = info.axes.map(a => Object.assign({label: plain(a.label), values: a.values},
                                                a.ticktext ? {ticktext: a.ticktext.map(plain), tickvals: a.tickvals} : {}));
  const metric = info.axes[info.axes.length - 1].values;
  Plotly.newPlot($("#sweep-parallel"), [{type: "parcoords", dimensions: dims,
    line: {color: metric, colorscale: "Viridis", reversescale: info.goal !== "MAXIMIZE", showscale: true}}],
    {height: 380, margin: {l: 60, r: 60, t: 50, b: 30}}, PLOT_CONFIG);
}

// ------------------------------------------------------------------ boot
document.addEventListener("DOMContentLoaded", () => {
  const run = pageData("run-data");
  if (run) { followLog(run.run_id); followCharts(run.run_id); }
  const compare = pageData("compare-data");
  if (compare) drawCompare(compare).catch(err => { $("#compare-charts").textContent = err.message; });
  const sweep = pageData("sweep-data");
  if (sweep) plotlyReady().then(() => drawSweep(sweep));
  const compareButton = $("#compare-button");
  if (compareButton) {
    compareButton.form.addEventListener("submit", ev => {
      if (compareButton.form.querySelectorAll("input[name=run]:checked").length < 1) ev.preventDefault();
    });
  }
});
