"""The JAX systems: this port (`convlstm_jax.ConvLSTM`) and Flax's own `nn.RNN(nn.ConvLSTMCell)`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .systems import Bench, Context
from .timing import Step
from .workloads import Workload


def port_model(workload: Workload, **options: Any):
    """`convlstm_jax.ConvLSTM` for `workload` (batch-first, channels-last), with `options`."""
    from convlstm_jax import ConvLSTM

    return ConvLSTM(**workload.model_kwargs(), **options)


def resolved_conv_gradient(model: Any) -> str | None:
    """What `conv_gradient` resolves to on this backend ("auto" -> "tapwise"/"xla"), or None if unknown."""
    value = getattr(model, "conv_gradient", None)
    if value is None:
        return None
    try:
        from convlstm_jax._conv import resolve_conv_gradient
    except ImportError:
        return value
    return resolve_conv_gradient(value)


def jax_step(fn: Callable, *args: Any, compiler_options: dict[str, Any] | None = None) -> Step:
    """A `Step` that compiles `jax.jit(fn)` ahead of time in `prepare` (with XLA `compiler_options`)
    and blocks on every result."""
    compiled: list[Any] = []

    def prepare() -> float:
        start = time.perf_counter()
        compiled.append(jax.jit(fn).lower(*args).compile(compiler_options=compiler_options))
        return time.perf_counter() - start

    def run() -> Any:
        return jax.block_until_ready(compiled[-1](*args))

    return Step(run=run, prepare=prepare)


def jax_bench(
    apply_last: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x: jax.Array,
    compiler_options: dict[str, Any] | None = None,
) -> Bench:
    """Forward and train step (`jax.value_and_grad` of the mean square of the last layer's outputs,
    taken in float32 whatever the compute dtype)."""

    def loss(params: Any, x: jax.Array) -> jax.Array:
        return jnp.mean(jnp.square(apply_last(params, x).astype(jnp.float32)))

    return Bench(
        forward=jax_step(apply_last, params, x, compiler_options=compiler_options),
        train=jax_step(jax.value_and_grad(loss), params, x, compiler_options=compiler_options),
    )


def port_apply(model: Any) -> Callable[[Any, jax.Array], jax.Array]:
    """`variables, x -> the last layer's outputs at every step`."""

    def apply_last(variables: Any, x: jax.Array) -> jax.Array:
        outputs, _ = model.apply(variables, x)
        return outputs[-1]

    return apply_last


def port_compiler_options() -> dict[str, Any]:
    """`convlstm_jax.compiler_options()`, or {} where this version of the port has none."""
    try:
        from convlstm_jax import compiler_options
    except ImportError:
        return {}
    return compiler_options()


def build_port(ctx: Context, conv_gradient: str, xla_defaults: bool = False, dtype: Any = None) -> Bench:
    """This port with `conv_gradient`, compiled with `convlstm_jax.compiler_options()` (the XLA
    options it recommends) unless `xla_defaults`; computing in `dtype` (float32 parameters) if given."""
    model = port_model(ctx.workload, conv_gradient=conv_gradient, **({} if dtype is None else {"dtype": dtype}))
    options = {} if xla_defaults else port_compiler_options()
    bench = jax_bench(port_apply(model), ctx.jax_variables, jnp.asarray(ctx.x), options)
    bench.notes = [f"conv_gradient={conv_gradient} -> {resolved_conv_gradient(model)}"]
    if dtype is not None:
        bench.notes.append(f"compute {jnp.dtype(dtype).name}, float32 parameters")
    if options or xla_defaults:
        bench.notes.append(f"compiler_options={options}")
    return bench


class FlaxStack(nn.Module):
    """Flax's own ConvLSTM: one `nn.RNN(nn.ConvLSTMCell)` per layer, batch-first, channels-last."""

    hidden: tuple[int, ...]
    kernel: tuple[int, int]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for index, features in enumerate(self.hidden):
            x = nn.RNN(nn.ConvLSTMCell(features=features, kernel_size=self.kernel), name=f"layer_{index}")(x)
        return x


def random_like(tree: Any, seed: int = 0) -> Any:
    """Arrays shaped as `tree`'s leaves, drawn U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with NumPy.

    Drawing with NumPy skips compiling JAX's random draws (slow on XLA:CPU); the timings do not
    depend on the values.
    """
    rng = np.random.default_rng(seed)

    def draw(leaf: Any) -> jax.Array:
        shape = tuple(leaf.shape)
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else shape[0]
        bound = 1.0 / max(fan_in, 1) ** 0.5
        return jnp.asarray(rng.uniform(-bound, bound, shape).astype(np.float32))

    return jax.tree.map(draw, tree)


def build_flax(ctx: Context) -> Bench:
    """`flax.linen.RNN(flax.linen.ConvLSTMCell)` stacked per layer, its own random weights."""
    workload = ctx.workload
    model = FlaxStack(workload.hidden, workload.kernel)
    x = jnp.asarray(ctx.x)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x[:1, :1])
    bench = jax_bench(model.apply, random_like(shapes), x)
    if workload.peephole is not None:
        bench.notes.append("no peepholes (Flax's cell has none)")
    return bench
