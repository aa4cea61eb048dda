// Browse's three-plane viewer, drawn in the browser from one 8-bit volume per subject.
//
// Planes are cut exactly as core.data.slices.plane cuts them (RAS+ canonical volume; axial and
// coronal: anterior / superior on top, the subject's right on the left in the radiological
// convention; sagittal: anterior on the left, superior on top), so a plane canvas holds the
// server's pixels.  Crosshair, slice-range lines, labels and the display window are drawn here;
// the page hears only of a click on a voxel and of a range set with the buttons.
//
// The Streamlit component protocol (v1) is spoken by hand: no dependencies.
"use strict";

const AXES = { sagittal: 0, coronal: 1, axial: 2 };
const VIEWS = ["axial", "coronal", "sagittal"];
const CROSSHAIR = "rgb(0,220,255)", RANGE = "rgb(255,170,0)", LABEL = "rgb(255,255,80)";
const MAX_DISPLAY_PX = 400; // the server draws its planes 360 px on the long side

// ------------------------------------------------------------------ Streamlit protocol
function send(type, data) {
  window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, data || {}), "*");
}
let lastHeight = -1;
function fitHeight() {
  const h = Math.ceil(document.body.scrollHeight) + 4;
  if (h !== lastHeight) { lastHeight = h; send("streamlit:setFrameHeight", { height: h }); }
}
let seq = 0;
function emit(event) { seq += 1; send("streamlit:setComponentValue", { value: Object.assign({ seq: seq, t: Date.now() }, event), dataType: "json" }); }

// ------------------------------------------------------------------ geometry (core.data.slices)
function planeAxes(axis) { return { axial: [1, 0], coronal: [2, 0], sagittal: [2, 1] }[axis]; }
function flipCols(axis, radiological) { return axis === "sagittal" || radiological; }
function planePixelMm(zooms, axis) {
  const [x, y, z] = zooms;
  return { axial: [y, x], coronal: [z, x], sagittal: [z, y] }[axis];
}
function voxelToPlane(shape, axis, ijk, radiological) {
  const [ra, ca] = planeAxes(axis);
  const row = shape[ra] - 1 - ijk[ra];
  let col = ijk[ca];
  if (flipCols(axis, radiological)) col = shape[ca] - 1 - col;
  return [row, col];
}
function planeToVoxel(shape, axis, row, col, ijk, radiological) {
  const [ra, ca] = planeAxes(axis);
  const out = ijk.slice();
  out[ra] = shape[ra] - 1 - row;
  out[ca] = flipCols(axis, radiological) ? shape[ca] - 1 - col : col;
  return out;
}
function planeLabels(axis, radiological) {
  const [l, r] = radiological ? ["R", "L"] : ["L", "R"];
  if (axis === "axial") return { top: "A", bottom: "P", left: l, right: r };
  if (axis === "coronal") return { top: "S", bottom: "I", left: l, right: r };
  return { top: "S", bottom: "I", left: "A", right: "P" };
}
function runsVertically(viewAxis, rangeAxis) {
  return rangeAxis === "sagittal" || (viewAxis === "sagittal" && rangeAxis === "coronal");
}
function voxelToMm(affine, ijk) {
  return [0, 1, 2].map(r => affine[r][0] * ijk[0] + affine[r][1] * ijk[1] + affine[r][2] * ijk[2] + affine[r][3]);
}
function signed(v) { return (v >= 0 ? "+" : "") + v.toFixed(1); }

// ------------------------------------------------------------------ state
const S = {
  source: null,        // url (or "bytes:<n>") of the volume shown
  data: null,          // Uint8Array, C order (X, Y, Z)
  meta: null,          // shape, zooms, affine, radiological, crosshair, range, lut
  argsCrosshair: null, // the page's crosshair as last received: applied only when it changes
  ijk: [0, 0, 0],
  window: { level: 127.5, width: 255 }, // display window over the 8-bit values (drag to change)
  views: {},
  draws: 0,
  inputAt: 0,
  inputToDrawMs: [],   // slider input event -> planes drawn, per move (bench/browser.py reads it)
};
window.volumeViewer = S; // read by the tests and bench/browser.py (draw counter, timings)
const cache = new Map();   // source -> Uint8Array (two kept)

function lutTable() {
  const base = S.meta.lut;
  const lo = S.window.level - S.window.width / 2, k = 255 / Math.max(S.window.width, 1e-6);
  const out = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    const x = base ? base[v] : v;
    const y = Math.floor((x - lo) * k);
    out[v] = y < 0 ? 0 : y > 255 ? 255 : y;
  }
  return out;
}

// ------------------------------------------------------------------ drawing
function drawPlane(axis) {
  const view = S.views[axis], [X, Y, Z] = S.meta.shape, d = S.data, rad = S.meta.radiological;
  const [ra, ca] = planeAxes(axis), rows = S.meta.shape[ra], cols = S.meta.shape[ca];
  const canvas = view.plane;
  if (canvas.width !== cols || canvas.height !== rows) { canvas.width = cols; canvas.height = rows; }
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(cols, rows), px = image.data, lut = S.lut;
  const index = S.ijk[AXES[axis]], flip = flipCols(axis, rad);
  let p = 0;
  for (let r = 0; r < rows; r++) {
    const a = rows - 1 - r; // voxel index along the row axis
    for (let c = 0; c < cols; c++) {
      const b = flip ? cols - 1 - c : c;
      let i, j, k;
      if (axis === "axial") { i = b; j = a; k = index; }
      else if (axis === "coronal") { i = b; j = index; k = a; }
      else { i = index; j = b; k = a; }
      const g = lut[d[(i * Y + j) * Z + k]];
      px[p] = g; px[p + 1] = g; px[p + 2] = g; px[p + 3] = 255; p += 4;
    }
  }
  ctx.putImageData(image, 0, 0);
}

function layout(axis) {
  const view = S.views[axis], [ra, ca] = planeAxes(axis);
  const rows = S.meta.shape[ra], cols = S.meta.shape[ca];
  const [rowMm, colMm] = planePixelMm(S.meta.zooms, axis);
  const room = Math.min(MAX_DISPLAY_PX, Math.max(80, view.box.clientWidth));
  const scale = room / Math.max(rows * rowMm, cols * colMm);
  const w = Math.max(1, Math.round(cols * colMm * scale)), h = Math.max(1, Math.round(rows * rowMm * scale));
  view.w = w; view.h = h; view.rows = rows; view.cols = cols;
  view.stack.style.width = w + "px"; view.stack.style.height = h + "px";
  for (const c of [view.plane, view.overlay]) { c.style.width = w + "px"; c.style.height = h + "px"; }
  const dpr = window.devicePixelRatio || 1;
  view.overlay.width = Math.round(w * dpr); view.overlay.height = Math.round(h * dpr);
}

function drawOverlay(axis) {
  const view = S.views[axis], ctx = view.overlay.getContext("2d"), dpr = window.devicePixelRatio || 1;
  const { w, h, rows, cols } = view, sy = h / rows, sx = w / cols, rad = S.meta.radiological;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const line = (x0, y0, x1, y1) => { ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke(); };
  const range = S.meta.range;
  if (range && range[0] !== axis) {
    ctx.strokeStyle = RANGE; ctx.lineWidth = 2;
    for (const s of [range[1], range[2] - 1]) {
      const ijk = [0, 0, 0]; ijk[AXES[range[0]]] = s;
      const [r, c] = voxelToPlane(S.meta.shape, axis, ijk, rad);
      if (runsVertically(axis, range[0])) line((c + 0.5) * sx, 0, (c + 0.5) * sx, h);
      else line(0, (r + 0.5) * sy, w, (r + 0.5) * sy);
    }
  }
  const [r, c] = voxelToPlane(S.meta.shape, axis, S.ijk, rad), x = (c + 0.5) * sx, y = (r + 0.5) * sy, gap = 6;
  ctx.strokeStyle = CROSSHAIR; ctx.lineWidth = 1;
  line(0, y, x - gap, y); line(x + gap, y, w, y); line(x, 0, x, y - gap); line(x, y + gap, x, h);
  const edge = planeLabels(axis, rad), size = Math.max(12, Math.round(Math.max(w, h) / 24)), pad = 4;
  ctx.fillStyle = LABEL; ctx.font = `${size}px sans-serif`;
  ctx.textAlign = "center"; ctx.textBaseline = "top"; ctx.fillText(edge.top, w / 2, pad);
  ctx.textBaseline = "bottom"; ctx.fillText(edge.bottom, w / 2, h - pad);
  ctx.textBaseline = "middle"; ctx.textAlign = "left"; ctx.fillText(edge.left, pad, h / 2);
  ctx.textAlign = "right"; ctx.fillText(edge.right, w - pad, h / 2);
}

function captions() {
  const mm = voxelToMm(S.meta.affine, S.ijk);
  for (const axis of VIEWS) {
    const a = AXES[axis], view = S.views[axis];
    view.label.textContent = `${axis[0].toUpperCase()}${axis.slice(1)} slice ${S.ijk[a]} (${signed(mm[a])} mm)`;
    if (Number(view.slider.value) !== S.ijk[a]) view.slider.value = String(S.ijk[a]);
  }
  const win = S.window.width === 255 && S.window.level === 127.5 ? "" :
    ` · display window ${Math.round(S.window.level - S.window.width / 2)}–${Math.round(S.window.level + S.window.width / 2)} of 0–255 (double-click resets)`;
  S.readout.textContent = `Voxel (${S.ijk.join(", ")}) · RAS (${mm.map(signed).join(", ")}) mm${win}`;
}

// The page sends the three planes at the crosshair with a subject's first render: they are drawn at
// once (the first picture does not wait for the volume), and the sliders wake when the volume is here.
function preview(args) {
  S.meta = JSON.parse(JSON.stringify(args.meta));
  S.ijk = args.meta.crosshair.slice();
  S.argsCrosshair = JSON.stringify(args.meta.crosshair);
  S.data = null;
  S.lut = lutTable();
  for (const axis of VIEWS) {
    const view = S.views[axis], [ra, ca] = planeAxes(axis), rows = S.meta.shape[ra], cols = S.meta.shape[ca];
    const bytes = new Uint8Array(args[`preview_${axis}`]);
    if (bytes.length !== rows * cols) return;
    view.slider.max = String(S.meta.shape[AXES[axis]] - 1);
    view.slider.disabled = true;
    layout(axis);
    view.plane.width = cols; view.plane.height = rows;
    const ctx = view.plane.getContext("2d"), image = ctx.createImageData(cols, rows), px = image.data;
    for (let n = 0, p = 0; n < bytes.length; n++, p += 4) {
      const g = S.lut[bytes[n]];
      px[p] = g; px[p + 1] = g; px[p + 2] = g; px[p + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }
  for (const axis of VIEWS) drawOverlay(axis);
  captions();
  S.previews = (S.previews || 0) + 1;
  S.draws += 1;
  document.body.dataset.draws = String(S.draws);
  fitHeight();
}

let pending = 0;
function redraw(axes) {
  if (!S.data) return; // a preview is shown until the volume is here
  const t0 = performance.now();
  S.lut = lutTable();
  for (const axis of axes || VIEWS) drawPlane(axis);
  for (const axis of VIEWS) drawOverlay(axis);
  captions();
  S.draws += 1;
  S.lastDrawMs = performance.now() - t0;
  if (S.inputAt) { S.inputToDrawMs.push(performance.now() - S.inputAt); S.inputAt = 0; }
  document.body.dataset.draws = String(S.draws);
}
function scheduleRedraw(axes) {
  // one draw per frame however many input events arrive
  if (pending) return;
  pending = requestAnimationFrame(() => { pending = 0; redraw(axes); });
}

// ------------------------------------------------------------------ DOM
function build() {
  const root = document.getElementById("root");
  root.innerHTML = "";
  const views = document.createElement("div");
  views.className = "views";
  for (const axis of VIEWS) {
    const view = document.createElement("div");
    view.className = "view"; view.dataset.axis = axis;
    const label = document.createElement("label");
    const slider = document.createElement("input");
    slider.type = "range"; slider.min = "0"; slider.step = "1";
    slider.setAttribute("aria-label", `${axis} slice`);
    const box = document.createElement("div");
    const stack = document.createElement("div"); stack.className = "stack";
    const plane = document.createElement("canvas"); plane.className = "plane"; plane.dataset.axis = axis;
    const overlay = document.createElement("canvas"); overlay.className = "overlay";
    stack.append(plane, overlay); box.append(stack);
    view.append(label, slider, box);
    views.append(view);
    S.views[axis] = { view, label, slider, box, stack, plane, overlay };
    slider.addEventListener("input", () => {
      S.ijk[AXES[axis]] = Number(slider.value);
      S.inputAt = performance.now();
      scheduleRedraw([axis]);
    });
    stack.addEventListener("wheel", ev => {
      ev.preventDefault();
      const a = AXES[axis], n = S.meta.shape[a];
      S.ijk[a] = Math.min(n - 1, Math.max(0, S.ijk[a] + (ev.deltaY > 0 ? -1 : 1)));
      scheduleRedraw([axis]);
    }, { passive: false });
    pointer(axis, stack);
  }
  const bar = document.createElement("div"); bar.className = "bar";
  const start = document.createElement("button"), stop = document.createElement("button");
  start.textContent = "Range starts here"; stop.textContent = "Range ends here";
  start.addEventListener("click", () => setRange("start"));
  stop.addEventListener("click", () => setRange("stop"));
  S.rangeNote = document.createElement("span"); S.rangeNote.className = "caption";
  bar.append(start, stop, S.rangeNote);
  S.readout = document.createElement("div"); S.readout.className = "readout";
  root.append(views, S.readout, bar);
}

function pointer(axis, stack) {
  let drag = null;
  stack.addEventListener("contextmenu", ev => ev.preventDefault());
  stack.addEventListener("pointerdown", ev => {
    stack.setPointerCapture(ev.pointerId);
    drag = { x: ev.clientX, y: ev.clientY, window: Object.assign({}, S.window), button: ev.button, shift: ev.shiftKey, moved: false };
  });
  stack.addEventListener("pointermove", ev => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (drag.button === 2 || drag.shift) { // window / level: right (or shift) drag
      S.window.width = Math.min(510, Math.max(2, drag.window.width + dx));
      S.window.level = Math.min(255, Math.max(0, drag.window.level - dy));
      scheduleRedraw();
    } else if (drag.button === 0) {
      moveTo(axis, ev, false);
    }
  });
  stack.addEventListener("pointerup", ev => {
    if (!drag) return;
    const d = drag; drag = null;
    if (d.button === 0 && !d.shift) moveTo(axis, ev, true);
  });
  stack.addEventListener("dblclick", () => { S.window = { level: 127.5, width: 255 }; scheduleRedraw(); });
}

function moveTo(axis, ev, tell) {
  if (!S.data) return;
  const view = S.views[axis], rect = view.stack.getBoundingClientRect();
  const col = Math.min(view.cols - 1, Math.max(0, Math.floor((ev.clientX - rect.left) / (rect.width / view.cols))));
  const row = Math.min(view.rows - 1, Math.max(0, Math.floor((ev.clientY - rect.top) / (rect.height / view.rows))));
  S.ijk = planeToVoxel(S.meta.shape, axis, row, col, S.ijk, S.meta.radiological);
  scheduleRedraw(VIEWS.filter(v => v !== axis));
  if (tell) emit({ event: "voxel", voxel: S.ijk.slice() });
}

function setRange(which) {
  const range = S.meta && S.meta.range;
  if (!range) return;
  const a = AXES[range[0]], n = S.meta.shape[a], here = S.ijk[a];
  let start = range[1], stop = range[2];
  if (which === "start") { start = here; if (stop <= start) stop = Math.min(n, start + 1); }
  else { stop = here + 1; if (start >= stop) start = Math.max(0, stop - 1); }
  S.meta.range = [range[0], start, stop];
  S.rangeNote.textContent = `${range[0]} ${start}–${stop - 1} sent to the page…`;
  scheduleRedraw([]);
  emit({ event: "range", range: [start, stop] });
}

// ------------------------------------------------------------------ loading
function baseUrl() {
  // the iframe is served at <base>/component/<name>/index.html: /media lives under <base>
  const path = window.location.pathname, at = path.indexOf("/component/");
  return window.location.origin + (at >= 0 ? path.slice(0, at) : "");
}

async function inflate(bytes) {
  if (typeof DecompressionStream === "undefined") {
    throw new Error("this browser has no DecompressionStream (Chrome 80+, Firefox 113+, Safari 16.4+)");
  }
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function fetchVolume(url, expected) {
  const response = await fetch(baseUrl() + url);
  if (response.status === 404) {
    // The page moved on (another subject, another source) and Streamlit no longer serves the file:
    // not a fault of this browser, and the next render brings the URL that is served.
    const gone = new Error("the volume is no longer served (the page changed)");
    gone.gone = true;
    throw gone;
  }
  if (!response.ok) throw new Error(`the volume could not be fetched (HTTP ${response.status})`);
  const total = Number(response.headers.get("Content-Length")) || 0;
  const reader = response.body.getReader(), parts = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value); got += value.length;
    status(`Loading the volume… ${(got / 1e6).toFixed(1)}${total ? ` of ${(total / 1e6).toFixed(1)}` : ""} MB`);
  }
  const all = new Uint8Array(got);
  let o = 0;
  for (const p of parts) { all.set(p, o); o += p.length; }
  return all;
}

function status(text, error) {
  let el = document.querySelector(".status");
  if (!el) { el = document.createElement("p"); document.getElementById("root").prepend(el); }
  el.className = error ? "status error" : "status";
  el.textContent = text;
  if (!text) el.remove();
  fitHeight();
}

function sourceOf(args) { return args.url || `bytes:${args.token || ""}`; }
const inflight = new Map(); // source -> promise: a rerun while a volume loads waits for the same fetch
function load(args) {
  const source = sourceOf(args);
  if (cache.has(source)) return Promise.resolve([source, cache.get(source)]);
  if (!inflight.has(source)) {
    inflight.set(source, fetchAndUnpack(source, args).finally(() => inflight.delete(source)));
  }
  return inflight.get(source);
}

async function fetchAndUnpack(source, args) {
  const t0 = performance.now();
  const packed = args.url ? await fetchVolume(args.url) : new Uint8Array(args.data);
  const t1 = performance.now();
  const data = await inflate(packed);
  const expected = args.meta.shape[0] * args.meta.shape[1] * args.meta.shape[2];
  if (data.length !== expected) throw new Error(`the volume has ${data.length} voxels, expected ${expected}`);
  S.loadTimes = { fetch_ms: t1 - t0, inflate_ms: performance.now() - t1, bytes: packed.length };
  cache.set(source, data);
  while (cache.size > 2) cache.delete(cache.keys().next().value);
  return [source, data];
}

let generation = 0;
async function render(args) {
  const mine = ++generation;
  try {
    if (!S.views.axial) build();
    const wanted = sourceOf(args);
    if (wanted !== S.source) {
      if (!cache.has(wanted) && args.preview_axial) preview(args);
      status("Loading the volume… (slices move once it is here)");
    }
    if (!args.url && !args.data) {
      // a subject's first render: its planes came with the page; ask for the volume (once)
      if (S.asked !== args.token) { S.asked = args.token; emit({ event: "volume", token: args.token }); }
      return;
    }
    const [source, data] = await load(args);
    if (mine !== generation) return; // a newer render arrived while this one loaded
    const fresh = source !== S.source;
    S.source = source; S.data = data; S.meta = JSON.parse(JSON.stringify(args.meta));
    const crosshair = JSON.stringify(args.meta.crosshair);
    if (fresh || crosshair !== S.argsCrosshair) S.ijk = args.meta.crosshair.slice();
    S.argsCrosshair = crosshair;
    if (fresh) S.rangeNote.textContent = "";
    for (const axis of VIEWS) {
      S.views[axis].slider.max = String(S.meta.shape[AXES[axis]] - 1);
      S.views[axis].slider.disabled = false;
      layout(axis);
    }
    document.body.dataset.loaded = "1";
    status("");
    redraw();
    fitHeight();
  } catch (err) {
    if (mine !== generation) return; // a newer render took over: its own load decides
    if (err.gone) { status("Waiting for the page: the volume shown before is no longer served."); return; }
    status(`The browser could not draw this volume: ${err.message}.`, true);
    emit({ event: "unsupported", message: String(err.message || err) });
  }
}

function applyTheme(theme) {
  if (!theme) return;
  const root = document.documentElement.style;
  if (theme.textColor) root.setProperty("--text", theme.textColor);
  if (theme.backgroundColor) root.setProperty("--background", theme.backgroundColor);
  if (theme.secondaryBackgroundColor) root.setProperty("--secondary", theme.secondaryBackgroundColor);
  if (theme.primaryColor) root.setProperty("--primary", theme.primaryColor);
  if (theme.font) root.setProperty("--font", theme.font);
}

window.addEventListener("message", ev => {
  if (ev.data && ev.data.type === "streamlit:render") { applyTheme(ev.data.theme); render(ev.data.args || {}); }
});
let lastWidth = window.innerWidth;
window.addEventListener("resize", () => {
  // the frame's height follows the content (fitHeight): only a new width needs a new layout
  if (!S.data || window.innerWidth === lastWidth) return;
  lastWidth = window.innerWidth;
  for (const axis of VIEWS) layout(axis);
  redraw();
  fitHeight();
});
send("streamlit:componentReady", { apiVersion: 1 });
