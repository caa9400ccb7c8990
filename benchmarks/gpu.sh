#!/usr/bin/env bash
# The whole benchmark suite on a CUDA GPU machine, in one call: `bash benchmarks/gpu.sh [extra options]`.
#
# Makes a virtualenv ($VENV, default $TMPDIR/convlstm-bench-gpu) from PyPI: torch as `pip install torch` gives
# it (its default CUDA build), the jax[cuda12] or jax[cuda13] that matches torch's CUDA, flax, keras,
# matplotlib and this library; then runs
#   python -m benchmarks.run --workload all --skip-slow-baselines
# writing <backend>.json and <backend>.png to $OUT if set, else to benchmarks/results/.
# Timed calls run at JAX's default float32 precision (TF32 allowed on the GPU) and torch's defaults;
# the parity check runs JAX at "highest" and torch without TF32. The JSON records both.
# Every call is synchronised (jax.block_until_ready, torch.cuda.synchronize).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${VENV:-${TMPDIR:-/tmp}/convlstm-bench-gpu}"
python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet torch
cuda_major="$("$py" -c 'import torch; print((torch.version.cuda or "12").split(".")[0])')"
if [ "$cuda_major" = "13" ]; then jax_cuda="cuda13"; else jax_cuda="cuda12"; fi
"$py" -m pip install --quiet "jax[$jax_cuda]" flax keras matplotlib
"$py" -m pip install --quiet -e ".[bench]"

"$py" - <<'PY'
import jax, torch
print("jax", jax.__version__, jax.devices(), "| torch", torch.__version__, "CUDA", torch.version.cuda)
if jax.default_backend() != "gpu" or not torch.cuda.is_available():
    raise SystemExit("benchmarks/gpu.sh needs a GPU visible to both JAX and torch")
PY

export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and torch share the GPU in one process
"$py" -m benchmarks.run --workload all --skip-slow-baselines --out "${OUT:-benchmarks/results}" "$@"
