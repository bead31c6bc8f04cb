/* Device page: live charts over a websocket (snapshot, then batched updates), or a time range
   from /api/devices/<id>/range, drawn with Plotly.
   Every string from the device (series labels, model, IRQ and process names) reaches the DOM only
   through textContent or through Plotly text after esc() (Plotly reads a little HTML in its
   strings, so < > & are turned into entities it shows literally). Never innerHTML. */
(function () {
  "use strict";
  var root = document.getElementById("charts");
  if (!root) return;
  var cfg = JSON.parse(document.getElementById("page-config").textContent);
  var device = cfg.device;
  var statusEl = document.getElementById("live-status");
  var forecastEl = document.getElementById("forecast");
  var STALE_MS = cfg.stale_after_s * 1000, MAX_POINTS = 2000;
  var FLUSH_MS = Math.max(500, 1000 / (cfg.max_updates_per_s || 2));
  var isolated = {};
  (cfg.isolated || []).forEach(function (c) { isolated[c] = true; });
  var mode = cfg.range || "live", rangeS = cfg.live_window_s;
  var ws = null, retry = 1000, lastSample = 0, skew = 0, events = [], pending = null, flushTimer = null;
  var connected = false, drawing = false, renderGen = 0;
  // both scripts are `defer` (in <head>), this one first: the data is fetched while the Plotly bundle
  // downloads and runs, and drawn once it is ready (deferred scripts run before DOMContentLoaded)
  var plotlyReady = new Promise(function (resolve) {
    if (window.Plotly) resolve(); else document.addEventListener("DOMContentLoaded", resolve);
  });

  function esc(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  function parseKey(key) {
    var m = key.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$/), labels = {};
    if (!m) return { name: key, labels: labels };
    var re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g, l;
    while ((l = re.exec(m[2] || "")) !== null) labels[l[1]] = l[2].replace(/\\"/g, "\"").replace(/\\\\/g, "\\");
    return { name: m[1], labels: labels };
  }
  function rm(k) { return k.labels.runtime + " / " + k.labels.model; }

  // chart id -> how it draws its series
  var ceilings = {}; // runtime -> its memory ceiling (bytes): the memory chart draws each runtime against its own
  function gib(b) { return (b / 1073741824).toFixed(2) + " GiB"; }
  var CHARTS = {
    "chart-gpu": { trace: function (k) { return k.name === "gpu_freq_hz" ? { name: "GPU frequency", yaxis: "y2", line: { dash: "dot", width: 1 } } : { name: k.name === "gpu_load_ratio" ? "GPU load" : "EMC load" }; },
      yaxis: { title: { text: "load" }, range: [0, 1.05], tickformat: ".0%", fixedrange: true },
      yaxis2: { overlaying: "y", side: "right", tickformat: ".3~s", ticksuffix: "Hz", showgrid: false, fixedrange: true }, y2zero: true },
    "chart-memory": { only: function (k) { return k.name === "runtime_memory_bytes" && ceilings[k.labels.runtime] > 0; },
      trace: function (k) { return { name: k.labels.runtime, customdata: [], hovertemplate: "%{y:.0%} of its ceiling<extra>" + esc(k.labels.runtime) + "</extra>" }; },
      value: function (k, v) { var c = ceilings[k.labels.runtime]; return v === null ? null : v / c; },
      yaxis: { title: { text: "of its ceiling" }, tickformat: ".0%", range: [0, 1.25], fixedrange: true }, ceilingLine: true },
    "chart-host": { trace: function (k) {
        if (k.name === "ram_total_bytes") return { name: "RAM total", line: { dash: "dash", width: 1, color: "#888" } };
        return { name: k.name === "ram_used_bytes" ? "RAM used" : "swap used" };
      }, yaxis: { title: { text: "bytes" }, tickformat: "~s", ticksuffix: "B", rangemode: "tozero", fixedrange: true } },
    "chart-power": { trace: function (k) { return { name: k.labels.rail || "power" }; }, yaxis: { title: { text: "W" }, rangemode: "tozero", fixedrange: true } },
    "chart-temp": { only: function (k) { return !!k.labels.zone; },
      trace: function (k) { return { name: k.labels.zone || "temp" }; }, yaxis: { title: { text: "°C" }, fixedrange: true }, tempAxis: true },
    "chart-cpu": { only: function (k) { return k.labels.cpu !== undefined; }, heatmap: true,
      trace: function () { return {}; } },
    "chart-latency": { trace: function (k) { var p99 = k.name.indexOf("p99") > 0; return { name: (p99 ? "p99 " : "p50 ") + rm(k), mode: "lines+markers", marker: { size: 3 }, line: { dash: p99 ? "dash" : "solid", width: 1.5 } }; },
      yaxis: { title: { text: "seconds" }, type: "log", dtick: 1, tickformat: "~s", ticksuffix: "s", fixedrange: true } },
    "chart-ttft": { trace: function (k) { var tps = k.name === "request_tokens_per_second"; return { name: (tps ? "tok/s " : "TTFT p50 ") + rm(k), mode: "lines+markers", marker: { size: 3 }, yaxis: tps ? "y2" : "y", line: { dash: tps ? "dot" : "solid" } }; },
      yaxis: { title: { text: "TTFT s" }, rangemode: "tozero", fixedrange: true },
      yaxis2: { title: { text: "tok/s" }, overlaying: "y", side: "right", showgrid: false, rangemode: "tozero", fixedrange: true } },
    "chart-slo": { trace: function (k) { return { name: rm(k), mode: "lines+markers", marker: { size: 3 } }; },
      yaxis: { title: { text: "within deadline" }, tickformat: ".2%", fixedrange: true }, sloAxis: true }
  };
  // which metric names each chart draws comes from the server (collectors/catalog.py)
  Object.keys(CHARTS).forEach(function (id) {
    var names = {}, only = CHARTS[id].only;
    ((cfg.charts || {})[id] || []).forEach(function (n) { names[n] = true; });
    CHARTS[id].want = function (k) { return names[k.name] === true && (!only || only(k)); };
  });
  var IDS = Object.keys(CHARTS);
  var PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: "hover" };
  var traces = {}; // chart id -> {series key: trace index}

  function colors() {
    var s = getComputedStyle(document.documentElement);
    return { fg: s.getPropertyValue("--fg").trim(), line: s.getPropertyValue("--line").trim(),
             crit: s.getPropertyValue("--crit").trim(), warn: s.getPropertyValue("--warn").trim(),
             accent: s.getPropertyValue("--accent").trim() };
  }
  function xrange() {
    var now = Date.now() + skew;
    return [new Date(now - rangeS * 1000), new Date(now)];
  }
  var EVENT_COLOR = { oom_kill: "crit", action_applied: "accent", model_loaded: "warn", model_unloaded: "warn" };
  function eventText(e) {
    var parts = [e.kind];
    ["runtime", "model", "action", "process", "cgroup", "reason", "detail"].forEach(function (f) { if (e[f] !== undefined && e[f] !== null && e[f] !== "") parts.push(f + ": " + e[f]); });
    return esc(parts.join(" · ")) + "<br>" + new Date(e.ts * 1000).toLocaleString();
  }
  function eventDecor(id) {
    var c = colors(), shapes = [], notes = [];
    var lo = (Date.now() + skew) / 1000 - rangeS - 60;
    events.forEach(function (e) {
      if (e.ts < lo) return;
      var col = c[EVENT_COLOR[e.kind] || "fg"] || c.fg, x = new Date(e.ts * 1000);
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, line: { color: col, width: 1, dash: "dot" }, layer: "below" });
      notes.push({ x: x, xref: "x", yref: "paper", y: 1, yanchor: "bottom", text: e.kind === "oom_kill" ? "✖" : "▼", showarrow: false,
                   font: { color: col, size: 10 }, hovertext: eventText(e), captureevents: false });
    });
    if (id === "chart-temp") {
      var seen = {};
      Object.keys(cfg.throttle_celsius || {}).forEach(function (zone) {
        var v = cfg.throttle_celsius[zone];
        if (seen[v]) return; seen[v] = true;
        shapes.push({ type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: v, y1: v, line: { color: c.crit, width: 1, dash: "dash" } });
        notes.push({ xref: "paper", yref: "y", x: 0, xanchor: "left", y: v, yanchor: "bottom", text: "throttle " + v + " °C", showarrow: false, font: { color: c.crit, size: 10 } });
      });
    }
    if (id === "chart-slo") {
      (cfg.slos || []).forEach(function (s) {
        shapes.push({ type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: s.target_ratio, y1: s.target_ratio, line: { color: c.warn, width: 1.5, dash: "dash" } });
        notes.push({ xref: "paper", yref: "y", x: 1, xanchor: "right", y: s.target_ratio, yanchor: "top", showarrow: false, font: { color: c.warn, size: 10 },
                     text: esc("target " + (s.target_ratio * 100).toFixed(s.target_ratio > 0.99 ? 1 : 0) + "% " + s.runtime + "/" + s.model) });
      });
    }
    return { shapes: shapes, annotations: notes };
  }
  function layout(id, given) {
    var def = CHARTS[id], c = colors(), deco = eventDecor(id);
    var l = { margin: { l: 55, r: def.yaxis2 ? 55 : 12, t: 18, b: 30 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: c.fg, size: 11 }, xaxis: { type: "date", gridcolor: c.line, range: xrange() },
      yaxis: Object.assign({ gridcolor: c.line }, def.yaxis), legend: { orientation: "h", y: -0.18 }, showlegend: true,
      hovermode: "x unified", uirevision: "keep", shapes: deco.shapes, annotations: deco.annotations };
    if (def.yaxis2) l.yaxis2 = Object.assign({}, def.yaxis2);
    var el = document.getElementById(id), data = given || (el && el.data) || [];
    if (def.y2zero) {  // frequency from 0 to its highest value (never an autoscaled sliver around one value)
      var top = 0;
      data.forEach(function (t) { if (t.yaxis === "y2") (t.y || []).forEach(function (v) { if (v > top) top = v; }); });
      if (top > 0) l.yaxis2.range = [0, top * 1.05];
    }
    if (def.tempAxis) {  // 0 °C to 100 °C, or past the highest throttle point
      var hi = 100;
      Object.keys(cfg.throttle_celsius || {}).forEach(function (z) { hi = Math.max(hi, cfg.throttle_celsius[z] + 8); });
      data.forEach(function (t) { (t.y || []).forEach(function (v) { if (v !== null && v > hi - 3) hi = v + 5; }); });
      l.yaxis.range = [0, hi];
    }
    if (def.ceilingLine) {
      l.shapes = l.shapes.concat([{ type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: 1, y1: 1, line: { color: c.crit, width: 1.5, dash: "dash" } }]);
      l.annotations = l.annotations.concat([{ xref: "paper", yref: "y", x: 0, xanchor: "left", y: 1, yanchor: "bottom", text: "ceiling (each runtime's own)", showarrow: false, font: { color: c.crit, size: 10 } }]);
      var most = 1.1;
      data.forEach(function (t) { (t.y || []).forEach(function (v) { if (v !== null && v > most) most = v; }); });
      l.yaxis.range = [0, Math.max(1.25, most * 1.08)];
    }
    if (def.sloAxis) {  // the target must sit visibly below 100 %: the axis spans a few times the error budget
      var target = Math.min.apply(null, (cfg.slos || []).map(function (x) { return x.target_ratio; }).concat([1]));
      var budget = Math.max(1 - target, 0.001), low = target - 3 * budget;
      data.forEach(function (t) { (t.y || []).forEach(function (v) { if (v !== null && v < low) low = v; }); });
      l.yaxis.range = [Math.max(0, low - budget / 2), 1 + budget / 2];
      l.yaxis.tickformat = budget < 0.01 ? ".2%" : ".0%";
    }
    return l;
  }
  function dates(ts) { return ts.map(function (t) { return new Date(t * 1000); }); }
  // A gap in the data is drawn as a gap: a null is put between two samples further apart than
  // GAP_FACTOR times the typical step (and at least GAP_MIN_S), so lines break instead of bridging.
  var GAP_FACTOR = 3, GAP_MIN_S = 5, lastTs = {};
  function typicalStep(xs) {
    var d = [];
    for (var i = Math.max(1, xs.length - 50); i < xs.length; i++) d.push(xs[i] - xs[i - 1]);
    if (!d.length) return 1;
    d.sort(function (a, b) { return a - b; });
    return d[Math.floor(d.length / 2)] || 1;
  }
  function withGaps(id, key, xs, ys, prevTs) {
    var k = parseKey(key), def = CHARTS[id], step = typicalStep(xs), limit = Math.max(GAP_MIN_S, GAP_FACTOR * step);
    var outX = [], outY = [], last = prevTs;
    for (var i = 0; i < xs.length; i++) {
      if (last !== undefined && xs[i] - last > limit) { outX.push(new Date((last + xs[i]) * 500)); outY.push(null); }
      outX.push(new Date(xs[i] * 1000));
      outY.push(def.value ? def.value(k, ys[i]) : ys[i]);
      last = xs[i];
    }
    if (xs.length) lastTs[id + "|" + key] = xs[xs.length - 1];
    return [outX, outY];
  }
  function newTrace(id, key, cols) {
    var k = parseKey(key), t = Object.assign({ mode: "lines", line: { width: 1.5 }, connectgaps: false }, CHARTS[id].trace(k));
    t.name = esc(t.name);
    var xy = withGaps(id, key, cols[0], cols[1], undefined);
    t.x = xy[0]; t.y = xy[1];
    if (id === "chart-temp") t.legendgroup = t.name;
    return t;
  }
  function noteData(id, has) {
    var note = document.querySelector('[data-nodata-for="' + id + '"]'), el = document.getElementById(id);
    if (note) note.hidden = has;
    // a chart this device cannot fill is not drawn as empty axes: its note says why instead
    var wasHidden = el.classList.contains("empty");
    el.classList.toggle("empty", !has);
    if (has && wasHidden && el.data) Plotly.Plots.resize(el);
    el.dataset.points = String(has ? 1 : 0);
  }
  function throttleTrace(data) {
    // markers on every temperature sample at or over its zone's throttle point
    var x = [], y = [], text = [];
    data.forEach(function (t) {
      var zone = t.meta, limit = (cfg.throttle_celsius || {})[zone];
      if (limit === undefined) return;
      for (var i = 0; i < t.y.length; i++) if (t.y[i] >= limit) { x.push(t.x[i]); y.push(t.y[i]); text.push(esc(zone)); }
    });
    return { x: x, y: y, text: text, name: "at throttle point", mode: "markers", marker: { symbol: "x", size: 8, color: colors().crit }, hovertemplate: "%{text} %{y} °C<extra>throttle</extra>" };
  }

  function learnCeilings(msg) {
    Object.keys(msg.series || {}).forEach(function (key) {
      var k = parseKey(key), ys = msg.series[key][1];
      if (k.name === "runtime_ceiling_bytes" && ys.length && ys[ys.length - 1] > 0) ceilings[k.labels.runtime] = ys[ys.length - 1];
    });
    Object.keys(msg.forecast || {}).forEach(function (rt) { if (msg.forecast[rt].ceiling > 0) ceilings[rt] = msg.forecast[rt].ceiling; });
  }
  function memoryNote(keys) {
    var note = document.querySelector('[data-nodata-for="chart-memory"]');
    var any = keys.some(function (key) { return parseKey(key).name === "runtime_memory_bytes"; });
    if (note && any) note.textContent = "No runtime here has a memory ceiling: set one under Settings to see it against its ceiling (current use is in the line above).";
  }

  // CPU load per core as a heatmap (time × core, 0–100 %): a dozen overlapping lines read as noise.
  var cpuBuf = {};
  function cpuOrder(a, b) { return (parseInt(a, 10) - parseInt(b, 10)) || (a < b ? -1 : 1); }
  function feedCpu(series, reset) {
    if (reset) cpuBuf = {};
    Object.keys(series).forEach(function (key) {
      var k = parseKey(key);
      if (!CHARTS["chart-cpu"].want(k)) return;
      var b = cpuBuf[k.labels.cpu] || (cpuBuf[k.labels.cpu] = { x: [], y: [] });
      b.x = b.x.concat(series[key][0]); b.y = b.y.concat(series[key][1]);
      if (b.x.length > MAX_POINTS) { b.x = b.x.slice(-MAX_POINTS); b.y = b.y.slice(-MAX_POINTS); }
    });
  }
  function drawCpu() {
    var id = "chart-cpu", cpus = Object.keys(cpuBuf).sort(cpuOrder), c = colors();
    if (!cpus.length) { if (!document.getElementById(id).data) Plotly.react(id, [], {}, PLOT_CONFIG); noteData(id, false); return; }
    var ref = cpus.reduce(function (a, b) { return cpuBuf[b].x.length > cpuBuf[a].x.length ? b : a; }, cpus[0]);
    var xs = cpuBuf[ref].x, step = typicalStep(xs), limit = Math.max(GAP_MIN_S, GAP_FACTOR * step), x = [], cols = [];
    for (var i = 0; i < xs.length; i++) {
      if (i && xs[i] - xs[i - 1] > limit) { x.push(new Date((xs[i - 1] + xs[i]) * 500)); cols.push(null); }
      x.push(new Date(xs[i] * 1000)); cols.push(i);
    }
    var z = cpus.map(function (cpu) {
      var b = cpuBuf[cpu], off = b.x.length - xs.length; // samples of one record share a timestamp
      return cols.map(function (j) { return j === null || j + off < 0 ? null : b.y[j + off]; });
    });
    var labels = cpus.map(function (cpu) { return esc("cpu" + cpu + (isolated[cpu] ? " ⊘" : "")); });
    var data = [{ type: "heatmap", x: x, y: labels, z: z, zmin: 0, zmax: 1, colorscale: "Viridis", hoverongaps: false,
                  colorbar: { title: { text: "load" }, tickformat: ".0%", thickness: 10 },
                  hovertemplate: "%{y}: %{z:.0%}<br>%{x}<extra></extra>" }];
    var l = layout(id);
    l.yaxis = { type: "category", automargin: true, gridcolor: c.line, fixedrange: true };
    l.hovermode = "closest"; l.showlegend = false;
    labels.forEach(function (lab, i) {
      if (isolated[cpus[i]]) l.shapes.push({ type: "rect", xref: "paper", yref: "y", x0: 0, x1: 1, y0: i - 0.5, y1: i + 0.5, line: { color: c.crit, width: 1.5 }, fillcolor: "rgba(0,0,0,0)" });
    });
    Plotly.react(id, data, l, PLOT_CONFIG);
    traces[id] = { __cpu: 0 };
    noteData(id, true);
  }

  function renderAll(msg) {
    if (msg.now) skew = msg.now * 1000 - Date.now();
    events = (msg.events || []).slice(-300);
    learnCeilings(msg);
    var series = msg.series || {};
    var keys = Object.keys(series).sort(), gen = ++renderGen;
    memoryNote(keys);
    lastTs = {};
    function draw(id) {
      if (CHARTS[id].heatmap) { feedCpu(series, true); drawCpu(); return; }
      var data = [];
      traces[id] = {};
      keys.forEach(function (key) {
        var k = parseKey(key);
        if (!CHARTS[id].want(k) || !series[key][0].length) return;
        traces[id][key] = data.length;
        var t = newTrace(id, key, series[key]);
        if (id === "chart-temp") t.meta = k.labels.zone;
        data.push(t);
      });
      if (id === "chart-temp" && data.length) { data.push(throttleTrace(data)); traces[id].__throttle = data.length - 1; }
      Plotly.react(id, data, layout(id, data), PLOT_CONFIG);
      noteData(id, data.length > 0);
    }
    renderForecast(msg.forecast);
    keys.forEach(function (key) { var xs = series[key][0]; if (xs.length) lastSample = Math.max(lastSample, xs[xs.length - 1] * 1000); });
    // the first chart is drawn and painted at once; the others follow in the next task
    drawing = true;
    draw(IDS[0]);
    if (!root.dataset.firstChartMs) root.dataset.firstChartMs = String(Math.round(performance.now()));
    setTimeout(function () {
      if (gen !== renderGen) return;
      IDS.slice(1).forEach(draw);
      renderIrq(msg.irq);
      drawing = false;
      root.dataset.rendered = String(parseInt(root.dataset.rendered || "0", 10) + 1);
      root.dataset.updates = String(parseInt(root.dataset.updates || "0", 10) + 1);
      root.dataset.source = msg.source || "live";
      checkStale();
    }, 0);
  }

  function applyUpdate(msg) {
    if (msg.now) skew = msg.now * 1000 - Date.now();
    learnCeilings(msg);
    var series = msg.series || {}, keys = Object.keys(series).sort(), newEvents = false;
    if (msg.events && msg.events.length) { events = events.concat(msg.events).slice(-300); newEvents = true; }
    IDS.forEach(function (id) {
      if (CHARTS[id].heatmap) {
        var before = Object.keys(cpuBuf).length;
        feedCpu(series, false);
        if (keys.some(function (key) { return CHARTS[id].want(parseKey(key)); }) || newEvents || before !== Object.keys(cpuBuf).length) drawCpu();
        return;
      }
      var add = { x: [], y: [] }, idx = [], fresh = [], freshKeys = [];
      keys.forEach(function (key) {
        var k = parseKey(key);
        if (!CHARTS[id].want(k) || !series[key][0].length) return;
        if (!(key in traces[id])) {
          fresh.push(newTrace(id, key, series[key])); freshKeys.push(key);
          if (id === "chart-temp") fresh[fresh.length - 1].meta = k.labels.zone;
        } else {
          var xy = withGaps(id, key, series[key][0], series[key][1], lastTs[id + "|" + key]);
          idx.push(traces[id][key]); add.x.push(xy[0]); add.y.push(xy[1]);
        }
      });
      var el = document.getElementById(id);
      if (fresh.length) {
        var base = (el.data || []).length;
        freshKeys.forEach(function (key, i) { traces[id][key] = base + i; });
        Plotly.addTraces(id, fresh);
        noteData(id, true);
      }
      if (idx.length) Plotly.extendTraces(id, add, idx, MAX_POINTS);
      if (id === "chart-temp" && (idx.length || fresh.length)) {
        var temps = (el.data || []).filter(function (t) { return t.meta !== undefined; });
        var th = throttleTrace(temps);
        if (traces[id].__throttle === undefined) { Plotly.addTraces(id, th); traces[id].__throttle = el.data.length - 1; }
        else Plotly.restyle(id, { x: [th.x], y: [th.y], text: [th.text] }, [traces[id].__throttle]);
      }
      if (idx.length || fresh.length || newEvents) Plotly.relayout(id, layout(id));
    });
    if (msg.irq !== undefined) renderIrq(msg.irq);
    if (msg.forecast) renderForecast(msg.forecast);
    if (keys.length) {
      keys.forEach(function (key) { var xs = series[key][0]; if (xs.length) lastSample = Math.max(lastSample, xs[xs.length - 1] * 1000); });
      root.dataset.updates = String(parseInt(root.dataset.updates || "0", 10) + 1);
    }
    checkStale();
  }

  var lastIrq = null;
  function irqLabel(irq) {
    var name = (cfg.irq_names || {})[irq];
    return name ? irq + " " + name : "IRQ " + irq;
  }
  function renderIrq(irq) {
    var id = "chart-irq", c = colors();
    if (irq) lastIrq = irq;
    if (!irq || !irq.irqs || !irq.irqs.length) {
      if (irq === null || irq === undefined) { if (!document.getElementById(id).data) Plotly.react(id, [], {}, PLOT_CONFIG); }
      noteData(id, !!(document.getElementById(id).data || []).length && irq !== null);
      return;
    }
    var iso = {};
    (irq.isolated || []).forEach(function (cpu) { iso[cpu] = true; });
    var xs = irq.cpus.map(function (cpu) { return esc("cpu" + cpu + (iso[cpu] ? " ⊘" : "")); });
    var shapes = [];
    irq.cpus.forEach(function (cpu, i) {
      if (iso[cpu]) shapes.push({ type: "rect", xref: "x", yref: "paper", x0: i - 0.5, x1: i + 0.5, y0: 0, y1: 1, line: { color: c.crit, width: 2 }, fillcolor: "rgba(0,0,0,0)" });
    });
    // the colour scale starts at 0 (no interrupts = the lightest colour), so a busy isolated CPU shows
    var zmax = 1;
    irq.z.forEach(function (row) { row.forEach(function (v) { if (v > zmax) zmax = v; }); });
    var data = [{ type: "heatmap", x: xs, y: irq.irqs.map(function (i) { return esc(irqLabel(i)); }), z: irq.z, zmin: 0, zmax: zmax,
                  colorscale: [[0, "rgba(255,255,204,0.15)"], [0.001, "#ffeda0"], [0.3, "#feb24c"], [0.7, "#f03b20"], [1, "#bd0026"]],
                  xgap: 1, ygap: 1, hovertemplate: "%{y} on %{x}: %{z:.1f}/s<extra></extra>", colorbar: { title: { text: "/s" }, thickness: 10 } }];
    Plotly.react(id, data, { margin: { l: 10, r: 10, t: 10, b: 40 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: c.fg, size: 11 }, xaxis: { type: "category", fixedrange: true },
      yaxis: { type: "category", automargin: true, fixedrange: true, tickfont: { size: 10 } }, shapes: shapes,
      uirevision: "keep" }, PLOT_CONFIG);
    noteData(id, true);
  }

  // the alerts' unit convention (advisors/rules/base.py fmt_bytes): GiB from 1 GiB up, else MiB
  function human(bytes) {
    return Math.abs(bytes) >= 1073741824 ? (bytes / 1073741824).toFixed(2) + " GiB"
      : (bytes / 1048576).toFixed(0) + " MiB";
  }
  function duration(s) {
    if (s < 120) return Math.round(s) + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return Math.round(s / 86400) + " d";
  }
  function renderForecast(forecast) {
    if (!forecastEl || !forecast) return;
    var lines = Object.keys(forecast).sort().map(function (rt) {
      var f = forecast[rt], text = rt + ": " + human(f.current);
      if (!f.ceiling) return text + " (no ceiling)";
      text += " of " + human(f.ceiling) + " ceiling";
      if (f.eta_s === 0) return text + " — OVER the ceiling";
      if (f.eta_s === null || f.eta_s === undefined) return text + " — not growing";
      return text + " — reaches it in ~" + duration(f.eta_s) + " at the current trend";
    });
    forecastEl.textContent = lines.length ? lines.join("  ·  ") : "";
    forecastEl.dataset.runtimes = String(lines.length);
  }

  function setStatus(s) {
    statusEl.textContent = s;
    statusEl.className = "status status-" + (s === "live" ? "live" : s === "stale" ? "stale" : s === "reconnecting" ? "down" : "unknown");
    root.dataset.status = s;
  }
  function checkStale() {
    if (!connected) return;
    if (!lastSample) { setStatus("no data"); return; }
    setStatus(Date.now() + skew - lastSample > STALE_MS ? "stale" : "live");
  }

  function merge(into, msg) {
    if (!into) return msg;
    Object.keys(msg.series || {}).forEach(function (key) {
      var cur = into.series[key];
      if (!cur) { into.series[key] = msg.series[key]; return; }
      cur[0] = cur[0].concat(msg.series[key][0]); cur[1] = cur[1].concat(msg.series[key][1]);
    });
    if (msg.events) into.events = (into.events || []).concat(msg.events);
    ["irq", "forecast", "now"].forEach(function (f) { if (msg[f] !== undefined) into[f] = msg[f]; });
    return into;
  }
  var lastFlush = 0;
  function queue(msg) {
    // at most one redraw per FLUSH_MS per chart, whatever the server sends
    msg.series = msg.series || {};
    pending = merge(pending, msg);
    if (flushTimer) return;
    var wait = Math.max(0, FLUSH_MS - (Date.now() - lastFlush));
    flushTimer = setTimeout(function () {
      flushTimer = null;
      if (drawing) { queue({}); return; }
      lastFlush = Date.now();
      var m = pending; pending = null;
      if (mode === "live") applyUpdate(m); else checkStale();
    }, wait);
  }

  // A large snapshot arrives as "snapshot" (parts > 1) then "snapshot_part" messages, each under
  // the websocket's frame limit: hold the parts, hand on the whole snapshot once the last arrived.
  var partial = null;
  function gather(msg) {
    if (msg.type === "snapshot" && msg.parts > 1) { partial = msg; return null; }
    if (msg.type !== "snapshot_part") return msg;
    if (!partial) return null;
    Object.keys(msg.series || {}).forEach(function (k) { partial.series[k] = msg.series[k]; });
    if (msg.part < partial.parts - 1) return null;
    var whole = partial; partial = null;
    return whole;
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    // a stored range needs only updates (for liveness), not the live window's snapshot
    ws = new WebSocket(proto + location.host + "/ws/devices/" + encodeURIComponent(device) + "/" + (mode === "live" ? "" : "?snapshot=0"));
    ws.onopen = function () { retry = 1000; connected = true; root.dataset.connects = String(parseInt(root.dataset.connects || "0", 10) + 1); };
    ws.onmessage = function (ev) {
      var msg = JSON.parse(ev.data);
      plotlyReady.then(function () { receive(msg); });
    };
    function receive(msg) {
      msg = gather(msg);
      if (!msg) return;
      if (msg.type === "snapshot" && mode === "live") { pending = null; renderAll(msg); return; }
      if (msg.now) skew = msg.now * 1000 - Date.now();
      Object.keys(msg.series || {}).forEach(function (k) { var xs = msg.series[k][0]; if (xs.length) lastSample = Math.max(lastSample, xs[xs.length - 1] * 1000); });
      if (msg.type === "update") queue(msg); else checkStale();
    }
    ws.onclose = function () {
      connected = false;
      setStatus("reconnecting");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 5000);
    };
  }

  function loadRange(name) {
    var width = Math.max(200, Math.round(document.getElementById("chart-gpu").clientWidth || 600));
    root.dataset.loading = "1";
    fetch("/api/devices/" + encodeURIComponent(device) + "/range?range=" + encodeURIComponent(name) + "&points=" + width, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (msg) { return plotlyReady.then(function () { if (mode === name) { rangeS = msg.range_s; renderAll(msg); } }); })
      .catch(function (err) { document.getElementById("range-error").textContent = "Could not load " + name + ": " + err.message; })
      .then(function () { root.dataset.loading = "0"; });
  }
  function choose(name) {
    mode = name;
    document.querySelectorAll("#range-picker button").forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.range === name)); });
    document.getElementById("range-error").textContent = "";
    var url = new URL(location.href);
    if (name === "live") url.searchParams.delete("range"); else url.searchParams.set("range", name);
    history.replaceState(null, "", url.toString());
    if (name === "live") { rangeS = cfg.live_window_s; if (ws) ws.close(); else connect(); }
    else loadRange(name);
  }
  document.querySelectorAll("#range-picker button").forEach(function (b) {
    b.addEventListener("click", function () { choose(b.dataset.range); });
  });

  window.addEventListener("thoxdash-theme", function () {
    IDS.forEach(function (id) {
      if (CHARTS[id].heatmap) { if (Object.keys(cpuBuf).length) drawCpu(); return; }
      if (document.getElementById(id).data) Plotly.relayout(id, layout(id));
    });
    if (lastIrq) renderIrq(lastIrq);
  });
  setInterval(function () {
    checkStale();
    // slide the live window when no data redraw did (keeps each chart under 2 redraws/s)
    if (mode === "live" && !drawing && Date.now() - lastFlush >= 2000) IDS.forEach(function (id) { if (traces[id] && Object.keys(traces[id]).length) Plotly.relayout(id, { "xaxis.range": xrange() }); });
  }, 2000);
  var picker = document.getElementById("device-picker");
  if (picker) picker.addEventListener("change", function (e) { location.href = "/devices/" + encodeURIComponent(e.target.value) + "/"; });
  setStatus("connecting");
  connect();
  if (mode !== "live") choose(mode);
  else document.querySelector('#range-picker button[data-range="live"]').setAttribute("aria-pressed", "true");
})();
