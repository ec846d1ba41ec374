// Validates custom resources against their CRDs' OpenAPI schemas, as the API server would:
// reads a JSON array of manifests on stdin, prints one line per manifest and exits 1 if any
// is refused. Run from the directory where `npm ci` installed ./package.json (node resolves
// the packages from the script's own directory).
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const models = { ScaledObject, TriggerAuthentication, ServiceMonitor };
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
let failed = false;
for (const manifest of JSON.parse(Buffer.concat(chunks).toString())) {
  const Model = models[manifest.kind];
  if (!Model) {
    console.log(`no schema for ${manifest.kind}`);
    failed = true;
    continue;
  }
  try {
    new Model(manifest).validate();
    console.log(`ok ${manifest.kind} ${manifest.metadata.name}`);
  } catch (error) {
    console.log(`REFUSED ${manifest.kind} ${manifest.metadata.name}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
