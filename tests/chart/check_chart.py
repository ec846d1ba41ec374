"""The Helm chart, checked offline: `helm lint --strict` (values.schema.json included), then
each case of values rendered (Helm v4's SDK, helm-python-sdk) and every manifest validated
against the Kubernetes schemas of the oldest and newest Kubernetes the chart supports
(kubernetes-validate, strict), the KEDA and Prometheus Operator resources against their
CRDs' schemas (validate_crds.mjs), the service's configuration file against the service
itself (`gateway --print-config` reads it, refusing unknown keys), and what each case
changes asserted.

Usage: check_chart.py GATEWAY_BINARY NODE_DIR (scripts/check-chart provides both).
"""

import copy
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "thumbnailify"
GATEWAY, NODE_DIR = sys.argv[1], sys.argv[2]
# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the newest whose
# schemas kubernetes-validate bundles.
KUBERNETES = ["1.29.0", "1.37.0"]
CUSTOM = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}

SECRETS = {
    "queueUrl": "amqp://thumbs:pw@rabbitmq:5672/%2f",
    "storeUrl": "postgres://thumbs:pw@postgresql:5432/thumbs",
    "s3AccessKeyId": "AKIAEXAMPLE",
    "s3SecretAccessKey": "example-secret",
    "rabbitmqManagementUrl": "http://thumbs:pw@rabbitmq:15672/%2f",
}


def merged(*layers):
    out = {}
    for layer in layers:
        out = merge(out, layer)
    return out


def merge(base, over):
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


CASES = {
    "defaults (RabbitMQ, chart-made Secret)": {"secrets": SECRETS},
    "external secrets": {
        "secrets": {
            "create": False,
            "existingSecret": "thumbs-from-vault",
            "existingSecretHas": {"apiKeys": True, "callbackSecret": True, "smtpUrl": True},
        }
    },
    "scale to zero": {"secrets": SECRETS, "worker": {"autoscaling": {"scaleToZero": True}}},
    "Redis queue": {
        "secrets": merged(SECRETS, {"queueUrl": "redis://:pw@redis-master:6379/0",
                                     "rabbitmqManagementUrl": "", "redisPassword": "pw"}),
        "queue": {"kind": "redis"},
    },
    "ingress, ServiceMonitor and dashboard on": {
        "secrets": merged(SECRETS, {"apiKeys": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 acme\n",
                                     "callbackSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                     "smtpUrl": "smtps://thumbs:pw@smtp.example.org"}),
        "gateway": {"ingress": {"enabled": True, "className": "nginx",
                                "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "80m"},
                                "tls": [{"hosts": ["thumbnails.example.com"], "secretName": "tls"}]}},
        "serviceMonitor": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    },
    "fixed replicas, no autoscaling": {
        "secrets": SECRETS,
        "gateway": {"autoscaling": {"enabled": False}, "replicas": 3},
        "worker": {"autoscaling": {"enabled": False}, "replicas": 4},
    },
}

failures = []


def check(condition, case, what):
    if not condition:
        failures.append(f"{case}: {what}")


def render(values):
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values, name="thumbs", namespace="media")
    manifests = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests


def by_kind(manifests, kind):
    return [m for m in manifests if m["kind"] == kind]


def one(manifests, kind, name_suffix=""):
    found = [m for m in by_kind(manifests, kind) if m["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{len(found)} {kind} named *{name_suffix}"
    return found[0]


def validate_kubernetes(case, manifests):
    for manifest in manifests:
        if manifest["kind"] in CUSTOM:
            continue
        for version in KUBERNETES:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                failures.append(f"{case}: {manifest['kind']} {manifest['metadata']['name']} "
                                f"on Kubernetes {version}: {error.message} at {list(error.path)}")


def validate_custom(case, manifests):
    custom = [m for m in manifests if m["kind"] in CUSTOM]
    if not custom:
        return
    # Node resolves the packages from the script's own directory: it runs from NODE_DIR.
    script = pathlib.Path(NODE_DIR, "validate_crds.mjs")
    shutil.copyfile(pathlib.Path(__file__).with_name("validate_crds.mjs"), script)
    result = subprocess.run(
        ["node", str(script)], input=json.dumps(custom), capture_output=True, text=True,
    )
    if result.returncode != 0:
        failures.append(f"{case}: custom resources refused:\n{result.stdout}{result.stderr}")


def validate_config(case, manifests):
    """The ConfigMap's config.yaml, with the Secret's files where it names them, as the
    service reads it."""
    config = one(manifests, "ConfigMap", "thumbnailify")["data"]["config.yaml"]
    secrets = by_kind(manifests, "Secret")
    with tempfile.TemporaryDirectory() as directory:
        secret_dir = pathlib.Path(directory, "secrets")
        secret_dir.mkdir()
        data = secrets[0]["stringData"] if secrets else {
            "queue-url": SECRETS["queueUrl"], "store-url": SECRETS["storeUrl"],
            "s3-access-key-id": "a", "s3-secret-access-key": "b",
            "api-keys": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
            "callback-secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "smtp-url": "smtp://127.0.0.1:2525",
        }
        for key, value in data.items():
            (secret_dir / key).write_text(value)
        path = pathlib.Path(directory, "config.yaml")
        path.write_text(config.replace("/etc/thumbnailify/secrets", str(secret_dir)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBNAILIFY_")}
        result = subprocess.run([GATEWAY, "--config", str(path), "--print-config"],
                                capture_output=True, text=True, env=env)
        check(result.returncode == 0, case,
              f"the service refuses the chart's configuration: {result.stderr.strip()}")
        if result.returncode == 0:
            printed = yaml.safe_load(result.stdout)
            check(printed["queue"]["url"] is not None, case, "the queue URL was not read from its file")
            check(printed["store"]["url"] is not None, case, "the store URL was not read from its file")
            check((printed["email"]["smtp_url"] is not None) == ("smtp-url" in data), case,
                  "the SMTP URL was not read from its file, or read from none")
    for secret in SECRETS.values():
        if secret:
            check(secret not in config, case, "a secret is in the ConfigMap")


def assert_case(case, values, manifests):
    kinds = sorted({m["kind"] for m in manifests})
    gateway = one(manifests, "Deployment", "-gateway")
    worker = one(manifests, "Deployment", "-worker")
    for deployment in (gateway, worker):
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        context = container["securityContext"]
        check(pod["securityContext"]["runAsNonRoot"], case, "pods may run as root")
        check(context["readOnlyRootFilesystem"], case, "the root filesystem is writable")
        check(context["capabilities"]["drop"] == ["ALL"], case, "capabilities kept")
        check(not context["allowPrivilegeEscalation"], case, "privilege escalation allowed")
        check("memory" in container["resources"]["limits"], case, "no memory limit")
        secret_volume = next(v for v in pod["volumes"] if v["name"] == "secrets")
        expected = values["secrets"].get("existingSecret") or "thumbs-thumbnailify"
        check(secret_volume["secret"]["secretName"] == expected, case,
              f"secrets come from {secret_volume['secret']['secretName']}, not {expected}")
    probes = gateway["spec"]["template"]["spec"]["containers"][0]
    check(probes["readinessProbe"]["httpGet"]["path"] == "/readyz", case, "readiness is not /readyz")
    check(probes["livenessProbe"]["httpGet"]["path"] == "/healthz", case, "liveness is not /healthz")

    external = not values["secrets"].get("create", True)
    check(("Secret" in kinds) != external, case, "a Secret made with external secrets, or none without")

    ingress = values.get("gateway", {}).get("ingress", {}).get("enabled", False)
    check(("Ingress" in kinds) == ingress, case, f"Ingress present: {'Ingress' in kinds}")
    monitor = values.get("serviceMonitor", {}).get("enabled", False)
    check(("ServiceMonitor" in kinds) == monitor, case, "ServiceMonitor presence")
    if values.get("grafanaDashboard", {}).get("enabled"):
        dashboard = one(manifests, "ConfigMap", "-dashboard")
        check(json.loads(dashboard["data"]["thumbnailify.json"])["uid"] == "thumbnailify", case,
              "the dashboard is not the repository's")
        check(dashboard["metadata"]["labels"].get("grafana_dashboard") == "1", case,
              "the dashboard lacks the sidecar's label")

    worker_scaling = values.get("worker", {}).get("autoscaling", {}).get("enabled", True)
    gateway_scaling = values.get("gateway", {}).get("autoscaling", {}).get("enabled", True)
    check(("ScaledObject" in kinds) == worker_scaling, case, "ScaledObject presence")
    check(("HorizontalPodAutoscaler" in kinds) == gateway_scaling, case, "HPA presence")
    check(("replicas" in worker["spec"]) != worker_scaling, case,
          "worker replicas fixed while KEDA scales them, or unset without it")
    check(("PodDisruptionBudget" in kinds), case, "no PodDisruptionBudget")
    if gateway_scaling:
        hpa = one(manifests, "HorizontalPodAutoscaler")
        metric = hpa["spec"]["metrics"][0]["resource"]
        check(metric["name"] == "cpu", case, "the gateways' HPA is not on CPU")
    if worker_scaling:
        scaled = one(manifests, "ScaledObject")
        trigger = scaled["spec"]["triggers"][0]
        zero = values.get("worker", {}).get("autoscaling", {}).get("scaleToZero", False)
        check((scaled["spec"]["minReplicaCount"] == 0) == zero, case,
              f"minReplicaCount {scaled['spec']['minReplicaCount']} with scaleToZero {zero}")
        check(scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"], case,
              "the ScaledObject scales something else")
        if values.get("queue", {}).get("kind", "rabbitmq") == "redis":
            check(trigger["type"] == "redis-streams", case, f"trigger {trigger['type']}")
            meta = trigger["metadata"]
            check(meta["stream"] == "thumbnailify.jobs" and meta["consumerGroup"] == "workers",
                  case, "the trigger watches another stream or group")
            check("lagCount" in meta, case, "Redis scaling is not on the group's lag")
            auth = one(manifests, "TriggerAuthentication")
            check(auth["spec"]["secretTargetRef"][0]["key"] == "redis-password", case,
                  "Redis's password is not from the Secret")
        else:
            meta = trigger["metadata"]
            check(trigger["type"] == "rabbitmq", case, f"trigger {trigger['type']}")
            check(meta["mode"] == "QueueLength" and meta["protocol"] == "http", case,
                  "RabbitMQ is not counted in QueueLength mode over the management API")
            check(meta["queueName"] == "thumbnailify.jobs", case, "another queue is counted")
            auth = one(manifests, "TriggerAuthentication")
            check(auth["spec"]["secretTargetRef"][0]["parameter"] == "host", case,
                  "the management URL is not from the Secret")


def main():
    for case, values in CASES.items():
        report = helm.lint(str(CHART), values, strict=True)
        errors = report["errors"] + [m["error"] for m in report["messages"] if m["severity"] >= 2]
        check(not errors, case, f"helm lint --strict: {errors}")
        manifests = render(values)
        validate_kubernetes(case, manifests)
        validate_custom(case, manifests)
        validate_config(case, manifests)
        assert_case(case, values, manifests)
        print(f"{case}: {len(manifests)} manifests")
    # Values that must be refused.
    for case, values in {
        "no queue URL": {"secrets": merged(SECRETS, {"queueUrl": ""})},
        "a queue of no known kind": {"secrets": SECRETS, "queue": {"kind": "kafka"}},
        "external secrets without a name": {"secrets": {"create": False}},
        "a misspelt key (values.schema.json)": {"secrets": SECRETS, "gateway": {"replicaz": 2}},
    }.items():
        try:
            render(values)
            failures.append(f"{case}: rendered")
        except helm.HelmError:
            print(f"{case}: refused")
    if failures:
        print("\n".join(["FAILED:", *failures]))
        sys.exit(1)
    print(f"the chart holds: {len(CASES)} cases on Kubernetes {' and '.join(KUBERNETES)}")


main()
