#!/usr/bin/env bash
# Installs the helm CLI (for `helm lint` / `helm template` and tests/unit/test_helm_chart.py)
# from its Go module, into ~/.cache/helm/bin unless HELM_BIN_DIR says otherwise. Needs Go.
# Idempotent: does nothing when that helm is already there.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
BIN_DIR="${HELM_BIN_DIR:-$HOME/.cache/helm/bin}"
if [[ -x "$BIN_DIR/helm" ]]; then
  echo "helm already at $BIN_DIR/helm"
  exit 0
fi
if ! command -v go > /dev/null; then
  echo "install-helm.sh: Go is needed to build helm ($HELM_VERSION); install Go first" >&2
  exit 1
fi
mkdir -p "$BIN_DIR"
GOBIN="$BIN_DIR" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
echo "helm $HELM_VERSION installed at $BIN_DIR/helm"
