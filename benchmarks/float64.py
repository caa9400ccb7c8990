"""What the float64 gradient workaround costs: `python -m benchmarks.float64 [--quick]`.

In float64 each layer's step is rematerialised keeping the convolutions' outputs
(`convlstm_jax._conv.step_remat`), because XLA:CPU otherwise computes wrong float64 gradients of
conv-peephole layers for some frame sizes (`tools/xla_cpu_float64_repro.py`). This measures, in one
process and round after round, the jitted float64 gradient of a conv-peephole `ConvLSTM`:

- `float64`: the library's default (the workaround);
- `float64, no remat`: the step as it is in float32, which is what XLA can get wrong;
- `float64, remat=True`: everything recomputed (the other right path);

and prints each one's best time, its ratio to `float64, no remat`, and the largest error of its
gradients against the fully unrolled loop's (`unroll=T`, which XLA gets right), relative to each
gradient's largest magnitude. With `XLA_FLAGS=--xla_cpu_max_isa=AVX2` (or on an AVX2 processor)
the unguarded step's error shows the bug.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

from convlstm_jax import ConvLSTM, _convlstm


def _gradient_step(
    remat: bool, shape: tuple[int, ...], hidden: list[int], kernel: int, unroll: int = 1
) -> tuple[Callable[[], object], Callable]:
    model = ConvLSTM(
        shape[-1],
        hidden,
        kernel,
        len(hidden),
        batch_first=True,
        peephole="conv",
        remat=remat,
        unroll=unroll,
        param_dtype=jnp.float64,
    )
    x = jax.random.normal(jax.random.key(0), shape, jnp.float64)
    weight = jax.random.normal(jax.random.key(1), (*shape[:-1], hidden[-1]), jnp.float64)
    variables = model.init(jax.random.key(2), x[:1, :1])

    def loss(variables, x):
        return jnp.sum(model.apply(variables, x)[0][0] * weight)

    step = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(variables, x).compile()
    return lambda: jax.block_until_ready(step(variables, x)), lambda: step(variables, x)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.float64", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one round: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the variants (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per round (default: %(default)s)")
    args = parser.parse_args(argv)
    # --quick: the smallest case XLA:CPU gets wrong on AVX2 (1x1 kernels, 8x8 frames).
    shape, hidden, kernel = ((1, 6, 8, 8, 2), [6], 1) if args.quick else ((4, 10, 32, 32, 4), [32, 16], 3)
    rounds, repeats = (1, 1) if args.quick else (args.rounds, args.repeats)
    with jax.enable_x64(True):
        variants = {"float64": _gradient_step(False, shape, hidden, kernel)}
        # What the step was without the workaround: float64 run like float32 (no remat).
        with mock.patch.object(_convlstm, "step_remat", lambda remat, dtype: {} if remat else None):
            variants["float64, no remat"] = _gradient_step(False, shape, hidden, kernel)
        variants["float64, remat=True"] = _gradient_step(True, shape, hidden, kernel)
        reference = jax.tree.leaves(_gradient_step(False, shape, hidden, kernel, unroll=shape[1])[1]())
        best = dict.fromkeys(variants, float("inf"))
        for _ in range(rounds):
            for name, (run, _) in variants.items():
                run()
                for _ in range(repeats):
                    start = time.perf_counter()
                    run()
                    best[name] = min(best[name], time.perf_counter() - start)
        grads = {name: jax.tree.leaves(result()) for name, (_, result) in variants.items()}
    print(f"{jax.default_backend()}, ConvLSTM {shape[-1]}->{hidden}, {kernel}x{kernel}, conv peephole, x {shape}")
    print(f"{'float64 gradient':24} {'best ms':>10} {'ratio':>7} {'error vs unrolled':>18}")
    base = best["float64, no remat"]
    for name in variants:
        error = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(grads[name], reference))
        print(f"{name:24} {1e3 * best[name]:10.1f} {best[name] / base:7.2f} {error:18.1e}")


if __name__ == "__main__":
    main()
