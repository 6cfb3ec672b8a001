// instrec web page: choose or record a recording, send it to /v1/predict, draw the answer.
// Plain JavaScript, no libraries, nothing fetched from anywhere but this server.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2a6f97", "#e07a5f", "#81b29a", "#f2cc8f", "#6d597a", "#3d405b",
                   "#d62828", "#4cc9f0", "#b5838d", "#588157"];
  const OTHER = "#8d96a3";  // what is not shown: the less likely classes, and unknown when it is no class
  const SILENCE = "silence";
  const UNKNOWN = "unknown";
  const LOW_CONFIDENCE = 0.5;  // below this the answer is written smaller, as a guess
  const MAX_RECORD_S = 60;
  const KEY_STORE = "instrec-api-key";  // sessionStorage: this tab only, gone when it closes

  const state = { classes: [], limits: null, audioUrl: null, duration: 0, busy: false, recorder: null, key: "",
                  multilabel: false, thresholds: null, starting: false,  // starting: the microphone is being opened
                  shownClasses: null,  // how many the timeline draws (/v1/model's display.shown_classes)
                  shown: [] };  // the classes the answer on show draws, in colour order (shownClasses())

  // ------------------------------------------------------------------------------------------
  // Helpers

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  // A shown class's colour by its place among the shown (so no two share one: past the palette,
  // hues a golden angle apart); grey for the rest.
  function colour(label) {
    if (label === SILENCE) return "#c9ced6";
    const i = state.shown.indexOf(label);
    if (i < 0) return OTHER;
    return i < PALETTE.length ? PALETTE[i] : "hsl(" + Math.round(137.508 * i) % 360 + ", 60%, 42%)";
  }

  // The classes a picture of the answer draws, picked as instrec.display.shown_classes picks them
  // for `instrec predict --plot`: the instruments heard (multi-label), then the likeliest others
  // by their highest probability in any window, state.shownClasses in all unless more were heard.
  function shownClasses(result) {
    const probs = result.probabilities || {};
    const windows = (result.windows || []).filter((w) => w.probabilities);
    const best = (c) => windows.length ? Math.max(...windows.map((w) => w.probabilities[c])) : probs[c];
    const heard = (result.instruments || []).map((t) => t.label);
    const rest = Object.keys(probs).filter((c) => heard.indexOf(c) < 0)
      .map((c) => [c, best(c)]).sort((a, b) => b[1] - a[1]).map(([c]) => c);  // a stable sort, as Python's
    const n = state.shownClasses == null ? heard.length + rest.length : state.shownClasses;
    return heard.concat(rest.slice(0, Math.max(0, n - heard.length)));
  }

  function pct(p) {
    return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%";
  }

  function words(name) { return String(name).replace(/-/g, " "); }

  function article(name) { return /^[aeiou]/i.test(name) ? "an" : "a"; }

  function fmtTime(s) {
    if (s < 60) return (Math.round(s * 10) / 10) + " s";
    const m = Math.floor(s / 60);
    return m + ":" + String(Math.round(s - 60 * m)).padStart(2, "0");
  }

  function fmtLimit(s) {
    return s >= 60 ? (Math.round(s / 6) / 10) + " min" : s + " s";
  }

  function fmtBytes(n) {
    return n >= 1e6 ? (n / 1e6).toFixed(n % 1e6 ? 1 : 0) + " MB" : Math.round(n / 1e3) + " kB";
  }

  function setStatus(text) { $("status").textContent = text || ""; }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = !message;
  }

  // The API key, when the server has one: typed into the key form, kept in sessionStorage.
  function apiKey() {
    try { return sessionStorage.getItem(KEY_STORE) || state.key; } catch (e) { return state.key; }
  }

  function authHeaders() {
    const key = apiKey();
    return key ? { "X-API-Key": key } : {};
  }

  function askForKey(message) {
    $("key-form").hidden = false;
    $("key-input").focus();
    if (message) showError(message);
  }

  function setBusy(busy) {
    state.busy = busy;
    $("file-input").disabled = busy || !!state.recorder;
    document.querySelector('label[for="file-input"]').classList.toggle("disabled", busy);
    if (!state.recorder) $("record-button").disabled = busy;
  }

  // ------------------------------------------------------------------------------------------
  // The model

  async function loadModel() {
    try {
      const r = await fetch("/v1/model", { headers: authHeaders() });
      const info = await r.json();
      if (r.status === 401) {
        $("model-info").textContent = "This server needs an API key.";
        askForKey(apiKey() ? info.error : "");
        return;
      }
      if (!r.ok) throw new Error(info.error || ("HTTP " + r.status));
      $("key-form").hidden = true;
      showError("");
      state.classes = info.classes;
      state.limits = info.limits;
      state.multilabel = !!info.multilabel;
      state.thresholds = info.thresholds || null;
      state.shownClasses = info.display && Number.isInteger(info.display.shown_classes) ? info.display.shown_classes : null;
      $("model-info").textContent = "Model " + info.recipe + ": " + info.classes.join(", ") +
        (state.multilabel ? " · hears several at once" : "") + " · looks at " + info.window + " s at a time";
      $("limits-info").textContent = "Up to " + fmtBytes(info.limits.max_upload_bytes) + " and " +
        fmtLimit(info.limits.max_duration_s) + ".";
    } catch (e) {
      $("model-info").textContent = "The model could not be read: " + e.message;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Sending a recording

  async function analyse(file) {
    if (!file) return;
    if (state.busy) {  // one at a time: a drop (the input is disabled) while an answer is awaited
      showError(file.name + " was not sent: the page is still listening to " + $("file-name").textContent +
                "; drop it again when that answer has come.");
      return;
    }
    showError("");
    $("result").hidden = true;
    $("announce").textContent = "";  // emptied, so that the same answer again is announced again
    $("player-card").hidden = false;
    $("file-name").textContent = file.name;
    $("file-duration").textContent = "";
    if (state.audioUrl) URL.revokeObjectURL(state.audioUrl);
    state.audioUrl = URL.createObjectURL(file);
    $("player").src = state.audioUrl;

    if (state.limits && file.size > state.limits.max_upload_bytes) {
      showError(file.name + ": the file is " + fmtBytes(file.size) + "; the limit is " +
                fmtBytes(state.limits.max_upload_bytes) + ".");
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("top_k", String(Math.max(3, state.classes.length)));
    form.append("spectrogram", "true");
    const win = $("window-input").value.trim();
    const hop = $("hop-input").value.trim();
    if (win) form.append("window", win);
    if (hop) form.append("hop", hop);

    setBusy(true);
    setStatus("Listening to " + file.name + "…");
    try {
      const r = await fetch("/v1/predict", { method: "POST", body: form, headers: authHeaders() });
      let body;
      try { body = await r.json(); } catch (e) { body = { error: "the server answered HTTP " + r.status }; }
      if (!r.ok) {
        setStatus("");
        showError(body.error || ("the server answered HTTP " + r.status));
        if (r.status === 415) $("player-card").hidden = true;  // not audio: nothing to play back
        if (r.status === 401) askForKey();
        return;
      }
      setStatus("");
      render(body);
    } catch (e) {
      setStatus("");
      showError("Could not reach the server: " + e.message);
    } finally {
      setBusy(false);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Drawing the answer

  function render(result) {
    $("result").hidden = false;
    state.duration = result.duration || 0;
    $("file-duration").textContent = state.duration ? "(" + fmtTime(state.duration) + ")" : "";
    const multi = Array.isArray(result.instruments);  // a multi-label model's answer
    state.shown = shownClasses(result);  // before anything is coloured
    if (multi) drawHeard(result); else drawVerdict(result);
    // thresholds are per instrument: at family level the bars are families, without one
    drawBars(result.probabilities, result.label, multi && result.level !== "family" ? state.thresholds : null);
    $("bars-caption").textContent = multi ? "Each instrument's probability, at its best" : "Class probabilities";
    drawSpectrogram(result.spectrogram);
    drawPianoRoll(result);
    drawTimeline(result);
    drawOverTime(result);
    $("result").dataset.label = result.label;
    // the status line empties: a screen reader hears the answer from this live region instead
    const parts = [...$("verdict").children].filter((e) => !e.hidden).map((e) => e.textContent.trim()).filter(Boolean);
    $("announce").textContent = [parts.join(result.label === UNKNOWN ? "; " : " "), $("over-time").hidden ? "" : $("over-time").textContent]
      .map((t) => t.replace(/\s+/g, " ").trim()).filter(Boolean).join(". ");
  }

  // A single-label answer names the likeliest on average; when its timeline shows other
  // instruments, say which and when, in words (the timeline's text for a screen reader too).
  function drawOverTime(result) {
    const segs = (result.windows && !result.instruments ? result.segments : [])
      .filter((s) => s.label !== SILENCE && s.label !== UNKNOWN);
    const changes = new Set(segs.map((s) => s.label)).size > 1, n = 6;
    $("over-time").hidden = !changes;
    $("over-time").textContent = changes ? "Changes over time: " + segs.slice(0, n).map((s) => words(s.label) + " " +
      fmtSpan(s)).join(", ") + (segs.length > n ? " and " + (segs.length - n) + " more" : "") + " (see the timeline)" : "";
  }

  // "Probably a cello (bowed strings), 64%"; smaller when the model is unsure; for unknown,
  // "Not an instrument I know" with the closest guess.
  function drawVerdict(result) {
    const verdict = $("verdict");
    const p = result.probabilities[result.label];
    const byFamily = result.level === "family";
    const unknown = result.label === UNKNOWN;
    const avg = result.windows ? " on average over " + result.windows.filter((w) => !w.silent).length + " windows" : "";
    verdict.classList.toggle("unknown", unknown);
    verdict.classList.toggle("low", !unknown && p != null && p < LOW_CONFIDENCE);
    $("result-label").style.color = unknown ? "" : colour(result.label);
    const showFamily = !byFamily && !unknown && result.family && result.family !== result.label;
    $("result-family").textContent = showFamily ? "(" + words(result.family) + ")," : "";
    if (unknown) {
      const best = Object.entries(result.probabilities).filter(([c]) => c !== UNKNOWN).sort((a, b) => b[1] - a[1])[0];
      $("result-lead").textContent = "";
      $("result-lead").hidden = true;
      $("result-label").textContent = "Not an instrument I know";
      $("result-prob").textContent = best ? "closest: " + words(best[0]) + ", " + pct(best[1]) + avg : "";
    } else {
      const name = words(result.label);
      const sure = p == null || p >= LOW_CONFIDENCE;
      $("result-lead").hidden = false;
      $("result-lead").textContent = (sure ? "Probably " : "Perhaps ") + (byFamily ? "" : article(name));
      $("result-label").textContent = name;
      $("result-prob").textContent = (p == null ? "" : pct(p)) + avg;
    }
    const fams = Object.entries(result.family_probabilities || {}).sort((a, b) => b[1] - a[1]);
    $("family-line").textContent = !byFamily && fams.length > 1
      ? "Families: " + fams.slice(0, 4).map(([f, q]) => words(f) + " " + pct(q)).join(" · ") : "";
  }

  // A multi-label model's verdict: every instrument heard ("Heard saw, sine and square"), or
  // "No instrument heard" with the closest guess.
  function drawHeard(result) {
    const verdict = $("verdict");
    const heard = result.instruments;
    verdict.classList.toggle("unknown", !heard.length);
    verdict.classList.remove("low");
    $("result-label").style.color = "";
    $("result-family").textContent = "";
    if (!heard.length) {
      const best = Object.entries(result.probabilities).filter(([c]) => c !== UNKNOWN).sort((a, b) => b[1] - a[1])[0];
      $("result-lead").textContent = "";
      $("result-lead").hidden = true;
      $("result-label").textContent = "No instrument heard";
      $("result-prob").textContent = best ? "closest: " + words(best[0]) + ", " + pct(best[1]) : "";
    } else {
      const names = heard.map((t) => words(t.label));
      $("result-lead").hidden = false;
      $("result-lead").textContent = "Heard";
      $("result-label").textContent = names.length > 1
        ? names.slice(0, -1).join(", ") + " and " + names[names.length - 1] : names[0];
      $("result-prob").textContent = heard.length > 1 ? "(" + heard.length + " instruments)" : pct(heard[0].probability);
    }
    const fams = Object.entries(result.family_probabilities || {}).sort((a, b) => b[1] - a[1]);
    $("family-line").textContent = result.level !== "family" && fams.length > 1
      ? "Families: " + fams.slice(0, 4).map(([f, q]) => words(f) + " " + pct(q)).join(" · ") : "";
  }

  function drawBars(probs, top, thresholds) {
    const svg = $("bars");
    svg.replaceChildren();
    const rows = Object.entries(probs).sort((a, b) => b[1] - a[1]);
    const rowH = 26, labelW = 8 + 7.5 * Math.max(8, ...rows.map(([n]) => n.length)), pctW = 52, width = 420;  // room for the longest name
    svg.setAttribute("viewBox", "0 0 " + width + " " + rows.length * rowH);
    svg.setAttribute("aria-label", "class probabilities: " + rows.slice(0, 5).map(([n, p]) => words(n) + " " + pct(p)).join(", ") +
      (rows.length > 5 ? ", the other " + (rows.length - 5) + " less" : ""));
    const barW = width - labelW - pctW;
    rows.forEach(([name, p], i) => {
      const y = i * rowH;
      const g = el("g", { "class": "bar", "data-class": name, "data-probability": p.toFixed(4) }, svg);
      el("text", { x: labelW - 8, y: y + 17, "text-anchor": "end", "font-weight": name === top ? 700 : 400 }, g)
        .textContent = name;
      el("rect", { x: labelW, y: y + 4, width: barW, height: rowH - 8, fill: "#eef0f3", rx: 3 }, g);
      el("rect", { x: labelW, y: y + 4, width: Math.max(1, barW * p), height: rowH - 8, fill: colour(name), rx: 3 }, g);
      el("text", { x: labelW + barW + 6, y: y + 17, "class": "pct" }, g).textContent = pct(p);
      const t = thresholds ? thresholds[name] : null;
      let note = "";
      if (t != null) {  // a dashed mark where the instrument counts as heard
        el("line", { x1: labelW + barW * t, x2: labelW + barW * t, y1: y + 1, y2: y + rowH - 1, "class": "threshold",
                     "data-threshold": t }, g);
        note = (p >= t ? ", heard (threshold " : ", not heard (threshold ") + pct(t) + ")";
      }
      el("title", {}, g).textContent = name + ": " + (100 * p).toFixed(2) + "%" + note;
    });
  }

  function drawSpectrogram(spec) {
    const img = $("spectrogram");
    const axis = $("spec-time");
    axis.replaceChildren();
    if (!spec) { img.removeAttribute("src"); return; }
    img.src = "data:image/png;base64," + spec.png;
    $("spec-axis").textContent = "(" + spec.n_mels + " mel bands up to " + Math.round(spec.fmax / 1000) + " kHz)";
    const d = spec.duration;
    const step = niceStep(d, 6);
    for (let k = 0; k * step <= d + 1e-9; k++) {
      const t = k * step;
      const s = document.createElement("span");
      s.style.left = (100 * t / d) + "%";
      if (t === 0) s.style.transform = "none";
      else if (t / d > 0.93) s.style.transform = "translateX(-100%)";
      s.textContent = fmtTime(t);
      axis.appendChild(s);
    }
  }

  function niceStep(d, n) {
    const raw = d / n;
    const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300];
    return steps.find((s) => s >= raw) || 600;
  }

  // Time labels along the bottom of a timeline-like picture of height H, x(t) its abscissa.
  function drawTicks(svg, d, x, H) {
    const step = niceStep(d, 8);
    for (let k = 0; k * step <= d + 1e-9; k++) {
      const t = k * step;
      el("text", { x: x(t), y: H - 3, fill: "#5f6b7a", "text-anchor": t === 0 ? "start" : (t / d > 0.95 ? "end" : "middle") },
         svg).textContent = fmtTime(t);
    }
  }

  function fmtSpan(s) { return fmtTime(s.start) + "–" + fmtTime(s.end); }

  // A multi-label model's "who plays when": one row per instrument heard (its name, best
  // probability and times written out, so that nothing is told by colour alone) with a bar over
  // each of its segments, on the same time axis as the timeline below it.
  function drawPianoRoll(result) {
    const fig = $("pianoroll-figure");
    const svg = $("pianoroll");
    svg.replaceChildren();
    const tracks = result.instruments;
    if (!Array.isArray(tracks)) { fig.hidden = true; return; }
    fig.hidden = false;
    $("pianoroll-empty").hidden = tracks.length > 0;
    $("pianoroll-wrap").hidden = !tracks.length;
    $("pianoroll-info").textContent = tracks.length
      ? "(" + tracks.length + " instrument" + (tracks.length === 1 ? "" : "s") + " heard)" : "";
    if (!tracks.length) return;
    const d = result.duration || Math.max(...tracks.flatMap((t) => t.segments.map((s) => s.end)), 1e-3);
    const W = Math.max(300, Math.round(svg.getBoundingClientRect().width) || 1000);
    const labelH = 16, laneH = 20, rowH = labelH + laneH + 6, H = tracks.length * rowH + 16;
    const x = (t) => W * Math.min(Math.max(t, 0), d) / d;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("aria-label", "who plays when: " + tracks.map((t) =>
      words(t.label) + " " + t.segments.map(fmtSpan).join(", ")).join("; "));
    tracks.forEach((t, i) => {
      const y = i * rowH;
      const g = el("g", { "class": "track", "data-label": t.label, "data-probability": t.probability.toFixed(4) }, svg);
      const text = el("text", { x: 2, y: y + 12, "class": "track-label" }, g);
      text.textContent = words(t.label) + " " + pct(t.probability);
      el("tspan", { "class": "track-detail", dx: 8 }, text).textContent = t.segments.map(fmtSpan).join(", ");
      el("rect", { x: 0, y: y + labelH, width: W, height: laneH, fill: "#f0f2f5", rx: 3 }, g);
      for (const s of t.segments) {
        const bar = el("rect", { "class": "note", x: x(s.start), y: y + labelH + 2, width: Math.max(2, x(s.end) - x(s.start)),
                                 height: laneH - 4, fill: colour(t.label), rx: 3, "data-start": s.start, "data-end": s.end }, g);
        el("title", {}, bar).textContent = words(t.label) + " " + fmtSpan(s);
      }
    });
    drawTicks(svg, d, x, H);
  }

  function drawTimeline(result) {
    const fig = $("timeline-figure");
    const svg = $("timeline");
    svg.replaceChildren();
    $("legend").replaceChildren();
    if (!result.windows) { fig.hidden = true; return; }
    fig.hidden = false;
    $("timeline-info").textContent = "(windows of " + result.window + " s every " + result.hop + " s; " +
      result.segments.length + " segment" + (result.segments.length === 1 ? "" : "s") + ")";
    const W = Math.max(300, Math.round(svg.getBoundingClientRect().width) || 1000), bandH = 34, gap = 10, plotH = 110, H = bandH + gap + plotH + 18;
    const d = result.duration;
    const x = (t) => W * t / d;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("aria-label", "instrument over time: " + result.segments.map((s) => words(s.label) + " " + fmtSpan(s)).join(", "));

    // Segments: coloured bands, the label written inside when it fits.
    const band = el("g", { "class": "segments" }, svg);
    for (const s of result.segments) {
      const g = el("g", { "class": "segment", "data-label": s.label }, band);
      const w = Math.max(1, x(s.end) - x(s.start));
      el("rect", { x: x(s.start), y: 0, width: w, height: bandH, fill: colour(s.label) }, g);
      if (w > 8 * s.label.length) {
        el("text", { x: x(s.start) + 6, y: bandH / 2 + 4, fill: s.label === SILENCE ? "#333" : "#fff" }, g)
          .textContent = s.label;
      }
      el("title", {}, g).textContent = s.label + " " + fmtTime(s.start) + "–" + fmtTime(s.end) +
        (s.probability != null ? " (" + pct(s.probability) + ")" : "");
    }

    // Per-window probability of each class, one line per class, at the window centres.
    const top = bandH + gap;
    const plot = el("g", { "class": "probabilities" }, svg);
    el("rect", { x: 0, y: top, width: W, height: plotH, fill: "#fafbfc", stroke: "#dde1e7" }, plot);
    for (const w of result.windows) {
      if (w.silent) el("rect", { x: x(w.start), y: top, width: x(w.end) - x(w.start), height: plotH, fill: "#eceef1" }, plot);
    }
    for (const c of state.shown) {  // the likeliest only, as instrec predict --plot
      let path = "", pen = false;
      for (const w of result.windows) {
        if (w.silent || !w.probabilities) { pen = false; continue; }
        const px = x((w.start + w.end) / 2), py = top + plotH * (1 - w.probabilities[c]);
        path += (pen ? " L" : " M") + px.toFixed(1) + " " + py.toFixed(1);
        pen = true;
      }
      if (path) el("path", { d: path, fill: "none", stroke: colour(c), "stroke-width": 2,
                             "vector-effect": "non-scaling-stroke", "data-class": c }, plot);
    }
    el("text", { x: 4, y: top + 12, fill: "#5f6b7a" }, plot).textContent = "100%";
    el("text", { x: 4, y: top + plotH - 4, fill: "#5f6b7a" }, plot).textContent = "0";
    drawTicks(svg, d, x, H);
    // The legend: the shown classes, silence and unknown when a segment is one, then how many are
    // left out (with the grey swatch when a segment of one of them is drawn in it).
    const used = (c) => result.segments.some((s) => s.label === c);
    const extra = [UNKNOWN, SILENCE].filter((c) => state.shown.indexOf(c) < 0 && used(c));
    const entry = (text) => $("legend").appendChild(Object.assign(document.createElement("span"), { textContent: text }));
    for (const c of state.shown.concat(extra)) {
      const s = entry(c);
      s.style.setProperty("--swatch", colour(c));
      s.dataset.class = c;
    }
    const others = Object.keys(result.probabilities).length - state.shown.length;
    if (others > 0) {
      const s = entry(others + " less likely not shown");
      s.className = "legend-note";
      const greyed = result.segments.some((g) => g.label !== SILENCE && g.label !== UNKNOWN && state.shown.indexOf(g.label) < 0);
      if (greyed) s.style.setProperty("--swatch", OTHER); else s.classList.add("no-swatch");
    }
  }

  // Playhead over the spectrogram and the timeline while the recording plays.
  function updatePlayhead() {
    const player = $("player");
    const d = state.duration || player.duration;
    for (const id of ["spec-playhead", "timeline-playhead", "pianoroll-playhead"]) {
      const ph = $(id);
      if (!d || !isFinite(d) || $("result").hidden) { ph.style.display = "none"; continue; }
      ph.style.display = player.currentTime > 0 ? "block" : "none";
      ph.style.left = Math.min(100, 100 * player.currentTime / d) + "%";
    }
    if (!player.paused) requestAnimationFrame(updatePlayhead);
  }

  function seekFromClick(event, elem) {
    const rect = elem.getBoundingClientRect();
    const d = state.duration;
    if (!d || !rect.width) return;
    $("player").currentTime = d * (event.clientX - rect.left) / rect.width;
    updatePlayhead();
  }

  // ------------------------------------------------------------------------------------------
  // Recording from the microphone: raw samples through Web Audio, encoded as a 16-bit WAV here
  // (a MediaRecorder's webm/opus could not be decoded by the server).

  const WORKLET = "class InstrecRecorder extends AudioWorkletProcessor {" +
    " process(inputs) { const ch = inputs[0]; if (ch && ch.length) this.port.postMessage(ch[0].slice(0)); return true; } }" +
    " registerProcessor('instrec-recorder', InstrecRecorder);";

  async function startRecording() {
    if (state.starting) return;  // a second click while the first opens the microphone
    showError("");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError("This browser cannot record here: microphones need https or localhost.");
      return;
    }
    state.starting = true;
    $("record-button").disabled = true;
    let stream, ctx;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } })
        .catch((e) => { showError("No microphone: " + (e.message || e.name)); });
      if (!stream) return;
      ctx = new AudioContext();
      const source = ctx.createMediaStreamSource(stream);
      const chunks = [];
      let node;
      if (ctx.audioWorklet && window.AudioWorkletNode) {
        const url = URL.createObjectURL(new Blob([WORKLET], { type: "application/javascript" }));
        try { await ctx.audioWorklet.addModule(url); } finally { URL.revokeObjectURL(url); }
        node = new AudioWorkletNode(ctx, "instrec-recorder");
        node.port.onmessage = (e) => chunks.push(e.data);
      } else {
        node = ctx.createScriptProcessor(4096, 1, 1);
        node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
      }
      source.connect(node).connect(new GainNode(ctx, { gain: 0 })).connect(ctx.destination);  // muted
      if (ctx.state === "suspended") await ctx.resume();
      const started = performance.now();
      const timer = setInterval(() => {
        const s = (performance.now() - started) / 1000;
        $("record-time").textContent = "recording " + s.toFixed(1) + " s";
        if (s >= MAX_RECORD_S) stopRecording();
      }, 100);
      state.recorder = { stream, ctx, node, source, chunks, timer };
    } catch (e) {  // the microphone is open: let go of it, or the browser shows it recording on
      stream.getTracks().forEach((t) => t.stop());
      if (ctx) ctx.close().catch(() => {});
      throw e;
    } finally {
      state.starting = false;
      $("record-button").disabled = state.busy && !state.recorder;
    }
    setRecordButton(true);
    setStatus("Recording… press Stop when done.");
  }

  function setRecordButton(on) {
    $("file-input").disabled = on || state.busy;
    const button = $("record-button");
    button.textContent = on ? "■ Stop" : "● Record";
    button.classList.toggle("recording", on);
    button.setAttribute("aria-pressed", String(on));
  }

  async function stopRecording() {
    const rec = state.recorder;
    if (!rec) return;
    state.recorder = null;
    clearInterval(rec.timer);
    rec.stream.getTracks().forEach((t) => t.stop());
    rec.source.disconnect();
    rec.node.disconnect();
    const sampleRate = rec.ctx.sampleRate;
    await rec.ctx.close();
    setRecordButton(false);
    $("record-time").textContent = "";
    setStatus("");
    const n = rec.chunks.reduce((sum, c) => sum + c.length, 0);
    const samples = new Float32Array(n);
    rec.chunks.reduce((at, c) => { samples.set(c, at); return at + c.length; }, 0);
    if (!n) { showError("Nothing was recorded."); return; }
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
    const file = new File([encodeWav(samples, sampleRate)], "recording-" + stamp + ".wav", { type: "audio/wav" });
    analyse(file);
  }

  function encodeWav(samples, sampleRate) {
    const buf = new ArrayBuffer(44 + 2 * samples.length);
    const v = new DataView(buf);
    const ascii = (at, s) => { for (let i = 0; i < s.length; i++) v.setUint8(at + i, s.charCodeAt(i)); };
    ascii(0, "RIFF"); v.setUint32(4, 36 + 2 * samples.length, true); ascii(8, "WAVE");
    ascii(12, "fmt "); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
    v.setUint32(24, sampleRate, true); v.setUint32(28, 2 * sampleRate, true); v.setUint16(32, 2, true);
    v.setUint16(34, 16, true); ascii(36, "data"); v.setUint32(40, 2 * samples.length, true);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i] || 0));
      v.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([buf], { type: "audio/wav" });
  }

  // ------------------------------------------------------------------------------------------
  // Wiring

  function init() {
    $("file-input").addEventListener("change", (e) => {
      const file = e.target.files[0];
      e.target.value = "";  // choosing the same file again analyses it again
      analyse(file);
    });
    $("record-button").addEventListener("click", () => {
      if (state.recorder) stopRecording();
      else if (!state.busy) startRecording().catch((e) => showError("Recording failed: " + e.message));
    });
    const zone = $("dropzone");
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragover"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragover"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("dragover");
      if (e.dataTransfer.files.length) analyse(e.dataTransfer.files[0]);
    });
    const player = $("player");
    for (const ev of ["play", "seeked", "timeupdate", "ended", "pause"]) player.addEventListener(ev, updatePlayhead);
    $("spec-wrap").addEventListener("click", (e) => seekFromClick(e, $("spec-wrap")));
    $("timeline").addEventListener("click", (e) => seekFromClick(e, $("timeline")));
    $("pianoroll").addEventListener("click", (e) => seekFromClick(e, $("pianoroll")));
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("key-input").value.trim();
      $("key-input").value = "";
      state.key = key;
      try {
        if (key) sessionStorage.setItem(KEY_STORE, key); else sessionStorage.removeItem(KEY_STORE);
      } catch (err) { /* storage refused: the key lasts until the page is left */ }
      showError("");
      loadModel();
    });
    loadModel();
  }

  init();
})();
