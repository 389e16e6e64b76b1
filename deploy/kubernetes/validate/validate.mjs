// Validates every KEDA ScaledObject of the given manifests (default: ../*.yaml) against
// KEDA's CRD schema, as packaged by kubernetes-models (offline); the core kinds are checked
// by the Python test with kubernetes-validate. Exit 1 naming what is wrong.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const files = process.argv.length > 2
  ? process.argv.slice(2)
  : readdirSync(join(here, "..")).filter((f) => f.endsWith(".yaml")).map((f) => join(here, "..", f));

let checked = 0;
let failed = 0;
for (const file of files) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const object = doc.toJS();
    if (object?.kind !== "ScaledObject") continue;
    checked++;
    try {
      new ScaledObject(object).validate();
    } catch (error) {
      failed++;
      console.error(`${file}: ScaledObject ${object.metadata?.name}: ${error.message}`);
    }
  }
}
console.log(`${checked} ScaledObject(s) checked against KEDA's schema, ${failed} invalid`);
process.exit(failed || !checked ? 1 : 0);
