/* resurgo dashboard: fetches the JSON API, draws with Charts, stays live through server-sent
 * events and falls back to polling when the stream is refused or keeps failing. */
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  /* "fit": from the first record to the last one (to now while jobs run), so a 20-second demo
   * fills the charts instead of being a sliver at the right edge of a 24 h axis.  It is where the
   * dashboard opens unless the address names a range (#1h, ...); the buttons still choose one. */
  const RANGES = ["fit", "15m", "1h", "6h", "24h", "7d", "all"];
  const ACTIVE = ["pending", "running", "recovering", "waiting"];
  const state = {
    range: RANGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : "fit",
    fit: null,
    job: null,
    now: Date.now() / 1000,
    timer: null,
    poll: null,
    inflight: false,
    again: false,
  };
  if (!RANGES.includes(state.range)) state.range = "fit";

  /* ---- formatting (the browser test parses these back, keep them regular) ---- */
  const pct = (x) => (x == null ? "—" : `${(x * 100).toFixed(1)}%`);
  function dur(s) {
    if (s == null) return "—";
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 60) return `${s.toFixed(1)} s`;
    if (s < 3600) return `${(s / 60).toFixed(1)} min`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  }
  function clock(ts) {
    if (ts == null) return "—";
    const d = new Date(ts * 1000);
    const t = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
    const today = new Date(state.now * 1000).toDateString() === d.toDateString();
    return today ? t : `${d.getMonth() + 1}/${d.getDate()} ${t}`;
  }
  const num = (x, digits) => (x == null ? "—" : x.toFixed(digits));

  async function getJSON(url) {
    const res = await fetch(url, { credentials: "same-origin" });
    if (!res.ok) throw new Error(`${res.status}`);
    return res.json();
  }

  /* The window that fits the data: [first record, last record] with a little margin each side,
   * ending now while any job is still active.  Recomputed on every refresh (live runs grow). */
  async function computeFit() {
    const [s, j] = await Promise.all([getJSON("api/summary?range=all"), getJSON("api/jobs?range=all&limit=5000")]);
    const now = s.now;
    const first = s.window.start;
    let last = null;
    let active = false;
    for (const job of j.jobs) {
      const t = job.finished_at ?? job.updated_at ?? job.created_at;
      if (t != null && (last == null || t > last)) last = t;
      if (ACTIVE.includes(job.state)) active = true;
    }
    if (first == null || first >= now) return { start: now - 900, end: now };  // an empty store
    if (active || last == null) last = now;
    const pad = Math.max(2, 0.05 * (last - first));
    return { start: first - pad, end: active ? now : Math.min(now, last + pad) };
  }

  function rangeQuery() {
    if (state.range === "fit" && state.fit) return `start=${state.fit.start}&end=${state.fit.end}`;
    return `range=${encodeURIComponent(state.range === "fit" ? "24h" : state.range)}`;
  }

  async function api(path) {
    const sep = path.includes("?") ? "&" : "?";
    const res = await fetch(`${path}${sep}${rangeQuery()}`, { credentials: "same-origin" });
    if (!res.ok) {
      let msg = `${res.status}`;
      try { msg = (await res.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return res.json();
  }

  /* ---- tiles ---- */
  function tile(metric, value, display, hint, level) {
    const t = document.querySelector(`.tile[data-metric="${metric}"]`);
    t.dataset.value = value == null ? "" : String(value);
    t.querySelector(".value").textContent = display;
    t.querySelector(".hint").textContent = hint;
    t.classList.remove("good", "warn", "bad");
    if (level) t.classList.add(level);
  }
  const level = (x, good, warn) => (x == null ? null : x >= good ? "good" : x >= warn ? "warn" : "bad");

  function renderTiles(s) {
    const av = s.availability, rec = s.recoveries, rt = s.retries, er = s.errors;
    tile("availability_time", av.time_ratio, pct(av.time_ratio),
      av.run_s ? `down ${dur(av.down_s)} of ${dur(av.run_s)} run · excl. imposed waits ${pct(av.time_ratio_excl_imposed)}`
        : "no job ran", level(av.time_ratio, 0.99, 0.95));
    tile("availability_jobs", av.job_ratio, pct(av.job_ratio),
      `${av.jobs_succeeded} of ${av.jobs_finished} finished jobs`, level(av.job_ratio, 0.95, 0.8));
    tile("mttr", av.mttr_s, dur(av.mttr_s), `without imposed waits ${dur(av.mttr_active_s)}`,
      av.mttr_s == null ? null : av.mttr_s <= 30 ? "good" : "warn");
    tile("mtbf", av.mtbf_s, dur(av.mtbf_s), `${av.failures} failure${av.failures === 1 ? "" : "s"}`, null);
    tile("recovery_success", rec.success_rate, pct(rec.success_rate),
      `${rec.succeeded} of ${rec.succeeded + rec.failed}${rec.pending ? ` · ${rec.pending} pending` : ""}`,
      level(rec.success_rate, 0.9, 0.75));
    tile("retry_success", rt.success_rate, pct(rt.success_rate),
      `mean ${num(rt.mean_attempts, 2)} attempts · ${rt.operations} ops`, level(rt.success_rate, 0.9, 0.75));
    tile("errors", er.total, String(er.total),
      `${er.per_hour == null ? "—" : er.per_hour.toFixed(1)}/h · ${er.retryable} retryable`, null);
    const j = s.jobs, active = (j.running || 0) + (j.recovering || 0) + (j.waiting || 0);
    const total = Object.values(j).reduce((a, b) => a + b, 0);
    tile("jobs_active", active, String(active), `${j.pending || 0} pending · ${total} in range`, null);
  }

  function legend(container, keys, colors) {
    container.textContent = "";
    for (const k of keys) {
      const span = document.createElement("span");
      span.className = "key";
      const sw = document.createElement("span");
      sw.className = "sw";
      sw.style.background = Charts.colorFor(k, colors);
      span.append(sw, document.createTextNode(k.replace("_", " ")));
      container.appendChild(span);
    }
  }

  /* ---- charts ---- */
  function renderErrors(e, win) {
    const series = e.series;
    const totals = {};
    series.counts.forEach((c) => { for (const [k, n] of Object.entries(c)) totals[k] = (totals[k] || 0) + n; });
    const keys = series.types.slice().sort((a, b) => totals[b] - totals[a] || a.localeCompare(b));
    legend($("#errors-legend"), keys, Charts.COLORS);
    Charts.stackedBars($("#chart-errors"), {
      buckets: series.counts.map((counts, i) => ({ t: series.start + i * series.bucket_s, counts })),
      keys, bucketS: series.bucket_s, start: win.start, end: win.end, colors: Charts.COLORS,
    });
    const ol = $("#signatures");
    ol.textContent = "";
    for (const s of e.stats.by_signature.slice(0, 8)) {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "sw";
      sw.style.background = Charts.colorFor(s.type, Charts.COLORS);
      const txt = document.createElement("div");
      txt.className = "txt";
      const sig = document.createElement("div");
      sig.className = "sig";
      sig.textContent = `${s.signature || "(no signature)"} · ${s.type}`;
      const msg = document.createElement("div");
      msg.className = "msg";
      msg.textContent = s.message || "";
      msg.title = s.message || "";
      txt.append(sig, msg);
      const n = document.createElement("span");
      n.className = "n";
      n.textContent = String(s.count);
      li.append(sw, txt, n);
      ol.appendChild(li);
    }
    if (!e.stats.by_signature.length) {
      const li = document.createElement("li");
      li.textContent = "No errors in this range.";
      ol.appendChild(li);
    }
  }

  function renderBreakers(s) {
    const win = s.window;
    const states = new Set();
    s.breakers.forEach((b) => b.segments.forEach((g) => states.add(g.state)));
    const order = ["closed", "half_open", "open", "forced_open", "disabled", "metrics_only"];
    legend($("#breaker-legend"), order.filter((x) => states.has(x)).concat([...states].filter((x) => !order.includes(x))), Charts.STATE_COLORS);
    Charts.stateTimeline($("#chart-breakers"), {
      rows: s.breakers.map((b) => ({
        name: b.name,
        subtitle: `${b.state.replace("_", " ")} · ${b.transitions} change${b.transitions === 1 ? "" : "s"}`,
        segments: b.segments,
      })),
      start: win.start, end: win.end, colors: Charts.STATE_COLORS, fmtDur: dur,
    });
  }

  function renderConcurrency(c) {
    const rows = c.endpoints || [];
    Charts.limitChart($("#chart-concurrency"), { rows, start: c.window.start, end: c.window.end });
    const parts = rows.filter((r) => r.limit.length).map((r) => {
      const w = r.queue_wait;
      const wait = w.count ? ` · queue wait mean ${dur(w.mean_s)}, p95 ${dur(w.p95_s)}` : "";
      return `limit ${r.current} · ${r.overload_count} overload signal${r.overload_count === 1 ? "" : "s"}${wait}`;
    });
    $("#concurrency-stats").textContent = parts.join(" | ");
  }

  const BIN_LABELS = { 0.5: "≤0.5s", 1: "1s", 2: "2s", 5: "5s", 10: "10s", 30: "30s", 60: "1m", 120: "2m", 300: "5m", 600: "10m", 1800: "30m" };
  function renderRecovery(s) {
    const r = s.recoveries;
    let prev = 0;
    const bins = r.histogram.map(([bound, count]) => {
      const label = bound == null ? `>${BIN_LABELS[prev] || prev + "s"}` : (BIN_LABELS[bound] || `${bound}s`);
      const range = bound == null ? `over ${dur(prev)}` : `${dur(prev)} – ${dur(bound)}`;
      const b = { label, count, bound, range };
      prev = bound == null ? prev : bound;
      return b;
    });
    const binOf = (v) => {
      if (v == null) return null;
      const i = bins.findIndex((b) => b.bound != null && v <= b.bound);
      return i < 0 ? bins.length - 1 : i;
    };
    Charts.histogram($("#chart-recovery"), {
      bins, color: "#4ecdc4",
      markers: [
        { bin: binOf(r.time.p50), label: `p50 ${dur(r.time.p50)}`, color: "#e6edf3" },
        { bin: binOf(r.time.p95), label: `p95 ${dur(r.time.p95)}`, color: "#f2b84b" },
      ],
    });
    $("#recovery-stats").textContent = r.time.count
      ? `p50 ${dur(r.time.p50)} · p95 ${dur(r.time.p95)} · max ${dur(r.time.max)} · without waits p50 ${dur(r.active_time.p50)}`
      : "";
    Charts.hbars($("#chart-strategies"), {
      items: r.by_strategy.map((x) => ({
        label: x.strategy.replaceAll("_", " "),
        note: pct(x.success_rate),
        parts: [
          { key: "succeeded", n: x.succeeded, color: "#3ecf8e" },
          { key: "failed", n: x.failed, color: "#ef5b5b" },
          { key: "pending", n: x.pending, color: "#8b98a7" },
        ],
      })),
    });
  }

  function cell(tr, content, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    tr.appendChild(td);
    return td;
  }
  function badge(stateName) {
    const b = document.createElement("span");
    b.className = `badge ${stateName}`;
    b.textContent = stateName;
    return b;
  }

  function renderJobs(data) {
    const tbody = $("#jobs tbody");
    tbody.textContent = "";
    for (const j of data.jobs) {
      const tr = document.createElement("tr");
      tr.dataset.jobId = j.id;
      if (j.id === state.job) tr.classList.add("sel");
      const name = document.createElement("span");
      name.textContent = j.name || j.id;
      const id = document.createElement("span");
      id.className = "id";
      id.textContent = j.id.length > 12 ? j.id.slice(0, 12) + "…" : j.id;
      const first = document.createElement("span");
      first.append(name, id);
      cell(tr, first);
      cell(tr, badge(j.state));
      cell(tr, String(j.attempts), "num");
      cell(tr, String(j.recoveries), "num");
      cell(tr, clock(j.started_at));
      const end = j.finished_at != null ? j.finished_at : ["running", "recovering", "waiting"].includes(j.state) ? state.now : null;
      cell(tr, j.started_at != null && end != null ? dur(end - j.started_at) : "—", "num");
      const r = cell(tr, j.reason || "", "reason");
      r.title = j.reason || "";
      tr.addEventListener("click", () => selectJob(j.id));
      tbody.appendChild(tr);
    }
    $("#jobs-count").textContent = `${data.jobs.length} job${data.jobs.length === 1 ? "" : "s"}`;
  }

  /* ---- health strip: one chip per component of every live supervisor ---- */
  function renderHealth(h) {
    const strip = $("#health");
    strip.dataset.overall = h.overall || "";
    const overall = $("#health-overall");
    overall.className = `health-overall ${h.overall || "none"}`;
    overall.textContent = h.overall || "no live supervisor reporting";
    const box = $("#health-chips");
    box.textContent = "";
    const many = h.supervisors.length > 1;
    for (const c of h.components) {
      const chip = document.createElement("span");
      chip.className = `chip ${c.state}`;
      chip.dataset.component = c.component;
      chip.dataset.state = c.state;
      chip.dataset.owner = c.owner;
      const dot = document.createElement("span");
      dot.className = "dot";
      const i = c.component.indexOf(":");
      const kind = document.createElement("b");
      kind.textContent = i < 0 ? c.component : c.component.slice(0, i);
      const rest = i < 0 ? "" : c.component.slice(i + 1).replace(/^https?:\/\//, "");
      const pid = many ? ` @${c.owner.split(":").slice(-2, -1)[0]}` : "";
      chip.append(dot, kind, document.createTextNode(` ${rest}${pid}`));
      chip.title = `${c.component}: ${c.state}\n${c.detail}\nchecked ${dur(c.age_s)} ago · supervisor ${c.owner}`;
      box.appendChild(chip);
    }
  }

  /* ---- job drill-down ---- */
  async function selectJob(id) {
    state.job = id;
    document.querySelectorAll("#jobs tbody tr").forEach((tr) => tr.classList.toggle("sel", tr.dataset.jobId === id));
    await renderDetail(true);
  }

  function miniTable(table, cols, rows) {
    table.textContent = "";
    const head = document.createElement("tr");
    for (const [title] of cols) { const th = document.createElement("th"); th.textContent = title; head.appendChild(th); }
    table.appendChild(head);
    for (const r of rows) {
      const tr = document.createElement("tr");
      for (const [, f] of cols) cell(tr, f(r));
      table.appendChild(tr);
    }
    if (!rows.length) { const tr = document.createElement("tr"); cell(tr, "none"); table.appendChild(tr); }
  }

  async function renderDetail(scroll) {
    if (!state.job) return;
    let d;
    try {
      const res = await fetch(`api/jobs/${encodeURIComponent(state.job)}`, { credentials: "same-origin" });
      if (!res.ok) throw new Error(String(res.status));
      d = await res.json();
    } catch (e) {
      return;
    }
    const sec = $("#detail-section");
    sec.classList.remove("hidden");
    const j = d.job;
    $("#detail-title").textContent = `${j.name || j.id}`;
    const facts = $("#detail-facts");
    facts.textContent = "";
    const env = j.env && typeof j.env === "object" ? Object.entries(j.env).map(([k, v]) => `${k}=${v}`).join(" ") : "";
    for (const [k, v] of [
      ["state", j.state], ["job id", j.id], ["session", j.session_id || "—"], ["model", j.model || "—"],
      ["attempts", String(j.attempts)], ["recoveries", String(j.recoveries)], ["cwd", j.cwd],
      ["endpoint", j.endpoint || "—"], ["started", clock(j.started_at)], ["finished", clock(j.finished_at)],
      ["arguments", Array.isArray(j.args) ? j.args.join(" ") || "—" : String(j.args || "—")], ["environment", env || "—"],
    ]) {
      const div = document.createElement("div");
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v; dd.title = v;
      div.append(dt, dd);
      facts.appendChild(div);
    }
    const times = [j.created_at, j.started_at, j.finished_at]
      .concat(d.attempts.flatMap((a) => [a.started_at, a.ended_at]))
      .concat(d.recoveries.flatMap((r) => [r.detected_at, r.restored_at]))
      .concat(d.events.map((e) => e.ts)).filter((t) => t != null);
    const start = Math.min(...times);
    const active = ["running", "recovering", "waiting"].includes(j.state);
    const end = Math.max(...times, active ? state.now : -Infinity);
    const pad = Math.max((end - start) * 0.02, 0.5);
    Charts.jobTimeline($("#chart-job"), {
      start: start - pad, end: end + pad, attempts: d.attempts, recoveries: d.recoveries,
      events: d.events, errors: d.errors, fmtDur: dur,
    });
    miniTable($("#detail-attempts"), [
      ["#", (a) => String(a.n)], ["kind", (a) => a.kind], ["started", (a) => clock(a.started_at)],
      ["took", (a) => (a.ended_at == null ? "running" : dur(a.ended_at - a.started_at))],
      ["outcome", (a) => a.outcome || "—"], ["killed by", (a) => a.killed_by || ""],
    ], d.attempts);
    miniTable($("#detail-recoveries"), [
      ["strategy", (r) => r.strategy], ["error", (r) => r.error_type || "—"], ["detected", (r) => clock(r.detected_at)],
      ["restored in", (r) => (r.restored_at == null ? "—" : dur(r.restored_at - r.detected_at))],
      ["waited", (r) => (r.waited_s ? dur(r.waited_s) : "")],
      ["result", (r) => (r.succeeded == null ? "pending" : r.succeeded ? "succeeded" : "failed")],
    ], d.recoveries);
    $("#detail-events-count").textContent = d.events_total > d.events.length
      ? `(newest ${d.events.length} of ${d.events_total})` : `(${d.events_total})`;
    const box = $("#detail-events");
    box.textContent = "";
    for (const e of d.events.slice(-300)) {
      const row = document.createElement("div");
      row.className = "ev";
      const t = document.createElement("span"); t.className = "t"; t.textContent = clock(e.ts);
      const s = document.createElement("span"); s.className = `src ${e.source}`; s.textContent = e.source;
      const ty = document.createElement("span"); ty.textContent = `${e.type || ""}${e.subtype ? "/" + e.subtype : ""}`;
      const data = document.createElement("span"); data.className = "data";
      const json = JSON.stringify(e.data);
      data.textContent = json && json.length > 400 ? json.slice(0, 400) + "…" : json;
      data.title = json ? json.slice(0, 2000) : "";
      row.append(t, s, ty, data);
      box.appendChild(row);
    }
    if (scroll) sec.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  /* ---- refresh loop ---- */
  async function refresh() {
    if (state.inflight) { state.again = true; return; }
    state.inflight = true;
    try {
      if (state.range === "fit") state.fit = await computeFit();
      const [s, e, jobs, health, conc] = await Promise.all(
        [api("api/summary"), api("api/errors"), api("api/jobs"), api("api/health"), api("api/concurrency")]);
      state.now = s.now;
      renderHealth(health);
      renderTiles(s);
      renderErrors(e, s.window);
      renderBreakers(s);
      renderConcurrency(conc);
      renderRecovery(s);
      renderJobs(jobs);
      if (state.job) await renderDetail(false);
      $("#updated").textContent = `updated ${clock(s.now)}`;
      document.body.dataset.loaded = "1";
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    } catch (err) {
      $("#live-text").textContent = `error: ${err.message}`;
      $("#live").className = "live off";
    } finally {
      state.inflight = false;
      if (state.again) { state.again = false; setTimeout(refresh, 50); }
    }
  }
  function soon() { clearTimeout(state.timer); state.timer = setTimeout(refresh, 250); }

  function setLive(mode, label) {
    $("#live").className = `live ${mode}`;
    $("#live-text").textContent = label;
  }

  function startPolling() {
    if (state.poll) return;
    setLive("poll", "polling every 5 s");
    state.poll = setInterval(refresh, 5000);
  }

  function startStream() {
    if (!window.EventSource) return startPolling();
    let failures = 0;
    const es = new EventSource("api/stream");
    es.addEventListener("open", () => { failures = 0; setLive("on", "live"); });
    es.addEventListener("update", soon);
    es.addEventListener("error", () => {
      failures += 1;
      if (failures >= 3 || es.readyState === EventSource.CLOSED) {
        es.close();
        startPolling();
      } else {
        setLive("off", "reconnecting");
      }
    });
  }

  /* ---- controls ---- */
  function setRange(r) {
    state.range = r;
    if (location.hash.slice(1) !== r) history.replaceState(null, "", `#${r}`);
    document.querySelectorAll("#ranges button").forEach((b) => b.classList.toggle("on", b.dataset.range === r));
    refresh();
  }
  document.querySelectorAll("#ranges button").forEach((b) => b.addEventListener("click", () => setRange(b.dataset.range)));
  $("#detail-close").addEventListener("click", () => {
    state.job = null;
    $("#detail-section").classList.add("hidden");
    document.querySelectorAll("#jobs tbody tr.sel").forEach((tr) => tr.classList.remove("sel"));
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(refresh, 200); });

  setRange(state.range);
  startStream();
})();
