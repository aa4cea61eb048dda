// Latent explorer sliders that decode in the browser.
//
// Streamlit sends the run's decoder (ONNX bytes), the start latent, the slider directions
// (a (k, dim) float32 matrix, already scaled to one slider unit) and the reference image once
// per start point.  Each slider move computes  latent = start + sum_i value_i * direction_i
// here, decodes it with onnxruntime-web (single-threaded WebAssembly, files served from this
// component's own folder) and draws reference | decoded | difference on a canvas exactly as
// core.viz.latent.compare_png does on the server.  Nothing is sent to the server per move: the
// component returns a value only when the user asks for the view string ("Copy view"), or once
// to say that this browser cannot decode (the page then decodes on the server).
"use strict";

const state = {
  modelKey: null, viewKey: null, session: null, loading: null, args: null,
  start: null, directions: null, reference: null, startCodes: null, condition: null,
  sliders: [], inputs: [], busy: false, pending: false, moveStarted: null,
};

// What tests and benchmarks read (window.latentDecoder in the component's frame).
const probe = window.latentDecoder = { modelKey: null,
  ready: false, error: null, decodes: 0, decodeMs: [], moveToDrawMs: [], lastImage: null,
  lastLatent: null, values: {}, wasmPaths: null,
};

// ------------------------------------------------------------------ Streamlit protocol (component API v1)
function send(type, data) {
  window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type }, data), "*");
}
function setValue(value) { send("streamlit:setComponentValue", { value, dataType: "json" }); }
function setHeight() { send("streamlit:setFrameHeight", { height: document.documentElement.scrollHeight + 4 }); }

window.addEventListener("message", (event) => {
  if (!event.data || event.data.type !== "streamlit:render") return;
  applyTheme(event.data.theme);
  onRender(event.data.args).catch(fail);
});
new ResizeObserver(setHeight).observe(document.body);

function applyTheme(theme) {  // Streamlit's theme (the app ships a dark one)
  if (!theme) return;
  const root = document.documentElement.style;
  if (theme.textColor) root.setProperty("--text", theme.textColor);
  if (theme.primaryColor) root.setProperty("--primary", theme.primaryColor);
  if (theme.secondaryBackgroundColor) root.setProperty("--panel", theme.secondaryBackgroundColor);
  if (theme.font) root.setProperty("--font", theme.font);
}

// ------------------------------------------------------------------ helpers
const f32 = (u8) => new Float32Array(u8.slice().buffer);  // copy: the bytes may be unaligned
const i32 = (u8) => new Int32Array(u8.slice().buffer);
const fr = Math.fround;

function fail(error) {
  const reason = String(error && error.message ? error.message : error);
  probe.error = reason;
  document.getElementById("status").textContent = "Cannot decode in this browser: " + reason;
  setValue({ status: "unsupported", reason, nonce: "unsupported-" + state.modelKey });
}

// ------------------------------------------------------------------ render message
async function onRender(args) {
  state.args = args;
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    throw new Error("this browser has no WebAssembly");
  }
  document.getElementById("caption").textContent = args.caption || "";
  if (args.model_key !== state.modelKey) {
    state.modelKey = args.model_key;
    state.session = null;
    probe.ready = false;
    state.loading = createSession(args.model);
  }
  if (args.view_key !== state.viewKey) {
    state.viewKey = args.view_key;
    state.start = f32(args.start);
    state.directions = f32(args.directions);
    state.reference = f32(args.reference);
    state.startCodes = args.start_codes ? i32(args.start_codes) : null;
    state.condition = args.condition ? Float32Array.from(args.condition) : null;
    buildSliders(args.sliders, args.groups);
  }
  await state.loading;
  await decode();
}

async function createSession(modelBytes) {
  const status = document.getElementById("status");
  status.textContent = "Loading the decoder into the browser…";
  ort.env.wasm.numThreads = 1;  // no SharedArrayBuffer: a Streamlit page is not cross-origin isolated
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = probe.wasmPaths = new URL("./", document.baseURI).href;  // bundled, no CDN
  const t0 = performance.now(), key = state.modelKey;
  const session = await ort.InferenceSession.create(modelBytes.slice(), {
    executionProviders: ["wasm"], graphOptimizationLevel: "all",
  });
  if (key !== state.modelKey) return;  // another run was chosen while this one loaded
  state.session = session;
  state.inputs = session.inputNames;
  probe.modelKey = state.modelKey;
  probe.loadMs = performance.now() - t0;
  probe.ready = true;
  status.textContent = "";
}

// ------------------------------------------------------------------ sliders
function buildSliders(specs, groups) {
  const root = document.getElementById("controls");
  root.textContent = "";
  state.sliders = [];
  for (const group of groups) {
    const members = specs.map((s, i) => [s, i]).filter(([s]) => s.group === group.name);
    if (!members.length) continue;
    const box = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = group.title;
    box.appendChild(legend);
    if (group.note) {
      const note = document.createElement("div");
      note.id = "note-" + group.name;
      note.textContent = group.note;
      note.className = "note";
      box.appendChild(note);
    }
    for (const [spec, row] of members) {
      const wrap = document.createElement("div");
      wrap.className = "slider";
      const label = document.createElement("label");
      label.textContent = spec.label;
      label.title = spec.help || "";
      const input = document.createElement("input");
      Object.assign(input, { type: "range", min: spec.min, max: spec.max, step: spec.step, value: spec.value });
      input.dataset.key = spec.key;
      input.setAttribute("aria-label", spec.label);
      label.htmlFor = input.id = "slider-" + spec.key;
      const out = document.createElement("output");
      out.textContent = Number(spec.value).toFixed(spec.step < 1 ? 1 : 0);
      input.addEventListener("input", () => {
        out.textContent = Number(input.value).toFixed(spec.step < 1 ? 1 : 0);
        state.moveStarted = performance.now();
        decode().catch(fail);
      });
      wrap.append(label, input, out);
      box.appendChild(wrap);
      state.sliders.push({ key: spec.key, input, row });
    }
    root.appendChild(box);
  }
  setHeight();
}

function values() {
  const out = {};
  for (const s of state.sliders) out[s.key] = Number(s.input.value);
  return out;
}

function latent() {
  const dim = state.start.length;
  const z = Float32Array.from(state.start);
  for (const s of state.sliders) {
    const v = Number(s.input.value);
    if (!v) continue;
    const base = s.row * dim;
    for (let j = 0; j < dim; j++) z[j] = fr(z[j] + fr(v * state.directions[base + j]));
  }
  return z;
}

// ------------------------------------------------------------------ decode and draw
async function decode() {
  if (!state.session || !state.start) return;
  if (state.busy) { state.pending = true; return; }  // coalesce moves made while decoding
  state.busy = true;
  try {
    do {
      state.pending = false;
      const moved = state.moveStarted;
      const z = latent();
      const feeds = { [state.inputs[0]]: new ort.Tensor("float32", z, [1, z.length]) };
      if (state.inputs.length > 1) {
        feeds[state.inputs[1]] = new ort.Tensor("float32", state.condition, [1, state.condition.length]);
      }
      const t0 = performance.now();
      const out = await state.session.run(feeds);
      const t1 = performance.now();
      const image = out.image.data;
      const codes = out.codes ? out.codes.data : null;
      draw(image);
      facts(z, codes, t1 - t0);
      probe.decodes += 1;
      probe.decodeMs.push(t1 - t0);
      if (moved !== null) probe.moveToDrawMs.push(performance.now() - moved);
      probe.lastImage = Array.from(image);
      probe.lastLatent = Array.from(z);
      probe.values = values();
      document.getElementById("canvas").dataset.decodes = String(probe.decodes);
    } while (state.pending);
  } finally {
    state.busy = false;
  }
}

function grey(x) {
  const c = x < 0 ? 0 : x > 1 ? 1 : x;
  return Math.trunc(fr(fr(fr(c) * 255) + 0.5));  // as numpy: float32 clip * 255 + 0.5, then truncate
}

function channel(x) {
  const c = x < 0 ? 0 : x > 1 ? 1 : x;
  return Math.trunc(fr(fr(c * 255) + 0.5));
}

function draw(image) {
  const n = state.args.image_size, f = state.args.factor, pad = state.args.pad;
  const w = n * f, W = 3 * w + 2 * pad;
  const canvas = document.getElementById("canvas");
  if (canvas.width !== W || canvas.height !== w) { canvas.width = W; canvas.height = w; }
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(W, w);
  data.data.fill(255);
  const ref = state.reference;
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const i = y * n + x;
      const a = grey(ref[i]), b = grey(image[i]);
      let d = fr(fr(image[i] - ref[i]) / fr(0.5));
      d = d < -1 ? -1 : d > 1 ? 1 : d;
      const pos = d > 0 ? d : 0, neg = d < 0 ? -d : 0;
      const rgb = [channel(fr(1 - neg)), channel(fr(fr(1 - pos) - neg)), channel(fr(1 - pos))];
      for (let dy = 0; dy < f; dy++) {
        for (let dx = 0; dx < f; dx++) {
          const row = (y * f + dy) * W, col = x * f + dx;
          const p0 = (row + col) * 4, p1 = (row + w + pad + col) * 4, p2 = (row + 2 * (w + pad) + col) * 4;
          data.data[p0] = data.data[p0 + 1] = data.data[p0 + 2] = a;
          data.data[p1] = data.data[p1 + 1] = data.data[p1 + 2] = b;
          data.data[p2] = rgb[0]; data.data[p2 + 1] = rgb[1]; data.data[p2 + 2] = rgb[2];
        }
      }
    }
  }
  ctx.putImageData(data, 0, 0);
}

function facts(z, codes, ms) {
  let sq = 0;
  for (let j = 0; j < z.length; j++) { const d = z[j] - state.start[j]; sq += d * d; }
  const parts = [`moved ${Math.sqrt(sq).toFixed(2)} in latent space`];
  if (codes && state.startCodes) {
    let changed = 0;
    for (let j = 0; j < codes.length; j++) if (codes[j] !== state.startCodes[j]) changed++;
    parts.push(`${changed} of ${codes.length} codes changed after re-quantising`);
  }
  document.getElementById("facts").textContent = parts.join(" · ");
  document.getElementById("status").textContent =
    `Decoded in this browser (onnxruntime-web, WebAssembly) in ${ms.toFixed(1)} ms; the server is not asked per move.`;
}

// ------------------------------------------------------------------ buttons
document.getElementById("reset").addEventListener("click", () => {
  for (const s of state.sliders) { s.input.value = 0; s.input.nextSibling.textContent = (0).toFixed(1); }
  state.moveStarted = performance.now();
  decode().catch(fail);
});
document.getElementById("save").addEventListener("click", () => {
  const sliders = {};
  for (const [k, v] of Object.entries(values())) if (v) sliders[k] = v;
  setValue({ status: "view", sliders, nonce: `${Date.now()}-${Math.random().toString(36).slice(2, 8)}` });
});

send("streamlit:componentReady", { apiVersion: 1 });
