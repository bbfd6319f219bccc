/* A small hand-written SVG chart module for the resurgo dashboard (no library, works offline).
 * Every chart takes a container element and plain data, clears the container and draws into
 * a fresh <svg>; elements carry data-* attributes so tests (and people) can inspect them. */
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  const COLORS = {
    network: "#4e9af1", timeout: "#f2b84b", resource: "#b07cf7", auth: "#ef5b5b",
    validation: "#5ad1c2", process: "#f28b45", internal: "#9aa5b1",
  };
  const STATE_COLORS = {
    closed: "#3ecf8e", half_open: "#f2b84b", open: "#ef5b5b", forced_open: "#a3263f",
    disabled: "#5f6b7a", metrics_only: "#4e9af1",
  };
  const OUTCOME_COLORS = {
    succeeded: "#3ecf8e", failed: "#ef5b5b", lost: "#8b98a7", cancelled: "#5f6b7a", running: "#4e9af1",
  };
  const PALETTE = ["#4e9af1", "#f2b84b", "#b07cf7", "#ef5b5b", "#5ad1c2", "#f28b45", "#9aa5b1", "#e377c2"];

  function colorFor(key, map) {
    if (map && map[key]) return map[key];
    let h = 0;
    for (const c of String(key)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return PALETTE[h % PALETTE.length];
  }

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function text(parent, x, y, str, attrs) {
    const t = el("text", Object.assign({ x, y }, attrs || {}), parent);
    t.textContent = str;
    return t;
  }

  function svgFor(container, height) {
    container.textContent = "";
    const width = Math.max(260, Math.floor(container.clientWidth || 600));
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" }, container);
    return { svg, width, height };
  }

  function empty(container, message) {
    container.textContent = "";
    const d = document.createElement("div");
    d.className = "empty";
    d.textContent = message;
    container.appendChild(d);
  }

  /* tooltip shared by every chart */
  const tip = () => document.getElementById("tooltip");
  function hover(node, content) {
    node.addEventListener("mousemove", (ev) => {
      const t = tip();
      if (!t) return;
      t.textContent = typeof content === "function" ? content() : content;
      t.classList.add("show");
      const x = Math.min(ev.clientX + 14, window.innerWidth - t.offsetWidth - 8);
      t.style.left = `${x}px`;
      t.style.top = `${ev.clientY + 14}px`;
    });
    node.addEventListener("mouseleave", () => { const t = tip(); if (t) t.classList.remove("show"); });
  }

  /* A count axis: whole-number ticks (a count of 2.5 errors means nothing), at most 5 steps. */
  function countScale(v) {
    if (v <= 0) return { top: 1, step: 1 };
    let step = 1;
    for (let p = 1; ; p *= 10) {
      const s = [1, 2, 5].map((m) => m * p).find((x) => Math.ceil(v / x) <= 5);
      if (s) { step = s; break; }
    }
    return { top: Math.ceil(v / step) * step, step };
  }

  function countGrid(svg, m, W, H, scale) {
    for (let v = 0; v <= scale.top; v += scale.step) {
      const y = m.t + H - (H * v) / scale.top;
      el("line", { x1: m.l, x2: m.l + W, y1: y, y2: y, class: "grid-line" }, svg);
      text(svg, m.l - 6, y + 4, String(v), { "text-anchor": "end" });
    }
  }

  function fmtClock(ts, span) {
    const d = new Date(ts * 1000);
    const hh = String(d.getHours()).padStart(2, "0");
    const mm = String(d.getMinutes()).padStart(2, "0");
    if (span > 2 * 86400) return `${d.getMonth() + 1}/${d.getDate()} ${hh}:${mm}`;
    if (span < 600) return `${hh}:${mm}:${String(d.getSeconds()).padStart(2, "0")}`;
    return `${hh}:${mm}`;
  }

  function timeAxis(svg, x0, x1, y, start, end, ticks) {
    el("line", { x1: x0, x2: x1, y1: y, y2: y, class: "axis" }, svg);
    const span = end - start;
    const n = Math.max(2, ticks || Math.floor((x1 - x0) / 110));
    for (let i = 0; i <= n; i++) {
      const t = start + (span * i) / n;
      const x = x0 + ((x1 - x0) * i) / n;
      el("line", { x1: x, x2: x, y1: y, y2: y + 4, class: "axis" }, svg);
      text(svg, x, y + 16, fmtClock(t, span), { "text-anchor": i === 0 ? "start" : i === n ? "end" : "middle" });
    }
  }

  /* Stacked bars: buckets [{t, counts: {key: n}}], keys in stack order. */
  function stackedBars(container, { buckets, keys, bucketS, start, end, colors, height }) {
    const total = buckets.reduce((s, b) => s + Object.values(b.counts).reduce((a, c) => a + c, 0), 0);
    if (!total) return empty(container, "No errors in this range — nothing to recover from.");
    const { svg, width } = svgFor(container, height || 230);
    const m = { l: 34, r: 8, t: 10, b: 26 };
    const H = (height || 230) - m.t - m.b;
    const W = width - m.l - m.r;
    const scale = countScale(Math.max(...buckets.map((b) => Object.values(b.counts).reduce((a, c) => a + c, 0))));
    const max = scale.top;
    countGrid(svg, m, W, H, scale);
    const span = end - start;
    const bw = (W * bucketS) / span;
    const gap = Math.min(2, bw * 0.2);
    buckets.forEach((b, i) => {
      let y = m.t + H;
      const x = m.l + (W * (b.t - start)) / span;
      const w = Math.max(1, Math.min(bw, m.l + W - x) - gap);
      for (const k of keys) {
        const n = b.counts[k] || 0;
        if (!n) continue;
        const h = (H * n) / max;
        y -= h;
        const r = el("rect", { x: x + gap / 2, y, width: w, height: Math.max(h, 0.5), fill: colorFor(k, colors),
          class: "bar", "data-type": k, "data-count": n, "data-bucket": i, rx: Math.min(2, w / 3) }, svg);
        hover(r, () => `${fmtClock(b.t, 0)}–${fmtClock(b.t + bucketS, 0)}\n${k}: ${n}`);
      }
    });
    timeAxis(svg, m.l, m.l + W, m.t + H, start, end);
  }

  /* A breaker's name fitted to its label column: the supervisor's "endpoint:" + base URL
   * shows as "host:port" (the whole name is in the tooltip), and anything still too long is cut. */
  function shortName(name, px) {
    const s = String(name).replace(/^endpoint:/, "").replace(/^https?:\/\//, "").replace(/\/$/, "");
    const max = Math.max(4, Math.floor(px / 7.2));
    return s.length > max ? s.slice(0, max - 1) + "…" : s;
  }

  /* Coloured state bands, one row per breaker: rows [{name, segments: [{state, start, end}]}]. */
  function stateTimeline(container, { rows, start, end, colors, fmtDur }) {
    if (!rows.length) return empty(container, "No circuit breaker has changed state yet.");
    const rowH = 26, gap = 10, labelW = 150;
    const height = rows.length * (rowH + gap) + 30;
    const { svg, width } = svgFor(container, height);
    const x0 = labelW, x1 = width - 8, W = x1 - x0, span = Math.max(end - start, 1e-9);
    rows.forEach((row, i) => {
      const y = 4 + i * (rowH + gap);
      const label = text(svg, 0, y + rowH / 2 + 4, shortName(row.name, labelW - 8), { class: "label-strong",
        "data-breaker": row.name });
      hover(label, row.name);
      text(svg, 0, y + rowH / 2 + 17, row.subtitle || "", {});
      el("rect", { x: x0, y, width: W, height: rowH, fill: "#10161d", rx: 4 }, svg);
      for (const s of row.segments) {
        const xs = x0 + (W * (s.start - start)) / span;
        const w = Math.max(1.5, (W * (s.end - s.start)) / span);
        const r = el("rect", { x: xs, y, width: w, height: rowH, fill: colorFor(s.state, colors), class: "band",
          "data-state": s.state, "data-breaker": row.name, opacity: s.state === "closed" ? 0.55 : 0.95 }, svg);
        hover(r, () => `${row.name}: ${s.state}\n${fmtClock(s.start, 0)} → ${fmtClock(s.end, 0)} (${fmtDur(s.end - s.start)})`);
      }
    });
    timeAxis(svg, x0, x1, rows.length * (rowH + gap) + 2, start, end);
  }

  /* Histogram with labelled bins [{label, count}] and optional vertical markers on a bin scale. */
  function histogram(container, { bins, markers, color, height }) {
    const total = bins.reduce((s, b) => s + b.count, 0);
    if (!total) return empty(container, "No completed recovery in this range.");
    const { svg, width } = svgFor(container, height || 220);
    // the top strip holds the marker labels, above the count printed on the tallest bar
    const m = { l: 30, r: 8, t: 30, b: 30 };
    const H = (height || 220) - m.t - m.b, W = width - m.l - m.r;
    const scale = countScale(Math.max(...bins.map((b) => b.count)));
    const max = scale.top;
    countGrid(svg, m, W, H, scale);
    const bw = W / bins.length;
    // Markers first, so bars and their counts are drawn over the dashed lines.  Markers in the
    // same bin (p50 and p95 often are, with few recoveries) share one line and one label, or
    // their texts would be drawn over each other.
    const byBin = new Map();
    for (const mk of markers || []) {
      if (mk.bin == null) continue;
      if (!byBin.has(mk.bin)) byBin.set(mk.bin, []);
      byBin.get(mk.bin).push(mk);
    }
    let labelEnd = -Infinity;
    for (const [bin, mks] of [...byBin.entries()].sort((a, b) => a[0] - b[0])) {
      const x = m.l + (bin + 0.5) * bw;
      el("line", { x1: x, x2: x, y1: 8, y2: m.t + H, stroke: mks[0].color, class: "marker" }, svg);
      const right = x > m.l + W * 0.7;  // near the right edge: the label goes to the left of its line
      const t = el("text", { x: right ? x - 4 : Math.max(x + 4, labelEnd + 8), y: 10, class: "marker-label",
        "text-anchor": right ? "end" : "start" }, svg);
      mks.forEach((mk, i) => {
        const span = el("tspan", { fill: mk.color }, t);
        span.textContent = (i ? " · " : "") + mk.label;
      });
      labelEnd = right ? x : Math.max(x + 4, labelEnd + 8) + t.getComputedTextLength();
    }
    bins.forEach((b, i) => {
      const h = (H * b.count) / max;
      const x = m.l + i * bw;
      if (b.count) {
        const r = el("rect", { x: x + 3, y: m.t + H - h, width: bw - 6, height: h, fill: color || "#4ecdc4",
          rx: 3, class: "bar", "data-bin": b.label, "data-count": b.count }, svg);
        hover(r, `${b.range}: ${b.count} recover${b.count === 1 ? "y" : "ies"}`);
        text(svg, x + bw / 2, m.t + H - h - 4, String(b.count), { "text-anchor": "middle", class: "label-strong" });
      }
      text(svg, x + bw / 2, m.t + H + 16, b.label, { "text-anchor": "middle" });
    });
    el("line", { x1: m.l, x2: m.l + W, y1: m.t + H, y2: m.t + H, class: "axis" }, svg);
  }

  /* Horizontal stacked bars per item: items [{label, parts: [{key, n, color}], note}]. */
  function hbars(container, { items }) {
    if (!items.length) return empty(container, "No recovery in this range.");
    const rowH = 24, gap = 12, labelW = 140, noteW = 70;
    const height = items.length * (rowH + gap) + 4;
    const { svg, width } = svgFor(container, height);
    const W = width - labelW - noteW;
    const max = Math.max(...items.map((it) => it.parts.reduce((s, p) => s + p.n, 0)), 1);
    items.forEach((it, i) => {
      const y = 2 + i * (rowH + gap);
      text(svg, 0, y + rowH / 2 + 4, it.label, { class: "label-strong" });
      let x = labelW;
      el("rect", { x: labelW, y, width: W, height: rowH, fill: "#10161d", rx: 4 }, svg);
      for (const p of it.parts) {
        if (!p.n) continue;
        const w = (W * p.n) / max;
        const r = el("rect", { x, y, width: w, height: rowH, fill: p.color, class: "bar", rx: 3,
          "data-strategy": it.label, "data-part": p.key, "data-count": p.n }, svg);
        hover(r, `${it.label}: ${p.n} ${p.key}`);
        if (w > 18) text(svg, x + w / 2, y + rowH / 2 + 4, String(p.n), { "text-anchor": "middle", fill: "#0f1419", "font-weight": 700 });
        x += w;
      }
      text(svg, width - 4, y + rowH / 2 + 4, it.note, { "text-anchor": "end", class: "label-strong" });
    });
  }

  /* One job's timeline: lanes of attempts, recoveries (waits darker), errors and events. */
  function jobTimeline(container, { start, end, attempts, recoveries, events, errors, fmtDur }) {
    const lanes = ["attempts", "recoveries", "errors", "events"];
    const laneH = 24, gap = 10, labelW = 90;
    const height = lanes.length * (laneH + gap) + 30;
    const { svg, width } = svgFor(container, height);
    const x0 = labelW, x1 = width - 8, W = x1 - x0, span = Math.max(end - start, 1e-6);
    const X = (t) => x0 + (W * (Math.min(Math.max(t, start), end) - start)) / span;
    lanes.forEach((name, i) => {
      const y = i * (laneH + gap);
      text(svg, 0, y + laneH / 2 + 4, name, {});
      el("rect", { x: x0, y, width: W, height: laneH, fill: "#10161d", rx: 4 }, svg);
    });
    const yOf = (lane) => lanes.indexOf(lane) * (laneH + gap);
    for (const a of attempts) {
      const s = a.started_at, e = a.ended_at == null ? end : a.ended_at;
      const outcome = a.outcome || (a.ended_at == null ? "running" : "unknown");
      const r = el("rect", { x: X(s), y: yOf("attempts") + 3, width: Math.max(2, X(e) - X(s)), height: laneH - 6,
        fill: colorFor(outcome, OUTCOME_COLORS), rx: 3, class: "bar", "data-attempt": a.n, "data-outcome": outcome }, svg);
      hover(r, `attempt #${a.n} (${a.kind}) — ${outcome}\n${fmtDur(e - s)}${a.killed_by ? `\nkilled by ${a.killed_by}` : ""}`);
      if (X(e) - X(s) > 40) text(svg, X(s) + 6, yOf("attempts") + laneH / 2 + 4, `#${a.n} ${a.kind}`, { fill: "#ffffff", "font-weight": 600 });
    }
    for (const r of recoveries) {
      const s = r.detected_at, e = r.restored_at == null ? end : r.restored_at;
      const color = r.succeeded === 1 ? "#f2b84b" : r.succeeded === 0 ? "#ef5b5b" : "#8b98a7";
      const band = el("rect", { x: X(s), y: yOf("recoveries") + 3, width: Math.max(3, X(e) - X(s)), height: laneH - 6,
        fill: color, rx: 3, class: "band", "data-recovery": r.id, opacity: 0.9 }, svg);
      if (r.waited_s > 0) {
        el("rect", { x: X(s), y: yOf("recoveries") + 3, width: Math.max(1, X(s + r.waited_s) - X(s)), height: laneH - 6,
          fill: "#000", opacity: 0.3, rx: 3 }, svg);
      }
      hover(band, `${r.strategy} (${r.error_type || "?"})\n${r.restored_at == null ? "not restored" : `restored in ${fmtDur(e - s)}`}${r.waited_s ? `, ${fmtDur(r.waited_s)} imposed wait` : ""}`);
    }
    for (const er of errors) {
      const x = X(er.ts), y = yOf("errors") + laneH / 2;
      const d = el("path", { d: `M${x} ${y - 7} L${x + 7} ${y} L${x} ${y + 7} L${x - 7} ${y} Z`,
        fill: colorFor(er.type, COLORS), class: "bar", "data-error": er.type }, svg);
      hover(d, `${er.type}: ${er.message || er.signature || ""}`);
    }
    for (const ev of events) {
      const x = X(ev.ts);
      const l = el("line", { x1: x, x2: x, y1: yOf("events") + 4, y2: yOf("events") + laneH - 4,
        stroke: ev.source === "supervisor" ? "#f28b45" : "#8bbcf7", "stroke-width": 2, class: "tick" }, svg);
      hover(l, `${ev.source}: ${ev.type || ""}${ev.subtype ? "/" + ev.subtype : ""}`);
    }
    timeAxis(svg, x0, x1, lanes.length * (laneH + gap) + 2, start, end, 6);
  }

  /* Adaptive concurrency: the limit of each endpoint as a step line, overload signals as ticks
   * underneath (dropped = refusals, latency, paused = a reset), pauses as shaded spans. */
  function limitChart(container, { rows, start, end, height }) {
    const withData = rows.filter((r) => r.limit.length);
    if (!withData.length) return empty(container, "No adaptive concurrency in this range (run with --concurrency auto).");
    const Ht = height || 220;
    const { svg, width } = svgFor(container, Ht);
    const m = { l: 34, r: 8, t: 10, b: 40 };
    const H = Ht - m.t - m.b;
    const W = width - m.l - m.r;
    const span = Math.max(1e-9, end - start);
    const X = (t) => m.l + (W * (Math.min(Math.max(t, start), end) - start)) / span;
    const scale = countScale(Math.max(1, ...withData.flatMap((r) => r.limit.map((p) => p[1]))));
    countGrid(svg, m, W, H, scale);
    const Y = (v) => m.t + H - (H * v) / scale.top;
    const OVER = { dropped: "#ef5b5b", latency: "#f2b84b", paused: "#b07cf7" };
    withData.forEach((r, i) => {
      const color = PALETTE[i % PALETTE.length];
      for (const p of r.pauses) {
        el("rect", { x: X(p[0]), y: m.t, width: Math.max(1, X(p[1]) - X(p[0])), height: H, fill: OVER.paused,
          opacity: 0.15, class: "pause" }, svg);
      }
      let d = "";
      r.limit.forEach((p, j) => {
        const x = X(p[0]);
        const y = Y(p[1]);
        d += j === 0 ? `M${x},${y}` : `H${x}V${y}`;
      });
      d += `H${X(end)}`;
      const path = el("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "limit-line",
        "data-endpoint": r.endpoint, "data-points": r.limit.length, "data-current": r.current }, svg);
      hover(path, () => `${r.endpoint}\nlimit now ${r.current} · ${r.limit.length} points`);
      for (const o of r.overloads) {
        const x = X(o[0]);
        const tick = el("line", { x1: x, x2: x, y1: m.t + H + 2, y2: m.t + H + 10, stroke: OVER[o[1]] || "#9aa5b1",
          "stroke-width": 1.5, class: "overload", "data-kind": o[1] }, svg);
        hover(tick, () => `${fmtClock(o[0], 0)} ${o[2]}`);
      }
    });
    timeAxis(svg, m.l, m.l + W, m.t + H + 12, start, end);
  }

  return { COLORS, STATE_COLORS, OUTCOME_COLORS, colorFor, stackedBars, stateTimeline, histogram, hbars, jobTimeline,
    limitChart };
})();
