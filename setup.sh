#!/usr/bin/env bash
# Sets up the virtualenv that `./train` and `./test` use; they run this script themselves, so a
# fresh clone needs no step of its own.
#
#   bash setup.sh           .venv with torch 2.13.0 (CPU), JAX, Flax, the training and dev tools
#   bash setup.sh --check   the same, but only if .venv is missing or pyproject.toml, this script,
#                           TORCH or CONSTRAINTS changed since it was set up (silent otherwise)
#
# Settings (environment variables):
#   TORCH=torch==2.13.0     the torch wheel installed first, explicitly (the package accepts a range);
#                           TORCH= (empty) sets up without torch: the JAX package never needs it and
#                           the tests of the reference skip. The choice sticks to the folder: later
#                           runs without TORCH keep what it was set up with.
#   VENV=.venv              the folder (e.g. VENV=.venv-jax for a JAX-only one beside the full one)
#   CONSTRAINTS=FILE        a pip constraints file applied to every install (CI's lowest versions)
set -euo pipefail
cd "$(dirname "$0")"
venv="${VENV:-.venv}"
stamp="$venv/.setup-stamp"

recorded_torch() { sed -n 's/^TORCH=//p' "$stamp" 2>/dev/null; }

# TORCH unset: keep the folder's own choice (the pinned torch for a new folder).
if [ -z "${TORCH+set}" ]; then
  if [ -f "$stamp" ]; then TORCH="$(recorded_torch)"; else TORCH="torch==2.13.0"; fi
fi
constraints="${CONSTRAINTS:-}"
state="$(cat pyproject.toml setup.sh ${constraints:+"$constraints"} | sha256sum | cut -d' ' -f1)"
wanted="$(printf 'inputs=%s\nTORCH=%s\nCONSTRAINTS=%s\n' "$state" "$TORCH" "$constraints")"

if [ "${1:-}" = "--check" ]; then
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    exit 0
  fi
  echo "Setting up $venv (first run, or pyproject.toml, setup.sh or TORCH changed): a few minutes." >&2
elif [ -n "${1:-}" ]; then
  echo "usage: [TORCH=...] [VENV=...] [CONSTRAINTS=...] bash setup.sh [--check]" >&2
  exit 2
fi

rm -f "$stamp"
if [ -z "$TORCH" ] && [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip show -q torch 2>/dev/null; then
  python3 -m venv --clear "$venv"  # was set up with torch: start again without it
else
  python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet ${constraints:+--constraint "$constraints"})
"${pip[@]}" --upgrade pip
if [ -n "$TORCH" ]; then
  "${pip[@]}" "$TORCH"
  extras="torch,dev"
else
  extras="dev"
fi
"${pip[@]}" -e ".[${extras}]"
printf '%s\n' "$wanted" >"$stamp"
if [ "${1:-}" != "--check" ]; then
  echo "Ready: $venv (${TORCH:-without torch}); ./train runs convlstm-train, ./test the tests."
fi
