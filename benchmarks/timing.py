"""Wall-clock timing of synchronised calls, and the matmul peak the figures are compared with."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Step:
    """One measured operation (a forward pass or a train step) of one system.

    `prepare()` is called once before any timed call and returns the seconds it spent compiling
    ahead of time (JAX: `jax.jit(f).lower(...).compile()`), or None where nothing is compiled
    ahead of time. `run()` performs one call and returns only when its results are computed
    (`jax.block_until_ready`, `torch.cuda.synchronize`).
    """

    run: Callable[[], object]
    prepare: Callable[[], float | None] = lambda: None


@dataclass
class Timing:
    """The seconds of each warm-up call and each timed call; the figure reported is the best."""

    warmup_s: list[float] = field(default_factory=list)
    times_s: list[float] = field(default_factory=list)
    compile_s: float | None = None

    @property
    def best_ms(self) -> float:
        return 1e3 * min(self.times_s)

    def as_dict(self) -> dict:
        return {
            "best_ms": self.best_ms,
            "times_ms": [1e3 * t for t in self.times_s],
            "warmup_ms": [1e3 * t for t in self.warmup_s],
            "repeats": len(self.times_s),
            "warmup_calls": len(self.warmup_s),
            "aot_compile_s": self.compile_s,
        }


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(step: Step, repeats: int, warmup: int = 1) -> Timing:
    """Prepares `step`, makes `warmup` untimed calls, then `repeats` timed calls (best of them wins).

    Warm-up calls are timed too and kept apart: for torch.compile the first one is the compilation.
    """
    timing = Timing(compile_s=step.prepare())
    timing.warmup_s = [_timed(step.run) for _ in range(warmup)]
    timing.times_s = [_timed(step.run) for _ in range(max(1, repeats))]
    return timing


def matmul_peak(repeats: int, n: int = 2048) -> dict:
    """Best-of-`repeats` GFLOP/s of a jit-compiled float32 (n, n) @ (n, n) after one warm-up call.

    Runs at the JAX matmul precision in force when called (see `benchmarks.run`).
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32))
    b = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32))
    compiled = jax.jit(jnp.matmul).lower(a, b).compile()
    timing = measure(Step(lambda: jax.block_until_ready(compiled(a, b))), repeats)
    flop = 2 * n**3
    return {
        "n": n,
        "flop": flop,
        "best_ms": timing.best_ms,
        "times_ms": timing.as_dict()["times_ms"],
        "gflops": flop / (timing.best_ms * 1e6),
    }
