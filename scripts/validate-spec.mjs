// Validates AsyncAPI documents with the official parser (@asyncapi/parser).
//
// Run: node scripts/validate-spec.mjs asyncapi.yaml [more.yaml ...]
// Exits non-zero when any document has a diagnostic of severity "error"; warnings are printed.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const text = await readFile(file, "utf8");
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning);
  for (const d of diagnostics) {
    const level = d.severity === DiagnosticSeverity.Error ? "error" : d.severity === DiagnosticSeverity.Warning ? "warning" : "info";
    if (level === "info") continue;
    console.log(`${file}: ${level}: ${d.code}: ${d.message} at /${d.path.join("/")}`);
  }
  if (!document || errors.length > 0) failed = true;
  console.log(`${file}: ${errors.length} errors, ${warnings.length} warnings`);
}
process.exit(failed ? 1 : 0);
