"""A training loss for radar frames: the balanced loss of HKO-7 (Shi et al. 2017).

`balanced_loss` takes channels-last sequences of shape (B, T, H, W, C), checks them before computing
anything, and returns a scalar. Inputs of fewer than 32 bits are computed in float32. It traces
under `jax.jit`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .units import DBZ_RANGE, rain_to_dbz


def check_pair(name: str, x: Any, targets: Any) -> None:
    """Raises unless `x` and `targets` are floating-point arrays of one dtype and one 5-D shape."""
    for label, array in ((name, x), ("targets", targets)):
        dtype = getattr(array, "dtype", None)
        if dtype is None or not hasattr(array, "shape"):
            raise TypeError(f"{label} must be an array, got {type(array).__name__}.")
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"{label} must have a floating-point dtype, got {dtype}.")
    if x.dtype != targets.dtype:
        raise TypeError(f"{name} and targets must have the same dtype, got {x.dtype} and {targets.dtype}.")
    if x.shape != targets.shape:
        raise ValueError(f"{name} and targets must have the same shape, got {x.shape} and {targets.shape}.")
    if len(x.shape) != 5:
        raise ValueError(f"{name} and targets must be 5-D (B, T, H, W, C), got shape {x.shape}.")


def widened(x: Any) -> jax.Array:
    """`x` as a JAX array of at least float32."""
    x = jnp.asarray(x)
    return x.astype(jnp.float32) if np.dtype(x.dtype).itemsize < 4 else x


# HKO-7's balancing weights (Shi et al. 2017): 1 below 2 mm/h, 2 from 2, 5 from 5, 10 from 10 and 30 from 30
# mm/h, the thresholds as HKO-7's pixels in [0, 1] (dBZ + 10) / 70, by Z = 200 R^1.6.
BALANCED_THRESHOLDS_MM_H = (2.0, 5.0, 10.0, 30.0)
BALANCED_WEIGHTS = (1.0, 2.0, 5.0, 10.0, 30.0)


def _balanced_edges() -> np.ndarray:
    low, high = DBZ_RANGE
    return ((rain_to_dbz(np.array(BALANCED_THRESHOLDS_MM_H)) - low) / (high - low)).astype(np.float32)


def balanced_loss(logits: jax.typing.ArrayLike, targets: jax.typing.ArrayLike) -> jax.Array:
    """HKO-7's balanced MSE plus balanced MAE (Shi et al. 2017), a training loss for radar frames.

    With p = σ(logits) and radar frames as HKO-7 stores them (pixels in [0, 1], `rain_to_pixels`
    / 255), each pixel's squared and absolute errors are weighted by the target's rain rate: 1 below
    2 mm/h, then 2, 5, 10 and 30 from 2, 5, 10 and 30 mm/h, so that the rare heavy rain counts; the
    weighted errors are summed over every pixel of every frame of a sequence, then averaged over the
    B sequences (the normalisation of `cross_entropy`). The absolute error's part pulls a forecast
    toward the median rather than the mean, which keeps rain that is likely but not certain above
    the low thresholds instead of fading it.

    Missing pixels, NaN in `targets` (pysteps' convention, kept by `rain_to_pixels` as float pixels),
    count for nothing: the loss is the mean of the weighted errors over the observed pixels alone,
    times the pixels of a sequence (T H W C), which is the sum per sequence averaged over the
    sequences when nothing is missing. The forecast at a missing pixel gets no gradient, and a batch
    with nothing observed has loss 0.

    Args:
      logits: predicted frames before the sigmoid, of shape (B, T, H, W, C).
      targets: true frames in [0, 1], of the same shape and dtype; NaN where missing.

    Returns:
      A scalar: the mean over sequences of the summed, weighted squared and absolute errors (over the
      observed pixels, scaled as above).

    Raises:
      TypeError: if an input is not a floating-point array, or the dtypes differ.
      ValueError: if the shapes differ or are not 5-D.

    References:
      X. Shi, Z. Gao, L. Lausen, H. Wang, D.-Y. Yeung, W.-K. Wong and W.-C. Woo, "Deep Learning for
      Precipitation Nowcasting: A Benchmark and A New Model", NeurIPS 2017.

    Examples:
      >>> import jax.numpy as jnp
      >>> from convlstm_jax.nowcasting import balanced_loss, rain_to_pixels
      >>> heavy = rain_to_pixels(jnp.array(40.0)) / 255  # 40 mm/h: weight 30
      >>> targets = jnp.full((1, 1, 1, 2, 1), float(heavy))
      >>> logits = jnp.log(targets / (1 - targets)) - jnp.array([0.0, 1.0]).reshape(1, 1, 1, 2, 1)
      >>> loss = balanced_loss(logits, targets)  # one pixel exact, one too low
      >>> p = 1 / (1 + (1 - targets[0, 0, 0, 1, 0]) / targets[0, 0, 0, 1, 0] * jnp.e)
      >>> bool(jnp.isclose(loss, 30 * ((heavy - p) ** 2 + abs(heavy - p))))
      True
    """
    check_pair("logits", logits, targets)
    logits, targets = widened(logits), widened(targets)
    # Missing targets are filled before any arithmetic and masked after it, so that neither the loss nor
    # its gradient sees a NaN.
    observed = ~jnp.isnan(targets)
    targets = jnp.where(observed, targets, 0)
    predictions = jax.nn.sigmoid(logits)
    edges = jnp.asarray(_balanced_edges(), targets.dtype)
    weights = jnp.asarray(BALANCED_WEIGHTS, targets.dtype)[jnp.searchsorted(edges, targets, side="right")]
    error = predictions - targets
    per_pixel = jnp.where(observed, weights * (jnp.square(error) + jnp.abs(error)), 0)
    pixels_per_sequence = math.prod(targets.shape[1:])
    return jnp.sum(per_pixel) / jnp.maximum(jnp.sum(observed, dtype=targets.dtype), 1) * pixels_per_sequence


__all__ = [
    "BALANCED_THRESHOLDS_MM_H",
    "BALANCED_WEIGHTS",
    "balanced_loss",
]
