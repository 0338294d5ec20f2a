// kwslab live page: microphone -> 16 kHz int16 -> WebSocket -> the server's device twin;
// draws the int8 features, the scores per window and RecognizeCommands' detections.
// Everything the page shows is also kept in window.kws (read by the browser test).
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#888888", "#bbbbbb", "#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8",
                "#fff176", "#4db6ac", "#f06292", "#9575cd", "#aed581", "#ff8a65", "#90a4ae"];
const FRAME_PX = 2, CHANNEL_PX = 4;

const kws = {
  info: null, mode: "idle",        // idle | live | file
  frames: [], times: [], scores: [], detections: [],
  sent: [], sentSamples: 0, chunks: [], updates: 0, errors: [], closed: null,
};
window.kws = kws;

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
  if (isError) kws.errors.push(text);
}

// ---- drawing ---------------------------------------------------------------------------
const LUT = (() => {  // int8 -128..127 -> dark blue .. yellow
  const lut = [];
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    lut.push([Math.round(255 * Math.min(1, 2 * v * v + 0.1 * v)),
              Math.round(255 * Math.min(1, 1.2 * v)),
              Math.round(255 * Math.max(0, 0.5 - 0.7 * v + 0.3 * v * v * v))]);
  }
  return lut;
})();

function frameOfTime(ms) {  // window ending at frame j ends at (window + stride * j) / rate
  const i = kws.info;
  return Math.round((ms * i.sample_rate_hz / 1000 - i.window_samples) / i.stride_samples);
}

function visibleRange(canvas) {
  const n = kws.frames.length, cols = Math.floor(canvas.width / FRAME_PX);
  return kws.mode === "file" ? [0, n] : [Math.max(0, n - cols), n];
}

function draw() {
  if (!kws.info) return;
  const fc = $("features"), sc = $("scores");
  if (kws.mode === "file") {
    const w = Math.max(800, kws.frames.length * FRAME_PX);
    if (fc.width !== w) { fc.width = w; sc.width = w; }
  }
  const [a, b] = visibleRange(fc);
  const F = kws.info.feature_shape[1];
  const fx = fc.getContext("2d");
  const img = fx.createImageData(fc.width, F * CHANNEL_PX);
  for (let j = a; j < b; j++) {
    const row = kws.frames[j], x0 = (j - a) * FRAME_PX;
    for (let c = 0; c < F; c++) {
      const rgb = LUT[row[c] + 128], y0 = (F - 1 - c) * CHANNEL_PX;
      for (let dy = 0; dy < CHANNEL_PX; dy++) for (let dx = 0; dx < FRAME_PX; dx++) {
        const p = 4 * ((y0 + dy) * fc.width + x0 + dx);
        img.data[p] = rgb[0]; img.data[p + 1] = rgb[1]; img.data[p + 2] = rgb[2]; img.data[p + 3] = 255;
      }
    }
  }
  fx.putImageData(img, 0, 0);

  const sx = sc.getContext("2d"), H = sc.height;
  const y = (v) => H - 4 - (v / 255) * (H - 8);
  sx.fillStyle = "#111"; sx.fillRect(0, 0, sc.width, H);
  sx.strokeStyle = "#666"; sx.setLineDash([4, 4]); sx.beginPath();
  sx.moveTo(0, y(kws.info.detection_threshold)); sx.lineTo(sc.width, y(kws.info.detection_threshold));
  sx.stroke(); sx.setLineDash([]);
  const labels = kws.info.labels;
  for (let c = 0; c < labels.length; c++) {
    sx.strokeStyle = COLORS[c % COLORS.length]; sx.lineWidth = c < 2 ? 1 : 2; sx.beginPath();
    let started = false;
    for (let k = 0; k < kws.times.length; k++) {
      const j = frameOfTime(kws.times[k]);
      if (j < a || j >= b) continue;
      const px = (j - a) * FRAME_PX, py = y(kws.scores[k][c] + 128);
      if (started) sx.lineTo(px, py); else { sx.moveTo(px, py); started = true; }
    }
    sx.stroke();
  }
  sx.font = "12px sans-serif";
  for (const d of kws.detections) {
    const j = frameOfTime(d.time_ms);
    if (j < a || j >= b) continue;
    const px = (j - a) * FRAME_PX;
    sx.strokeStyle = "#fff"; sx.beginPath(); sx.moveTo(px, 0); sx.lineTo(px, H); sx.stroke();
    sx.fillStyle = "#fff"; sx.fillText(d.label, Math.min(px + 3, sc.width - 40), 14);
  }
  if (kws.scores.length) {
    const last = kws.scores[kws.scores.length - 1];
    $("bars").innerHTML = labels.map((l, c) =>
      `<div>${l} ${last[c] + 128}<div class="bar"><div class="fill" style="width:${(last[c] + 128) / 2.55}%;` +
      `background:${COLORS[c % COLORS.length]}"></div></div></div>`).join("");
  }
}

let drawPending = false;
function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => { drawPending = false; draw(); });
}

function addDetectionRow(d, clock) {
  const tr = document.createElement("tr");
  tr.className = "new";
  tr.innerHTML = `<td>${d.label}</td><td>${(d.time_ms / 1000).toFixed(2)} s</td><td>${d.score}</td>` +
                 `<td>${clock}</td>`;
  const body = $("detections").tBodies[0];
  body.insertBefore(tr, body.firstChild);
  setTimeout(() => tr.classList.remove("new"), 1500);
}

function resetTimeline(mode) {
  Object.assign(kws, {mode, frames: [], times: [], scores: [], detections: [], updates: 0});
  $("detections").tBodies[0].innerHTML = "";
  $("features").width = 800; $("scores").width = 800;
  scheduleDraw();
}

function applyUpdate(u) {
  for (const f of u.features) kws.frames.push(f);
  for (let k = 0; k < u.times_ms.length; k++) { kws.times.push(u.times_ms[k]); kws.scores.push(u.scores[k]); }
  kws.updates += 1;
  for (const d of u.detections) {
    const clock = kws.mode === "live" ? new Date().toLocaleTimeString() : "";
    addDetectionRow(d, clock);
    kws.detections.push({...d, shownAt: performance.now()});
  }
  scheduleDraw();
}

// ---- live microphone ---------------------------------------------------------------------
let live = null;

function wsUrl(path) {
  const u = new URL(path, location.href);  // relative: works behind a proxy's path prefix
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}

async function startLive() {
  if (live) return;
  $("start").disabled = true;
  setStatus("asking for the microphone...");
  let media, ctx, source;
  try {
    media = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1,
      echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
  } catch (e) {
    setStatus(`no microphone: ${e.name}: ${e.message}`, true);
    $("start").disabled = false;
    return;
  }
  const rate = kws.info.sample_rate_hz;
  const forceWorklet = new URLSearchParams(location.search).get("resample") === "worklet";
  try {
    if (forceWorklet) throw new Error("resampling in the worklet (?resample=worklet)");
    ctx = new AudioContext({sampleRate: rate});
    source = ctx.createMediaStreamSource(media);
  } catch (e) {  // this browser cannot feed the microphone into a 16 kHz context
    if (ctx) ctx.close();
    ctx = new AudioContext();
    source = ctx.createMediaStreamSource(media);
  }
  await ctx.audioWorklet.addModule("static/capture-worklet.js");
  const node = new AudioWorkletNode(ctx, "kws-capture",
    {numberOfInputs: 1, numberOfOutputs: 1, processorOptions: {targetRate: rate, chunkSamples: rate / 10}});
  const mute = ctx.createGain();
  mute.gain.value = 0;
  source.connect(node); node.connect(mute); mute.connect(ctx.destination);

  resetTimeline("live");
  Object.assign(kws, {sent: [], sentSamples: 0, chunks: [], closed: null, contextRate: ctx.sampleRate});
  const ws = new WebSocket(wsUrl("ws"));
  ws.binaryType = "arraybuffer";
  live = {media, ctx, node, ws, ready: false, stopping: false, queue: []};
  ws.onopen = () => ws.send(JSON.stringify({type: "start", sample_rate_hz: rate, format: "s16le"}));
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "ready") {
      live.ready = true;
      for (const b of live.queue) ws.send(b);  // audio captured while the session started
      live.queue = [];
      setStatus(`listening (browser audio at ${ctx.sampleRate} Hz -> ${rate} Hz int16)`);
    } else if (m.type === "update") {
      applyUpdate(m);
    } else if (m.type === "error") {
      setStatus(`server: ${m.message}`, true);
    }
  };
  ws.onclose = (ev) => {
    kws.closed = {code: ev.code, reason: ev.reason};
    if (live && !live.stopping) {
      if (!kws.errors.length || ev.code !== 1000) {
        if (!$("status").className) setStatus(`connection closed (code ${ev.code})`, true);
      }
      stopLive();
    }
  };
  node.port.onmessage = (ev) => {
    if (!live) return;
    const {samples, endTime} = ev.data;
    const ts = ctx.getOutputTimestamp();  // map the audio clock onto performance.now()
    const capturedAt = ts.performanceTime + (endTime - ts.contextTime) * 1000;
    kws.chunks.push({start: kws.sentSamples, n: samples.length, capturedAt, postedAt: performance.now()});
    kws.sent.push(samples);
    kws.sentSamples += samples.length;
    if (!live.ready) live.queue.push(samples.buffer.slice(0));
    else if (ws.readyState === WebSocket.OPEN) ws.send(samples.buffer.slice(0));
  };
  $("stop").disabled = false;
}

function wavBlob(chunks, total, rate) {
  const buf = new ArrayBuffer(44 + 2 * total), v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + 2 * total, true); str(8, "WAVE"); str(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, 2 * rate, true); v.setUint16(32, 2, true);
  v.setUint16(34, 16, true); str(36, "data"); v.setUint32(40, 2 * total, true);
  let o = 44;
  for (const c of chunks) { new Int16Array(buf, o, c.length).set(c); o += 2 * c.length; }
  return new Blob([buf], {type: "audio/wav"});
}

function stopLive() {
  if (!live) return;
  const {media, ctx, node, ws} = live;
  live.stopping = true;
  node.port.onmessage = null;
  media.getTracks().forEach((t) => t.stop());
  ctx.close();
  if (ws.readyState <= WebSocket.OPEN) ws.close(1000, "stopped");
  live = null;
  $("start").disabled = false; $("stop").disabled = true;
  if (kws.sentSamples) {
    const a = $("download");
    if (a.href) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(wavBlob(kws.sent, kws.sentSamples, kws.info.sample_rate_hz));
    a.hidden = false;
  }
  if (!$("status").className) setStatus(`stopped after ${(kws.sentSamples / kws.info.sample_rate_hz).toFixed(1)} s`);
}

// ---- WAV upload --------------------------------------------------------------------------
async function upload(file) {
  stopLive();
  setStatus(`analysing ${file.name}...`);
  let r, m;
  try {
    r = await fetch(`api/detect?name=${encodeURIComponent(file.name)}`,
                    {method: "POST", body: file, headers: {"Content-Type": "application/octet-stream"}});
    m = await r.json();
  } catch (e) {
    setStatus(`upload failed: ${e.message}`, true);
    return;
  }
  if (!r.ok) { setStatus(m.error || `upload failed (HTTP ${r.status})`, true); return; }
  resetTimeline("file");
  applyUpdate(m);
  setStatus(`${m.name}: ${(m.duration_ms / 1000).toFixed(2)} s, ${m.detections.length} detection(s)`);
}

// ---- start -------------------------------------------------------------------------------
async function init() {
  try {
    kws.info = await (await fetch("api/info")).json();
  } catch (e) {
    setStatus(`cannot reach the server: ${e.message}`, true);
    return;
  }
  const i = kws.info;
  $("model").textContent = `model ${i.model} (${i.model_bytes.toLocaleString()} bytes), labels ` +
    `${i.labels.join(", ")}; ${i.sample_rate_hz} Hz, ${i.feature_shape[0]} x ${i.feature_shape[1]} features`;
  $("legend").innerHTML = i.labels.map((l, c) =>
    `<span style="color:${COLORS[c % COLORS.length]}">&#9632; ${l}</span>`).join("");
  const r = i.recognize;
  $("recognize").textContent = `(RecognizeCommands: ${r.average_window_ms} ms average, threshold ` +
    `${r.detection_threshold}, suppression ${r.suppression_ms} ms, at least ${r.minimum_count} results)`;
  $("start").onclick = startLive;
  $("stop").onclick = stopLive;
  $("upload").onchange = (e) => { if (e.target.files.length) upload(e.target.files[0]); };
  if (!window.isSecureContext || !navigator.mediaDevices) {
    setStatus("the microphone needs https or localhost; WAV upload still works", true);
  } else {
    setStatus("ready: start the microphone or upload a WAV");
  }
  kws.ready = true;
  draw();
}

init();
