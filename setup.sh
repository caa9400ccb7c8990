#!/usr/bin/env bash
# Creates .venv with both frameworks and the development tools: `bash setup.sh`.
# torch is pinned to 2.13.0 here (the package itself accepts a range); set TORCH= to skip it.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "${TORCH-torch==2.13.0}" ]; then
  .venv/bin/python -m pip install --quiet "${TORCH-torch==2.13.0}"
  extras="torch,dev"
else
  extras="dev"
fi
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
echo "Ready: .venv/bin/convlstm-parity runs the parity check, .venv/bin/pytest the tests."
