#!/usr/bin/env bash
# Create .venv with rsir installed. `--test` adds what the tests need (test extras, Debian chromium, PostgreSQL).
# torch is installed first, pinned to a release available as a local CPU wheel, so no dependency pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/pip install -q --disable-pip-version-check"
.venv/bin/python -c "import torch" 2>/dev/null || $PIP "torch==2.13.0" || $PIP "torch>=2.2,<2.15"
if [ "${1:-}" = "--test" ]; then
  $PIP -e ".[text,app,postgres,test]"
  ./scripts/system-deps.sh || echo "warning: system packages (chromium, postgresql) not installed; those tests will skip" >&2
else
  $PIP -e ".[text,app]"
fi
