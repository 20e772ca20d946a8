#!/usr/bin/env bash
# Validates the deployment files offline: renders every kustomization under deploy/kubernetes
# (the base and each overlay) with kustomize, validates every rendered resource and the Secret
# template against the Kubernetes API schemas with kubernetes-validate (strict), checks the
# references between them, and checks deploy/compose.yaml. Talks to no Kubernetes API server and
# to no Docker daemon. tests/deploy_manifests.rs runs it in `cargo nextest run --workspace`.
#
#   deploy/validate.sh --generated FILE...
# validates instead the objects in FILE... (YAML or JSON documents, e.g. what the Kubernetes
# deployer applies; tests/kubernetes_manifests.rs writes them) against the same schemas, strictly.
#
# Needs: kubectl (its built-in kustomize) or kustomize, and python3 with venv and pip.
# kubernetes-validate is installed on first use into a virtualenv under
# ${XDG_CACHE_HOME:-$HOME/.cache}/connectors-gateway/ (override: CONNECTORS_DEPLOY_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
venv="${CONNECTORS_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/connectors-gateway/deploy-venv-$KUBERNETES_VALIDATE_VERSION}"

fail() {
  echo "deploy/validate.sh: $*" >&2
  exit 1
}

# ---- kubernetes-validate, in a virtualenv of its own --------------------------------------------
ensure_venv() {
  command -v python3 >/dev/null 2>&1 || fail "python3 is not installed: it runs kubernetes-validate"
  if ! "$venv/bin/python" -c "import kubernetes_validate" >/dev/null 2>&1; then
    echo "deploy/validate.sh: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv (once)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" || fail "python3 cannot create a virtualenv (install python3-venv)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
      || fail "pip cannot install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
}

if [[ "${1:-}" == "--generated" ]]; then
  shift
  [[ $# -gt 0 ]] || fail "--generated needs at least one file"
  ensure_venv
  exec "$venv/bin/python" deploy/validate_manifests.py --generated "$@"
fi

# ---- kustomize ----------------------------------------------------------------------------------
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  render() { kubectl kustomize "$1"; }
elif command -v kustomize >/dev/null 2>&1; then
  render() { kustomize build "$1"; }
else
  fail "neither kubectl nor kustomize is installed: one is needed to render deploy/kubernetes (install kubectl, whose 'kubectl kustomize' is enough)"
fi

ensure_venv

# ---- render ---------------------------------------------------------------------------------------
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
rendered=()
for dir in deploy/kubernetes/base deploy/kubernetes/overlays/*/; do
  dir="${dir%/}"
  file="$out/$(echo "$dir" | tr '/' '_').yaml"
  render "$dir" >"$file" 2>"$out/render.err" || fail "kustomize cannot render $dir: $(cat "$out/render.err")"
  echo "deploy/validate.sh: rendered $dir ($(grep -c '^kind:' "$file") resources)"
  rendered+=("$dir=$file")
done

# ---- validate -------------------------------------------------------------------------------------
"$venv/bin/python" deploy/validate_manifests.py \
  --secrets deploy/kubernetes/secrets.example.yaml \
  --compose deploy/compose.yaml \
  --config deploy/kubernetes/base/gateway.yaml \
  "${rendered[@]}"

# compose.yaml as Docker Compose reads it, where the compose plugin is installed (it needs no
# daemon for this).
if docker compose version >/dev/null 2>&1; then
  ADMIN_API_KEY=x CONNECTORS_CLUSTER_COOKIE=x CONNECTORS_MASTER_KEY=x REDIS_PASSWORD=x \
    docker compose -f deploy/compose.yaml config --quiet || fail "docker compose rejects deploy/compose.yaml"
  echo "deploy/validate.sh: docker compose accepts deploy/compose.yaml"
else
  echo "deploy/validate.sh: docker compose is not installed: compose.yaml checked as YAML and by structure only"
fi
