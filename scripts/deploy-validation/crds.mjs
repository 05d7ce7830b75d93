// Validates Prometheus Operator objects (PodMonitor, PrometheusRule, ...) two ways, both
// from the npm package @kubernetes-models/prometheus-operator (generated from the
// operator's Go API types):
//   1. its JSON-schema validators (types, enums, patterns, required fields), and
//   2. the TypeScript compiler's excess-property check against its type definitions,
//      which rejects unknown fields (a misspelt `honorLabel` would otherwise pass 1.).
//
//   node crds.mjs OBJECTS.json     (a JSON array of {source, object}); exit 1 if any fails
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const here = dirname(fileURLToPath(import.meta.url));
const GROUP = "monitoring.coreos.com/v1";

const [input] = process.argv.slice(2);
if (!input) {
  console.error("usage: node crds.mjs OBJECTS.json");
  process.exit(2);
}
const items = JSON.parse(readFileSync(input, "utf8"));
let failed = 0;
const fail = (msg) => {
  console.error(`ERROR ${msg}`);
  failed++;
};

const typed = [];
for (const { source, object } of items) {
  const what = `${source}: ${object.kind}/${object.metadata?.name}`;
  const Model = v1[object.kind];
  if (object.apiVersion !== GROUP || typeof Model !== "function" || Model.kind !== object.kind) {
    fail(`${what}: no ${GROUP} schema for apiVersion ${object.apiVersion}, kind ${object.kind}`);
    continue;
  }
  try {
    new Model(object).validate();
  } catch (err) {
    fail(`${what}: ${err.message}`);
    continue;
  }
  typed.push({ what, object });
}

// One .ts file with every object as a typed literal; tsc reports unknown properties.
if (typed.length > 0) {
  const dir = join(here, "node_modules", ".cache", "socketio-exporter-crds");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `check-${process.pid}.ts`);
  const kinds = [...new Set(typed.map((t) => t.object.kind))];
  const lines = kinds.map(
    (k) => `import type { I${k} } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${k}";`,
  );
  const where = [];
  let lineCount = lines.length;
  typed.forEach((t, i) => {
    const text = `// ${t.what}\nexport const object${i}: I${t.object.kind} = ${JSON.stringify(t.object, null, 2)};`;
    where.push({ from: lineCount + 1, what: t.what });
    lines.push(text);
    lineCount += text.split("\n").length;
  });
  writeFileSync(file, lines.join("\n") + "\n");
  const tsc = spawnSync(
    process.execPath,
    [
      join(here, "node_modules", "typescript", "bin", "tsc"),
      "--noEmit", "--strict", "--skipLibCheck", "--pretty", "false",
      "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022",
      file,
    ],
    { encoding: "utf8" },
  );
  rmSync(file, { force: true });
  if (tsc.status !== 0) {
    // "check-123.ts(40,7): error TS2353: ..." -> name the object the line belongs to.
    for (const line of (tsc.stdout + tsc.stderr).split("\n").filter(Boolean)) {
      const m = /\.ts\((\d+),\d+\): (.*)$/.exec(line);
      if (m) {
        const at = Number(m[1]);
        const owner = where.filter((w) => w.from <= at).pop();
        fail(`${owner ? owner.what : "?"}: ${m[2]}`);
      } else {
        fail(line);
      }
    }
    if (failed === 0) fail(`tsc exited with ${tsc.status}`);
  }
}

for (const t of typed) {
  if (failed === 0) console.log(`INFO ${t.what}: valid (${GROUP} schema and types)`);
}
process.exit(failed === 0 ? 0 : 1);
