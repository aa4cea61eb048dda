// Builds ../build from src/: viewer.js minified by esbuild (no runtime dependencies), the page and its CSS copied.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";

const out = new URL("../build/", import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({ entryPoints: ["src/viewer.js"], outfile: out + "viewer.js", bundle: true, minify: true,
              target: ["chrome100", "firefox113", "safari16.4"], legalComments: "none" });
for (const name of ["index.html", "viewer.css"]) copyFileSync("src/" + name, out + name);
const pkg = JSON.parse(readFileSync("package.json", "utf8"));
writeFileSync(out + "VERSION", `${pkg.name} ${pkg.version}\n`);
