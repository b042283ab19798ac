#!/usr/bin/env bash
# Creates LiteLLM Proxy's throwaway virtualenv OUTSIDE the project (never a tokenforge dependency).
# Usage: bash bench/litellm_setup.sh [VENV_DIR]   (default /tmp/tf-bench-litellm/venv; LITELLM_VERSION pins it)
set -euo pipefail
VENV_DIR="${1:-${LITELLM_VENV:-/tmp/tf-bench-litellm/venv}}"
SPEC="litellm[proxy]${LITELLM_VERSION:+==$LITELLM_VERSION}"
if [ -x "$VENV_DIR/bin/litellm" ]; then
  echo "litellm already installed in $VENV_DIR"; exit 0
fi
mkdir -p "$(dirname "$VENV_DIR")"
python3 -m venv "$VENV_DIR"
"$VENV_DIR/bin/pip" install -q --upgrade pip
"$VENV_DIR/bin/pip" install -q "$SPEC"
"$VENV_DIR/bin/litellm" --version || true
echo "litellm installed in $VENV_DIR"
