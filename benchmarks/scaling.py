"""Compile time and compiled memory of the port's train step against the sequence length.

Compile-only: every figure comes from `jax.jit(f).lower(...).compile()` on abstract inputs
(`jax.ShapeDtypeStruct`), so nothing is executed or allocated for the longer sequences.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp

from .sys_jax import port_apply, port_model, resolved_conv_gradient
from .workloads import Workload


def _abstract(tree: Any) -> Any:
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


def compile_train_step(workload: Workload, variables: Any, **options: Any):
    """Compiles the port's train step for `workload`; returns `(compiled, seconds, model)`."""
    model = port_model(workload, **options)
    apply_last = port_apply(model)

    def loss(variables: Any, x: jax.Array) -> jax.Array:
        return jnp.mean(jnp.square(apply_last(variables, x)))

    x = jax.ShapeDtypeStruct(workload.input_shape, jnp.float32)
    start = time.perf_counter()
    compiled = jax.jit(jax.value_and_grad(loss)).lower(_abstract(variables), x).compile()
    return compiled, time.perf_counter() - start, model


def peak_bytes(compiled: Any) -> dict | None:
    """temp + argument + output bytes from `compiled.memory_analysis()`, or None if the backend has none."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    parts = {
        "temp_bytes": int(stats.temp_size_in_bytes),
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
    }
    return {"peak_bytes": sum(parts.values()), **parts}


def port_scaling(
    workload: Workload,
    variables: Any,
    compile_steps: tuple[int, ...],
    memory_steps: tuple[int, ...],
    repeats: int = 1,
) -> dict:
    """Compile seconds for T in `compile_steps`; peak bytes for T in `memory_steps`, with and without remat.

    Each compile time is the best of `repeats` compilations, each of a freshly traced function.
    The port runs in its default configuration (`conv_gradient="auto"` where the field exists).
    """
    compiled_at: dict[tuple[int, bool], Any] = {}
    compile_s: dict[int, float] = {}
    compile_all: dict[int, list[float]] = {}
    strategy = None
    for steps in compile_steps:
        for _ in range(max(1, repeats)):
            compiled, seconds, model = compile_train_step(workload.with_steps(steps), variables, conv_gradient="auto")
            compiled_at[steps, False] = compiled
            compile_all.setdefault(steps, []).append(seconds)
        compile_s[steps] = min(compile_all[steps])
        strategy = resolved_conv_gradient(model)
    first, last = compile_steps[0], compile_steps[-1]

    memory: dict[str, dict] = {"without_remat": {}, "with_remat": {}}
    for steps in memory_steps:
        for remat in (False, True):
            key = "with_remat" if remat else "without_remat"
            compiled = compiled_at.get((steps, remat))
            if compiled is None:
                options = {"conv_gradient": "auto", **({"remat": True} if remat else {})}
                compiled = compile_train_step(workload.with_steps(steps), variables, **options)[0]
            memory[key][steps] = peak_bytes(compiled)
    longest = memory_steps[-1]
    without, with_remat = memory["without_remat"][longest], memory["with_remat"][longest]
    ratio = without["peak_bytes"] / with_remat["peak_bytes"] if without and with_remat else None
    return {
        "workload": workload.name,
        "conv_gradient": strategy,
        "compile_s": {str(t): s for t, s in compile_s.items()},
        "compile_s_all": {str(t): s for t, s in compile_all.items()},
        "compile_ratio": {"numerator_T": last, "denominator_T": first, "ratio": compile_s[last] / compile_s[first]},
        "memory": {key: {str(t): v for t, v in table.items()} for key, table in memory.items()},
        "memory_ratio": {"T": longest, "without_over_with_remat": ratio},
    }
