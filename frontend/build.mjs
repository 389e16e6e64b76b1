// Bundles one script per page (src/pages/*.ts) and the boards' style sheet into
// ../src/kibitz/api/static/app/, which the Python package ships: a pip install needs no Node.
import { build } from "esbuild";
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";

const out = "../src/kibitz/api/static/app";
mkdirSync(out, { recursive: true });
const pages = readdirSync("src/pages").filter((f) => f.endsWith(".ts"));
await build({
  entryPoints: pages.map((f) => `src/pages/${f}`),
  outdir: out,
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
});
// chessground's own sheets (pieces and board as data: URIs, nothing fetched from elsewhere).
const assets = "node_modules/@lichess-org/chessground/assets";
const css = ["chessground.base.css", "chessground.brown.css", "chessground.cburnett.css"]
  .map((f) => `/* @lichess-org/chessground ${f} (GPL-3.0-or-later) */\n${readFileSync(`${assets}/${f}`, "utf8")}`)
  .join("\n");
writeFileSync(`${out}/chessground.css`, css);
console.log(`built ${pages.length} page script(s) and chessground.css into ${out}`);
