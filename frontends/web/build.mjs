// Builds the workflow editor's browser bundle: one self-contained ESM file (React 19,
// react-dom, @xyflow/react with its CSS as text, d3-force) that ReactPy loads with
// reactpy.web.module_from_file. Run `npm ci && npm run build` here; the output is git-ignored
// and shipped in the wheel as package data.
import { build } from "esbuild";
import { statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = join(here, "static", "bundle", "editor.js");
const started = performance.now();
await build({
  entryPoints: [join(here, "js", "index.jsx")],
  outfile,
  bundle: true,
  format: "esm",
  minify: true,
  target: ["es2020"],
  jsx: "automatic",
  loader: { ".css": "text" },
  define: { "process.env.NODE_ENV": '"production"' },
  legalComments: "eof",
  logLevel: "warning",
});
const kb = (statSync(outfile).size / 1024).toFixed(0);
console.log(`built ${outfile} (${kb} KB) in ${(performance.now() - started).toFixed(0)} ms`);
