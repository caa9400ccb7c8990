"""Keras 3's `keras.layers.ConvLSTM2D` on the JAX backend, when Keras is installed.

Keras reads its backend once, at import: this module sets `KERAS_BACKEND=jax` when it is imported,
which `benchmarks.run` does before anything imports Keras.
"""

from __future__ import annotations

import os
import sys

if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "jax"

from typing import Any

import jax
import jax.numpy as jnp

from .sys_jax import jax_bench, random_like
from .systems import Bench, Context, Unavailable


def keras_version() -> str | None:
    """The installed Keras version, without importing Keras; None if it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("keras")
    except PackageNotFoundError:
        return None


def build_keras(ctx: Context) -> Bench:
    """One `ConvLSTM2D(return_sequences=True, padding="same")` per layer in a `keras.Sequential`.

    The layers are built with zero weights, then given random ones drawn with NumPy
    (`sys_jax.random_like`): Keras' own initializers run eagerly, op by op, and only slow the set-up.
    The model is run with `stateless_call` inside `jax.jit`, like the other JAX systems.
    """
    try:
        import keras
    except ImportError:
        raise Unavailable("not installed (pip install keras)") from None
    if keras.backend.backend() != "jax":
        raise Unavailable(f"Keras was imported with the {keras.backend.backend()} backend before the suite set jax")
    workload = ctx.workload
    batch, steps, height, width, channels = workload.input_shape
    layers = [
        keras.layers.ConvLSTM2D(
            features,
            workload.kernel,
            padding="same",
            return_sequences=True,
            kernel_initializer="zeros",
            recurrent_initializer="zeros",
        )
        for features in workload.hidden
    ]
    model = keras.Sequential([keras.Input((steps, height, width, channels), batch_size=batch), *layers])
    trainable = random_like([v.value for v in model.trainable_variables])
    non_trainable = [v.value for v in model.non_trainable_variables]

    def apply_last(trainable: Any, x: jax.Array) -> jax.Array:
        outputs, _ = model.stateless_call(trainable, non_trainable, x)
        return outputs

    bench = jax_bench(apply_last, trainable, jnp.asarray(ctx.x))
    if workload.peephole is not None:
        bench.notes.append("no peepholes (Keras' cell has none)")
    return bench
