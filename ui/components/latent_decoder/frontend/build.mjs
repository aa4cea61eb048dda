// Copies the component's sources and onnxruntime-web's browser files into ../build (no bundler:
// the page loads ort.wasm.min.js as a classic script, which fetches its .mjs/.wasm from the same folder).
import { cpSync, mkdirSync, rmSync, readFileSync, writeFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "build");
const ort = join(here, "node_modules", "onnxruntime-web");
const version = JSON.parse(readFileSync(join(ort, "package.json"), "utf8")).version;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const f of ["index.html", "main.js", "style.css"]) cpSync(join(here, "src", f), join(out, f));
for (const f of ["ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]) {
  cpSync(join(ort, "dist", f), join(out, f));
}
writeFileSync(join(out, "VERSION"), `onnxruntime-web ${version}\n`);
for (const f of ["index.html", "main.js", "ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]) {
  console.log(`${f}\t${(statSync(join(out, f)).size / 1e6).toFixed(2)} MB`);
}
