"""The data of Shi et al. 2015's first experiment (Section 4.1), Moving MNIST, read or made offline.

- `load_moving_mnist`: the standard test file, `mnist_test_seq.npy`.
- `bouncing_digits`: an offline generator of bouncing digits, from scikit-learn's bundled 8x8 digits.

Sequences are uint8 arrays of shape (N, T, H, W, 1): batch-first and channels-last, as `ConvLSTM`
takes them with `batch_first=True`. Only NumPy is needed; `bouncing_digits` also uses scikit-learn.
"""

from __future__ import annotations

import math
import os

import numpy as np

from convlstm_common import check_int as _check_int

# How far a digit moves in one frame, as a fraction of the free range size - digit_size (Srivastava
# et al. 2015, whose generator uses the same step: 3.6 pixels a frame at 64 x 64 with 28 x 28 digits).
STEP = 0.1


def load_moving_mnist(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads the standard Moving MNIST file, `mnist_test_seq.npy`.

    The file holds uint8 frames of shape (T, N, H, W), time-major: (20, 10000, 64, 64) for the one
    Srivastava et al. 2015 published. The header is checked before any frame is read; the frames are
    then copied into memory (820 MB for the standard file) batch-first and channels-last.

    Args:
      path: the `.npy` file.

    Returns:
      A contiguous uint8 array of shape (N, T, H, W, 1).

    Raises:
      FileNotFoundError: if there is no file at `path`.
      ValueError: if the file is not a `.npy` array, or its array is not 4-D.
      TypeError: if its dtype is not uint8.

    Examples:
      >>> import tempfile
      >>> import numpy as np
      >>> from convlstm_jax.training import load_moving_mnist
      >>> frames = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)  # (T, N, H, W)
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     np.save(f"{folder}/mnist_test_seq.npy", frames)
      ...     sequences = load_moving_mnist(f"{folder}/mnist_test_seq.npy")
      >>> sequences.shape
      (3, 2, 4, 4, 1)
      >>> bool((sequences[1, 0, ..., 0] == frames[0, 1]).all())
      True
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No Moving MNIST file at {os.fspath(path)!r} (expected mnist_test_seq.npy).")
    try:
        frames = np.load(path, mmap_mode="r")
    except ValueError as error:
        raise ValueError(f"{os.fspath(path)!r} is not a .npy array file: {error}") from error
    if not isinstance(frames, np.ndarray):
        frames.close()
        raise ValueError(f"{os.fspath(path)!r} holds a {type(frames).__name__}, expected one .npy array.")
    if frames.ndim != 4:
        raise ValueError(
            f"Moving MNIST frames must be 4-D (T, N, H, W), got shape {frames.shape} in {os.fspath(path)!r}."
        )
    if frames.dtype != np.uint8:
        raise TypeError(f"Moving MNIST frames must be uint8, got {frames.dtype} in {os.fspath(path)!r}.")
    return np.ascontiguousarray(np.swapaxes(frames, 0, 1))[..., np.newaxis]


def _upscale_matrix(source: int, target: int) -> np.ndarray:
    """The (target, source) matrix of bilinear interpolation along one axis, pixel centres aligned."""
    position = np.clip((np.arange(target) + 0.5) * (source / target) - 0.5, 0, source - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, source - 1)
    weight = position - low
    matrix = np.zeros((target, source))
    rows = np.arange(target)
    np.add.at(matrix, (rows, low), 1 - weight)
    np.add.at(matrix, (rows, high), weight)
    return matrix


def _digit_images(digit_size: int) -> np.ndarray:
    """scikit-learn's 1797 handwritten 8 x 8 digits, bilinearly upscaled, as uint8 (1797, s, s)."""
    from sklearn.datasets import load_digits

    digits = load_digits().images * (255 / 16)  # 0..16 in the file
    matrix = _upscale_matrix(digits.shape[1], digit_size)
    images = matrix @ digits @ matrix.T
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def bouncing_digits(
    num_sequences: int,
    num_frames: int = 20,
    *,
    size: int = 64,
    digit_size: int = 28,
    num_digits: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Sequences of handwritten digits bouncing in a square frame, as Moving MNIST is made.

    Following the generator of Srivastava et al. 2015: each sequence draws `num_digits` digit images,
    each with a uniform random start in the frame and a uniform random direction. A digit moves
    `STEP` (0.1) of the free range `size - digit_size` per frame, 3.6 pixels at the defaults, and
    bounces elastically off the edges; overlapping digits combine by pixelwise maximum.

    The digit images are scikit-learn's bundled 8 x 8 handwritten digits (`load_digits`: 1797
    images shipped with the package, no download), scaled to 0..255 and upscaled bilinearly to
    `digit_size`. They are blurrier than MNIST's 28 x 28 digits: figures measured on these sequences
    are not comparable with published Moving MNIST figures.

    Args:
      num_sequences: N, how many sequences.
      num_frames: T, frames per sequence (Moving MNIST: 10 inputs then 10 targets).
      size: the side of the square frame, in pixels.
      digit_size: the side of a digit image, at most `size`.
      num_digits: digits per sequence.
      seed: the seed of `np.random.default_rng`; the same arguments give the same sequences.

    Returns:
      A uint8 array of shape (N, T, size, size, 1).

    Raises:
      TypeError: if an argument is not an int.
      ValueError: if an argument is not positive (`seed`: negative), or `digit_size > size`.

    Examples:
      >>> from convlstm_jax.training import bouncing_digits
      >>> sequences = bouncing_digits(2, 5, size=32, digit_size=16, seed=1)
      >>> sequences.shape, sequences.dtype
      ((2, 5, 32, 32, 1), dtype('uint8'))
      >>> bool((sequences == bouncing_digits(2, 5, size=32, digit_size=16, seed=1)).all())
      True
    """
    num_sequences = _check_int("num_sequences", num_sequences, 1)
    num_frames = _check_int("num_frames", num_frames, 1)
    size = _check_int("size", size, 1)
    digit_size = _check_int("digit_size", digit_size, 1)
    num_digits = _check_int("num_digits", num_digits, 1)
    seed = _check_int("seed", seed, 0)
    if digit_size > size:
        raise ValueError(f"digit_size must be at most size, got digit_size={digit_size} and size={size}.")

    images = _digit_images(digit_size)
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(images), size=(num_sequences, num_digits))
    start = rng.random((num_sequences, num_digits, 2))  # (row, column), in units of the free range
    angle = rng.random((num_sequences, num_digits)) * (2 * math.pi)
    velocity = STEP * np.stack([np.sin(angle), np.cos(angle)], axis=-1)

    # Straight-line motion folded back into [0, 1] is exactly the motion that bounces off both ends.
    time = np.arange(num_frames).reshape(1, -1, 1, 1)
    unfolded = start[:, np.newaxis] + time * velocity[:, np.newaxis]  # (N, T, D, 2)
    position = 1 - np.abs(1 - np.mod(unfolded, 2))
    corner = np.rint(position * (size - digit_size)).astype(np.intp)

    frames = np.zeros((num_sequences, num_frames, size, size), np.uint8)
    sequence = np.arange(num_sequences).reshape(-1, 1, 1, 1)
    frame = np.arange(num_frames).reshape(1, -1, 1, 1)
    offset = np.arange(digit_size)
    for d in range(num_digits):
        rows = corner[:, :, d, 0, np.newaxis, np.newaxis] + offset[:, np.newaxis]  # (N, T, s, 1)
        columns = corner[:, :, d, 1, np.newaxis, np.newaxis] + offset  # (N, T, 1, s)
        window = (sequence, frame, rows, columns)
        frames[window] = np.maximum(frames[window], images[chosen[:, d], np.newaxis])
    return frames[..., np.newaxis]


__all__ = [
    "STEP",
    "bouncing_digits",
    "load_moving_mnist",
]
