// A tiny SVG chart helper (no dependencies): line charts with several series and bar
// charts. Data: {labels: [...], series: [{name, values: [number|null, ...]}, ...]}.
// Usage: <div data-chart="line|bar" data-chart-source="<json_script id>"> or
// AgentStoreCharts.line(element, data, {max}). Colours follow the theme (CSS variables).
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#D4AF37", "#3b82f6", "#10b981", "#ef4444", "#8b5cf6", "#f97316"];
  const W = 560, H = 240, PAD = {top: 12, right: 12, bottom: 28, left: 36};

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  // A "nice" axis: a step of 1, 2 or 5 × 10^k (never below 1 for whole-number data) and
  // the smallest multiple of it that holds the largest value.
  function axis(values, fixedMax) {
    if (fixedMax) return {max: fixedMax, step: fixedMax / (fixedMax <= 5 ? fixedMax : 4)};
    const top = Math.max.apply(null, values.concat([0]));
    const whole = values.every(function (v) { return Number.isInteger(v); });
    const raw = Math.max(top / 4, whole ? 1 : 0.1);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = [1, 2, 5, 10].map(function (m) { return m * power; })
      .find(function (s) { return s >= raw; });
    if (whole) step = Math.max(1, Math.round(step));
    return {max: Math.max(step, Math.ceil(top / step) * step), step: step};
  }

  function frame(container, data, options) {
    container.textContent = "";
    const svg = el("svg", {viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "xMidYMid meet"}, container);
    const values = [];
    data.series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null) values.push(v); }); });
    const scale = axis(values, options.max);
    const max = scale.max;
    const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
    const y = function (v) { return PAD.top + plotH - (v / max) * plotH; };
    for (let i = 0; i * scale.step <= max + 1e-9; i++) {
      const v = scale.step * i;
      el("line", {x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: i ? "grid-line" : "axis"}, svg);
      const label = el("text", {x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end"}, svg);
      label.textContent = Number.isInteger(v) ? String(v) : v.toFixed(1);
    }
    return {svg: svg, y: y, plotW: plotW, plotH: plotH, max: max};
  }

  function xLabels(svg, labels, xOf) {
    const every = Math.max(1, Math.ceil(labels.length / 6));
    labels.forEach(function (label, i) {
      if (i % every !== 0 && i !== labels.length - 1) return;
      const text = el("text", {x: xOf(i), y: H - 8, "text-anchor": "middle"}, svg);
      text.textContent = String(label).length === 10 ? String(label).slice(5) : label;
    });
  }

  function legend(container, series) {
    if (series.length < 2) return;
    const box = document.createElement("div");
    box.className = "legend";
    series.forEach(function (s, i) {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = PALETTE[i % PALETTE.length];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(s.name));
      box.appendChild(item);
    });
    container.appendChild(box);
  }

  function line(container, data, options) {
    options = options || {};
    const f = frame(container, data, options);
    const n = data.labels.length;
    const xOf = function (i) { return PAD.left + (n > 1 ? (i / (n - 1)) * f.plotW : f.plotW / 2); };
    data.series.forEach(function (s, index) {
      const colour = PALETTE[index % PALETTE.length];
      let path = "", pen = false;
      s.values.forEach(function (v, i) {
        if (v === null || v === undefined) { pen = false; return; }
        path += (pen ? " L" : " M") + xOf(i).toFixed(1) + " " + f.y(v).toFixed(1);
        pen = true;
      });
      if (path) el("path", {d: path, fill: "none", stroke: colour, "stroke-width": 2, "stroke-linejoin": "round"}, f.svg);
      s.values.forEach(function (v, i) {
        if (v === null || v === undefined) return;
        const dot = el("circle", {cx: xOf(i), cy: f.y(v), r: n > 60 ? 1.5 : 2.5, fill: colour}, f.svg);
        const title = el("title", {}, dot);
        title.textContent = s.name + " · " + data.labels[i] + ": " + v;
      });
    });
    xLabels(f.svg, data.labels, xOf);
    legend(container, data.series);
  }

  function bar(container, data, options) {
    options = options || {};
    const f = frame(container, data, options);
    const n = data.labels.length, groups = data.series.length;
    const slot = f.plotW / Math.max(1, n);
    const width = Math.min(48, (slot * 0.7) / groups);
    const xOf = function (i) { return PAD.left + slot * i + slot / 2; };
    data.series.forEach(function (s, index) {
      const colour = PALETTE[index % PALETTE.length];
      s.values.forEach(function (v, i) {
        const x = xOf(i) - (width * groups) / 2 + width * index;
        const rect = el("rect", {x: x, y: f.y(v || 0), width: width, height: Math.max(0, f.y(0) - f.y(v || 0)), rx: 3, fill: colour}, f.svg);
        const title = el("title", {}, rect);
        title.textContent = s.name + " · " + data.labels[i] + ": " + (v || 0);
      });
    });
    xLabels(f.svg, data.labels, xOf);
    legend(container, data.series);
  }

  function renderAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(function (container) {
      const source = document.getElementById(container.getAttribute("data-chart-source"));
      if (!source) return;
      const data = JSON.parse(source.textContent);
      const max = parseFloat(container.getAttribute("data-chart-max")) || undefined;
      (container.getAttribute("data-chart") === "bar" ? bar : line)(container, data, {max: max});
    });
  }

  window.AgentStoreCharts = {line: line, bar: bar, renderAll: renderAll};
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { renderAll(); });
  } else {
    renderAll();
  }
})();
