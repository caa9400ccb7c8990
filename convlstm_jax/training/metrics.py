"""Forecast metrics: the cross-entropy of Shi et al. 2015, MSE, MAE and SSIM.

Every function takes channels-last sequences of shape (B, T, H, W, C), B sequences of T frames,
checks them before computing anything, and returns a scalar. Inputs of fewer than 32 bits are
computed in float32. The functions trace under `jax.jit`. The balanced loss of HKO-7 for radar is
`convlstm_jax.nowcasting.balanced_loss`.

A target pixel may be missing, NaN (a radar's pixel outside its range or masked): every metric counts
observed pixels only, and is NaN where no pixel is observed.
"""

from __future__ import annotations

import functools
from typing import Any

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..nowcasting.losses import check_pair, widened


def _observed_errors(predictions: Any, targets: Any) -> tuple[jax.Array, jax.Array]:
    """`predictions - targets` (at least float32), 0 where the target is missing (NaN), and the mask of observed
    targets."""
    predictions, targets = widened(predictions), widened(targets)
    observed = ~jnp.isnan(targets)
    return jnp.where(observed, predictions - jnp.where(observed, targets, 0), 0), observed


def mse(predictions: jax.typing.ArrayLike, targets: jax.typing.ArrayLike) -> jax.Array:
    """Mean squared error over every observed pixel (target not NaN) of every frame.

    Args:
      predictions: predicted frames in [0, 1], of shape (B, T, H, W, C).
      targets: true frames in [0, 1], of the same shape and dtype; NaN where missing.

    Returns:
      A scalar: the mean of `(predictions - targets) ** 2` over the observed pixels.

    Raises:
      TypeError: if an input is not a floating-point array, or the dtypes differ.
      ValueError: if the shapes differ or are not 5-D.

    Examples:
      >>> import jax.numpy as jnp
      >>> from convlstm_jax.training import mse
      >>> mse(jnp.full((1, 1, 2, 2, 1), 0.5), jnp.zeros((1, 1, 2, 2, 1)))
      Array(0.25, dtype=float32)
    """
    check_pair("predictions", predictions, targets)
    errors, observed = _observed_errors(predictions, targets)
    return jnp.sum(jnp.square(errors)) / jnp.sum(observed, dtype=errors.dtype)


def mae(predictions: jax.typing.ArrayLike, targets: jax.typing.ArrayLike) -> jax.Array:
    """Mean absolute error over every observed pixel (target not NaN) of every frame.

    Args and Raises are those of `mse`.

    Returns:
      A scalar: the mean of `|predictions - targets|` over the observed pixels.

    Examples:
      >>> import jax.numpy as jnp
      >>> from convlstm_jax.training import mae
      >>> mae(jnp.full((1, 1, 2, 2, 1), 0.5), jnp.ones((1, 1, 2, 2, 1)))
      Array(0.5, dtype=float32)
    """
    check_pair("predictions", predictions, targets)
    errors, observed = _observed_errors(predictions, targets)
    return jnp.sum(jnp.abs(errors)) / jnp.sum(observed, dtype=errors.dtype)


def ssim(predictions: jax.typing.ArrayLike, targets: jax.typing.ArrayLike, *, filter_size: int = 11) -> jax.Array:
    """Structural similarity (Wang et al. 2004), the mean over all B x T frames, by `dm_pix.ssim`.

    Each frame is compared with its target through a Gaussian window (σ = 1.5) over the valid
    positions, with `max_val=1`, and the per-frame values are averaged; channels are averaged too.
    A frame smaller than the window is measured with the largest odd window that fits in it,
    `min(filter_size, H, W)`, less one if even; on a 1-pixel frame that compares luminance alone.
    Where targets miss pixels (NaN), the windows that hold one are left out: the mean is over the
    windows of observed pixels of every frame (NaN if there is none).

    Args:
      predictions: predicted frames in [0, 1], of shape (B, T, H, W, C).
      targets: true frames in [0, 1], of the same shape and dtype; NaN where missing.
      filter_size: the side of the Gaussian window, for frames at least that large.

    Returns:
      A scalar in [-1, 1]; 1 when every frame equals its target.

    Raises:
      TypeError: if an input is not a floating-point array, the dtypes differ, or `filter_size` is
        not an int.
      ValueError: if the shapes differ or are not 5-D, or `filter_size` is not positive.

    References:
      Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image quality assessment: from error
      visibility to structural similarity", IEEE Transactions on Image Processing 13(4), 2004.

    Examples:
      >>> import jax
      >>> from convlstm_jax.training import ssim
      >>> frames = jax.random.uniform(jax.random.key(0), (2, 3, 16, 16, 1))
      >>> ssim(frames, frames)
      Array(1., dtype=float32)
    """
    check_pair("predictions", predictions, targets)
    if isinstance(filter_size, bool) or not isinstance(filter_size, (int, np.integer)):
        raise TypeError(f"filter_size must be an int, got {type(filter_size).__name__}.")
    if filter_size < 1:
        raise ValueError(f"filter_size must be a positive int, got {filter_size}.")
    _, _, height, width, channels = predictions.shape
    window = min(int(filter_size), height, width)
    if window % 2 == 0:
        window -= 1
    frames = (widened(x).reshape(-1, height, width, channels) for x in (predictions, targets))
    return _mean_ssim(*frames, filter_size=window)


@functools.partial(jax.jit, static_argnames="filter_size")
def _mean_ssim(predictions: jax.Array, targets: jax.Array, filter_size: int) -> jax.Array:
    """The mean of `dm_pix.ssim`'s map over (N, H, W, C) frames, compiled as one program, leaving out the windows
    that hold a missing target (NaN)."""
    predictions = jnp.where(jnp.isnan(targets), targets, predictions)  # NaN spreads to every window that holds it
    # dm_pix builds its window from int32 and Python floats, which strict promotion refuses; both
    # frames already share one dtype, so standard promotion changes nothing else.
    with jax.numpy_dtype_promotion("standard"):
        ssim_map = dm_pix.ssim(predictions, targets, max_val=1.0, filter_size=filter_size, return_map=True)
    return jnp.nanmean(ssim_map)


def cross_entropy(logits: jax.typing.ArrayLike, targets: jax.typing.ArrayLike) -> jax.Array:
    """Binary cross-entropy per sequence, the figure Shi et al. 2015 report for Moving MNIST.

    With p = σ(logits), the per-pixel loss -[y log p + (1 - y) log(1 - p)] is summed over every
    observed pixel (target not NaN) of every predicted frame of a sequence, then averaged over the
    B sequences. This is the
    loss of Shi et al. 2015 (Section 4.1, Table 1), computed from logits for stability by
    `optax.sigmoid_binary_cross_entropy`. For targets strictly between 0 and 1 the minimum is
    their entropy, not 0.

    Args:
      logits: predicted frames before the sigmoid, of shape (B, T, H, W, C).
      targets: true frames in [0, 1], of the same shape and dtype; NaN where missing.

    Returns:
      A scalar: the mean over sequences of the cross-entropy summed over observed pixels.

    Raises:
      TypeError: if an input is not a floating-point array, or the dtypes differ.
      ValueError: if the shapes differ or are not 5-D.

    References:
      X. Shi, Z. Chen, H. Wang, D.-Y. Yeung, W.-K. Wong and W.-C. Woo, "Convolutional LSTM Network:
      A Machine Learning Approach for Precipitation Nowcasting", NeurIPS 2015.

    Examples:
      >>> import math
      >>> import jax.numpy as jnp
      >>> from convlstm_jax.training import cross_entropy
      >>> loss = cross_entropy(jnp.zeros((3, 2, 4, 4, 1)), jnp.ones((3, 2, 4, 4, 1)))
      >>> round(float(loss), 4), round(32 * math.log(2), 4)  # 32 pixels a sequence, each log 2
      (22.1807, 22.1807)
    """
    check_pair("logits", logits, targets)
    targets = widened(targets)
    observed = ~jnp.isnan(targets)
    per_pixel = optax.sigmoid_binary_cross_entropy(widened(logits), jnp.where(observed, targets, 0))
    return jnp.mean(jnp.sum(jnp.where(observed, per_pixel, 0), axis=(1, 2, 3, 4)))


def evaluate(logits: jax.typing.ArrayLike, targets: jax.typing.ArrayLike) -> dict[str, jax.Array]:
    """All four metrics of a forecast: the cross-entropy of `logits`, the others of σ(logits).

    Args:
      logits: predicted frames before the sigmoid, of shape (B, T, H, W, C).
      targets: true frames in [0, 1], of the same shape and dtype; NaN where missing.

    Returns:
      `{"cross_entropy": ..., "mse": ..., "mae": ..., "ssim": ...}`, scalars as the functions of
      the same names return them.

    Raises:
      TypeError: if an input is not a floating-point array, or the dtypes differ.
      ValueError: if the shapes differ or are not 5-D.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from convlstm_jax.training import evaluate
      >>> targets = jnp.zeros((2, 3, 8, 8, 1))
      >>> scores = jax.jit(evaluate)(jnp.full((2, 3, 8, 8, 1), -20.0), targets)
      >>> sorted(scores)
      ['cross_entropy', 'mae', 'mse', 'ssim']
      >>> bool(scores["mse"] < 1e-12)
      True
    """
    check_pair("logits", logits, targets)
    logits, targets = widened(logits), widened(targets)
    predictions = jax.nn.sigmoid(logits)
    return {
        "cross_entropy": cross_entropy(logits, targets),
        "mse": mse(predictions, targets),
        "mae": mae(predictions, targets),
        "ssim": ssim(predictions, targets),
    }


__all__ = [
    "cross_entropy",
    "evaluate",
    "mae",
    "mse",
    "ssim",
]
