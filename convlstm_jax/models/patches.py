"""Frames cut into patches and back: this library's order (`space_to_depth`, as
`torch.nn.functional.pixel_unshuffle`) and OpenSTL's (`openstl_patches`, its `reshape_patch`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def space_to_depth(frames: jax.Array, patch_size: int) -> jax.Array:
    """Cuts (..., H, W, C) frames into non-overlapping patches: (..., H/p, W/p, C·p·p).

    The channels of a patch are ordered (c, row, column), as `torch.nn.functional.pixel_unshuffle`
    orders them, so the two frameworks' models see the same patch channels.

    Example:
      >>> import jax.numpy as jnp
      >>> from convlstm_jax.models import space_to_depth
      >>> space_to_depth(jnp.arange(16.0).reshape(4, 4, 1), 2)[0, 0]
      Array([0., 1., 4., 5.], dtype=float32)
    """
    *lead, height, width, channels = frames.shape
    p, n = patch_size, len(lead)
    x = frames.reshape(*lead, height // p, p, width // p, p, channels)
    x = jnp.transpose(x, (*range(n), n, n + 2, n + 4, n + 1, n + 3))  # (..., H/p, W/p, C, p, p)
    return x.reshape(*lead, height // p, width // p, channels * p * p)


def depth_to_space(patches: jax.Array, patch_size: int) -> jax.Array:
    """The inverse of `space_to_depth`: (..., H/p, W/p, C·p·p) -> (..., H, W, C)."""
    *lead, rows, columns, depth = patches.shape
    p, n = patch_size, len(lead)
    x = patches.reshape(*lead, rows, columns, depth // (p * p), p, p)
    x = jnp.transpose(x, (*range(n), n, n + 3, n + 1, n + 4, n + 2))  # (..., H/p, p, W/p, p, C)
    return x.reshape(*lead, rows * p, columns * p, depth // (p * p))


def openstl_patch_order(patch_size: int, channels: int) -> np.ndarray:
    """For each channel of a `space_to_depth` patch, the channel of OpenSTL's patch that holds the same pixel.

    OpenSTL's `reshape_patch` puts pixel (row r, column c, channel k) of a p x p patch at channel
    (r·p + c)·C + k; `space_to_depth` puts it at k·p·p + r·p + c. `openstl_patches(x, p)[...,
    order]` is `space_to_depth(x, p)`.

    >>> openstl_patch_order(2, 2).tolist()
    [0, 2, 4, 6, 1, 3, 5, 7]
    """
    return (
        np.arange(patch_size * patch_size * channels)
        .reshape(patch_size, patch_size, channels)
        .transpose(2, 0, 1)
        .ravel()
    )


def openstl_patches(frames: jax.Array, patch_size: int) -> jax.Array:
    """Cuts (..., H, W, C) frames into patches as OpenSTL's `reshape_patch` does: (..., H/p, W/p, p·p·C).

    A patch's channels are ordered (row, column, channel), not `space_to_depth`'s (channel, row, column).

    Example:
      >>> import jax.numpy as jnp
      >>> openstl_patches(jnp.arange(32.0).reshape(4, 4, 2), 2)[0, 0].tolist()
      [0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0]
    """
    *lead, height, width, channels = frames.shape
    p, n = patch_size, len(lead)
    x = frames.reshape(*lead, height // p, p, width // p, p, channels)
    x = jnp.transpose(x, (*range(n), n, n + 2, n + 1, n + 3, n + 4))  # (..., H/p, W/p, p, p, C)
    return x.reshape(*lead, height // p, width // p, p * p * channels)


def openstl_unpatch(patches: jax.Array, patch_size: int) -> jax.Array:
    """The inverse of `openstl_patches` (OpenSTL's `reshape_patch_back`): (..., H/p, W/p, p·p·C) -> (..., H, W, C)."""
    *lead, rows, columns, depth = patches.shape
    p, n = patch_size, len(lead)
    x = patches.reshape(*lead, rows, columns, p, p, depth // (p * p))
    x = jnp.transpose(x, (*range(n), n, n + 2, n + 1, n + 3, n + 4))  # (..., H/p, p, W/p, p, C)
    return x.reshape(*lead, rows * p, columns * p, depth // (p * p))
