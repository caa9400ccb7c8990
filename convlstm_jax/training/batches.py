"""Sequences made into training batches: the input/target split, frames in [0, 1], reproducible
batches and the copy-the-last-frame baseline.

Sequences are arrays of shape (N, T, ...): batch-first, as `ConvLSTM` takes them with
`batch_first=True`. Only NumPy is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convlstm_common import check_int as _check_int


def _check_sequences(name: str, x: Any) -> None:
    """Raises unless `x` is a NumPy array with a batch and a time axis."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(x).__name__}.")
    if x.ndim < 2:
        raise ValueError(f"{name} must have a batch and a time axis (N, T, ...), got shape {x.shape}.")


def split_sequences(sequences: np.ndarray, input_frames: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Splits sequences along time into what the model sees and what it must predict.

    Args:
      sequences: an array of shape (N, T, ...).
      input_frames: how many leading frames are inputs (Moving MNIST: 10 of 20).

    Returns:
      `(inputs, targets)`: frames `[:input_frames]` and `[input_frames:]` along axis 1, views of
      `sequences`.

    Raises:
      ValueError: if `sequences` has no time axis, or not more than `input_frames` frames.

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.training import split_sequences
      >>> inputs, targets = split_sequences(np.zeros((4, 20, 64, 64, 1), np.uint8))
      >>> inputs.shape, targets.shape
      ((4, 10, 64, 64, 1), (4, 10, 64, 64, 1))
    """
    _check_sequences("sequences", sequences)
    input_frames = _check_int("input_frames", input_frames, 1)
    if sequences.shape[1] <= input_frames:
        raise ValueError(
            f"sequences must have more frames than input_frames={input_frames} to leave targets, "
            f"got shape {sequences.shape} (axis 1 is time)."
        )
    return sequences[:, :input_frames], sequences[:, input_frames:]


def to_unit(x: np.ndarray) -> np.ndarray:
    """Maps pixels 0..255 to float32 values in [0, 1].

    Pixels are uint8, or floating-point with NaN where missing (radar frames with pixels outside a
    radar's range, as `load_data` returns them); NaN stays NaN.

    Raises:
      TypeError: if `x` is not a uint8 or floating-point NumPy array.

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.training import to_unit
      >>> to_unit(np.array([0, 51, 255], np.uint8))
      array([0. , 0.2, 1. ], dtype=float32)
      >>> to_unit(np.array([0.0, np.nan, 255.0], np.float32))
      array([ 0., nan,  1.], dtype=float32)
    """
    if not isinstance(x, np.ndarray) or not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
        found = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"to_unit takes a uint8 or floating-point NumPy array of pixels 0..255, got {found}.")
    return x.astype(np.float32) / np.float32(255)


def batch_indices(num_examples: int, batch_size: int, step: int, *, seed: int) -> np.ndarray:
    """The indices of the examples in training step `step`.

    Each epoch of `num_examples // batch_size` steps goes through its own permutation of the
    examples, drawn from `np.random.default_rng([seed, epoch])`; the last `num_examples % batch_size`
    examples of a permutation are left out. The result depends on the arguments alone, so a run
    resumed at step k sees the batches an uninterrupted run sees from step k.

    Args:
      num_examples: how many examples there are.
      batch_size: examples per step, at most `num_examples`.
      step: the training step, from 0.
      seed: the seed of the shuffle.

    Returns:
      An int64 array of `batch_size` distinct indices in [0, num_examples).

    Raises:
      TypeError: if an argument is not an int.
      ValueError: if `batch_size` is not in [1, num_examples], or `step` or `seed` is negative.

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.training import batch_indices
      >>> epoch = np.concatenate([batch_indices(10, 5, step, seed=0) for step in (0, 1)])
      >>> sorted(epoch.tolist())
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
      >>> bool((batch_indices(10, 5, 1, seed=0) == batch_indices(10, 5, 1, seed=0)).all())
      True
    """
    num_examples = _check_int("num_examples", num_examples, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    step = _check_int("step", step, 0)
    seed = _check_int("seed", seed, 0)
    if batch_size > num_examples:
        raise ValueError(f"batch_size must be at most num_examples, got {batch_size} > {num_examples}.")
    epoch, position = divmod(step, num_examples // batch_size)
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    return order[position * batch_size : (position + 1) * batch_size]


def copy_last_frame(inputs: np.ndarray, num_frames: int) -> np.ndarray:
    """The baseline forecast: the last input frame, repeated.

    Args:
      inputs: input frames, of shape (N, T, ...) with T >= 1.
      num_frames: how many frames to forecast.

    Returns:
      An array of shape (N, num_frames, ...) and the dtype of `inputs`.

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.training import copy_last_frame
      >>> inputs = np.arange(6).reshape(2, 3)  # two sequences of three scalar frames
      >>> copy_last_frame(inputs, 2)
      array([[2, 2],
             [5, 5]])
    """
    _check_sequences("inputs", inputs)
    num_frames = _check_int("num_frames", num_frames, 1)
    if inputs.shape[1] == 0:
        raise ValueError(f"inputs must have at least one frame, got shape {inputs.shape} (axis 1 is time).")
    return np.repeat(inputs[:, -1:], num_frames, axis=1)


__all__ = [
    "batch_indices",
    "copy_last_frame",
    "split_sequences",
    "to_unit",
]
