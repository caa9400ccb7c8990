#!/usr/bin/env bash
# The benchmark suite and the GPU checks on a CUDA GPU machine, in one call:
#   bash benchmarks/gpu.sh [python -m benchmarks.run options]
#
# Python: $PYTHON (default python3) as it is when it already has JAX on the GPU, torch with CUDA,
# flax, optax, chex, pytest, hypothesis, matplotlib and safetensors (a machine image with them, no
# network needed: the repository goes on PYTHONPATH); otherwise a virtualenv ($VENV) made from PyPI
# with torch's default CUDA build, the jax[cuda12|cuda13] matching it, and this library with its
# dev and bench extras.
#
# Runs, each under its own time limit so that one stuck part leaves the others' results:
#   1. python -m benchmarks.run --workload all --repeats 10 [options]   (limit $BENCH_LIMIT s)
#      -> <backend>.json, <backend>.png
#   2. the float64 gradient tests on the GPU   -> float64.log
#   3. convlstm-parity for the JAX port on the GPU: every shared vector in float32 (at "highest"
#      precision) and float64, then every gradient strategy, remat, unroll and bf16 compute on three
#      of them (limit $PARITY_LIMIT s each)   -> parity.log
# into $OUT if set, else benchmarks/results/. Timed calls run at JAX's default float32 precision
# (TF32 allowed on the GPU) and torch's defaults; parity runs JAX at "highest" and torch without
# TF32. Every timed call is synchronised (jax.block_until_ready, torch.cuda.synchronize).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and torch share the GPU in one process
export PYTHONUNBUFFERED=1

has_everything='
import importlib.util, jax, torch
missing = [m for m in ("flax", "optax", "chex", "pytest", "hypothesis", "matplotlib", "safetensors")
           if importlib.util.find_spec(m) is None]
ok = jax.default_backend() == "gpu" and torch.cuda.is_available() and not missing
raise SystemExit(0 if ok else 1)'
py="${PYTHON:-python3}"
if "$py" -c "$has_everything" 2>/dev/null; then
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  venv="${VENV:-${TMPDIR:-/tmp}/convlstm-bench-gpu}"
  python3 -m venv "$venv" && py="$venv/bin/python" || exit 1
  "$py" -m pip install --quiet --upgrade pip && "$py" -m pip install --quiet torch || exit 1
  cuda_major="$("$py" -c 'import torch; print((torch.version.cuda or "12").split(".")[0])')"
  jax_cuda="cuda12"; [ "$cuda_major" = "13" ] && jax_cuda="cuda13"
  "$py" -m pip install --quiet "jax[$jax_cuda]" keras -e ".[dev,bench]" || exit 1
  "$py" -c "$has_everything" || { echo "benchmarks/gpu.sh needs a GPU visible to both JAX and torch"; exit 1; }
fi
"$py" - <<'PY'
import flax, jax, torch
print("jax", jax.__version__, jax.devices(), "| flax", flax.__version__, "| torch", torch.__version__,
      "CUDA", torch.version.cuda, torch.cuda.get_device_name())
PY

status=0
timeout "${BENCH_LIMIT:-420}" "$py" -m benchmarks.run --workload all --repeats 10 --out "$out" "$@" || status=1
timeout 60 "$py" -m pytest -q -p no:cacheprovider convlstm_jax/tests/test_float64.py 2>&1 \
  | tee "$out/float64.log" || status=1
parity=(timeout "${PARITY_LIMIT:-150}" "$py" -m parity_tests.cli --framework jax)
"${parity[@]}" >"$out/parity.log" 2>&1 || status=1
"${parity[@]}" --strategies --case two_layers_all --case signals_options --case volumes_options \
  >>"$out/parity.log" 2>&1 || status=1
grep -iE " fail$| passed, |Traceback|Error" "$out/parity.log" | tail -20
exit "$status"
