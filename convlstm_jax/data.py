"""The data of Shi et al. 2015's two experiments, made offline or read from their files.

- Moving MNIST (Section 4.1): the standard test file (`load_moving_mnist`) and an offline generator
  of bouncing digits (`bouncing_digits`).
- Radar echoes (Section 4.2): a generator of synthetic radar rain fields (`synthetic_radar`), the
  conversions between rain rate, reflectivity and HKO-7's pixels (`rain_to_dbz`, `rain_to_pixels`,
  ...), and radar PNGs in HKO-7's layout (`load_radar_pngs`, `save_radar_pngs`).
- The input/target split, reproducible batches and the copy-the-last-frame baseline.

Sequences are uint8 arrays of shape (N, T, H, W, 1): batch-first and channels-last, as `ConvLSTM`
takes them with `batch_first=True`. Only NumPy is needed; `bouncing_digits` also uses scikit-learn,
the radar PNGs OpenCV.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ._checks import check_int as _check_int
from ._radar_files import HKO7_FILENAME_FORMAT as HKO7_FILENAME_FORMAT
from ._radar_files import RADAR_INTERVAL_MINUTES as RADAR_INTERVAL_MINUTES
from ._radar_files import load_radar_pngs as load_radar_pngs
from ._radar_files import radar_png_times as radar_png_times
from ._radar_files import save_radar_pngs as save_radar_pngs

# How far a digit moves in one frame, as a fraction of the free range size - digit_size (Srivastava
# et al. 2015, whose generator uses the same step: 3.6 pixels a frame at 64 x 64 with 28 x 28 digits).
STEP = 0.1


def _check_sequences(name: str, x: Any) -> None:
    """Raises unless `x` is a NumPy array with a batch and a time axis."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(x).__name__}.")
    if x.ndim < 2:
        raise ValueError(f"{name} must have a batch and a time axis (N, T, ...), got shape {x.shape}.")


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
      >>> from convlstm_jax.data import load_moving_mnist
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
      >>> from convlstm_jax.data import bouncing_digits
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
      >>> from convlstm_jax.data import split_sequences
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
    """Maps uint8 pixels 0..255 to float32 values in [0, 1].

    Raises:
      TypeError: if `x` is not a uint8 NumPy array.

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.data import to_unit
      >>> to_unit(np.array([0, 51, 255], np.uint8))
      array([0. , 0.2, 1. ], dtype=float32)
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        found = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"to_unit takes a uint8 NumPy array, got {found}.")
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
      >>> from convlstm_jax.data import batch_indices
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
      >>> from convlstm_jax.data import copy_last_frame
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


# --- Radar ---------------------------------------------------------------------------------------

# The Z-R relation Z = a R^b of Marshall and Palmer (1948), pysteps' default: Z in mm^6 m^-3, R in mm/h.
ZR_A, ZR_B = 200.0, 1.6
# Pixels as HKO-7 stores radar frames: pixel = 255 (dBZ + 10) / 70, so 0..255 spans -10..60 dBZ.
DBZ_RANGE = (-10.0, 60.0)


def rain_to_dbz(rain: np.ndarray, a: float = ZR_A, b: float = ZR_B) -> np.ndarray:
    """Reflectivity in dBZ of a rain rate in mm/h, by Z = a R^b: 10 log10(a R^b); -inf where it is dry.

    Raises:
      ValueError: if a rate is negative (NaN stays NaN).

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.data import rain_to_dbz
      >>> np.round(rain_to_dbz(np.array([0.5, 1.0, 10.0])), 2)
      array([18.19, 23.01, 39.01])
    """
    rain = np.asarray(rain)
    rain = rain.astype(np.result_type(rain.dtype, np.float32))
    if (rain < 0).any():
        raise ValueError(f"rain rates must be >= 0 mm/h, got {rain[rain < 0].min()} (of shape {rain.shape}).")
    with np.errstate(divide="ignore"):
        return 10 * np.log10(a * rain**b)


def dbz_to_rain(dbz: np.ndarray, a: float = ZR_A, b: float = ZR_B) -> np.ndarray:
    """Rain rate in mm/h of a reflectivity in dBZ, by Z = a R^b: (10^(dBZ/10) / a)^(1/b).

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.data import dbz_to_rain
      >>> np.round(dbz_to_rain(np.array([23.0103, -np.inf])), 4)
      array([1., 0.])
    """
    dbz = np.asarray(dbz)
    dbz = dbz.astype(np.result_type(dbz.dtype, np.float32))
    return (10 ** (dbz / 10) / a) ** (1 / b)


def dbz_to_pixels(dbz: np.ndarray) -> np.ndarray:
    """uint8 pixels of reflectivities in dBZ, as HKO-7 stores them: 255 (dBZ + 10) / 70, rounded and
    clipped to 0..255 (-10 to 60 dBZ; a dry -inf is 0)."""
    low, high = DBZ_RANGE
    scaled = (np.asarray(dbz, np.float64) - low) * (255 / (high - low))
    return np.clip(np.rint(np.nan_to_num(scaled, neginf=0.0)), 0, 255).astype(np.uint8)


def pixels_to_dbz(pixels: np.ndarray) -> np.ndarray:
    """Reflectivities in dBZ of pixels 0..255 (uint8, or a float forecast of them): -10 + 70 p / 255."""
    low, high = DBZ_RANGE
    return (low + np.asarray(pixels, np.float32) * np.float32((high - low) / 255)).astype(np.float32)


def rain_to_pixels(rain: np.ndarray) -> np.ndarray:
    """uint8 pixels (HKO-7's encoding) of rain rates in mm/h: `dbz_to_pixels(rain_to_dbz(rain))`.

    Rates below 0.0086 mm/h (-10 dBZ) become 0, those above 205 mm/h (60 dBZ) 255.

    Examples:
      >>> import numpy as np
      >>> from convlstm_jax.data import pixels_to_rain, rain_to_pixels
      >>> pixels = rain_to_pixels(np.array([0.0, 0.5, 2.0, 10.0]))
      >>> pixels
      array([  0, 103, 138, 179], dtype=uint8)
      >>> np.round(pixels_to_rain(pixels), 2)  # a pixel is 0.27 dBZ: rates within 4 %
      array([ 0.  ,  0.51,  2.02, 10.18], dtype=float32)
    """
    return dbz_to_pixels(rain_to_dbz(rain))


def pixels_to_rain(pixels: np.ndarray) -> np.ndarray:
    """Rain rates in mm/h of pixels (HKO-7's encoding), float32; pixel 0 (-10 dBZ and below) is dry.

    A float forecast in [0, 255] maps the same way, continuously, with values of 0 and below dry.
    """
    pixels = np.asarray(pixels, np.float32)
    return np.where(pixels > 0, dbz_to_rain(pixels_to_dbz(pixels)), np.float32(0)).astype(np.float32)


def _check_real(name: str, value: Any, low: float, high: float = math.inf) -> float:
    """Returns `value` as a float; TypeError unless it is a real number, ValueError unless finite and in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    if not low <= value <= high:
        bounds = f"in [{low}, {high}]" if math.isfinite(high) else f">= {low}"
        raise ValueError(f"{name} must be {bounds}, got {value}.")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    return float(value)


def _wavenumbers(domain: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angular wavenumbers (ky, kx) of the real FFT (`np.fft.rfft2`) of a periodic domain of `domain`
    pixels, and |k| in cycles per domain."""
    ky = 2 * np.pi * np.fft.fftfreq(domain)[:, np.newaxis]
    kx = 2 * np.pi * np.fft.rfftfreq(domain)[np.newaxis, :]
    return ky, kx, np.hypot(ky, kx) * domain / (2 * np.pi)


def _power_law_noise(rngs: list[np.random.Generator], amplitude: np.ndarray) -> np.ndarray:
    """Real FFTs (B, D, D // 2 + 1) of zero-mean, unit-variance Gaussian fields of spectrum amplitude^2,
    one from each generator."""
    domain = amplitude.shape[0]
    white = np.stack([rng.standard_normal((domain, domain), dtype=np.float32) for rng in rngs])
    return np.fft.rfft2(white) * amplitude


def _advect(fields: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Fields (B, C, D, D) sampled at the points (rows, columns) (B, D, D), bilinearly, on a periodic domain."""
    batch, channels, domain, _ = fields.shape
    flat = fields.reshape(batch, channels, domain * domain)
    r0, c0 = np.floor(rows), np.floor(columns)
    wr = (rows - r0).reshape(batch, 1, -1).astype(fields.dtype)
    wc = (columns - c0).reshape(batch, 1, -1).astype(fields.dtype)
    r0, c0 = r0.astype(np.intp) % domain, c0.astype(np.intp) % domain
    r1, c1 = (r0 + 1) % domain, (c0 + 1) % domain

    def at(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.take_along_axis(flat, (r * domain + c).reshape(batch, 1, -1), axis=2)

    top = at(r0, c0) * (1 - wc) + at(r0, c1) * wc
    bottom = at(r1, c0) * (1 - wc) + at(r1, c1) * wc
    return (top * (1 - wr) + bottom * wr).reshape(fields.shape)


# Frames the generator runs before the first one it returns, so that the sequences start in the statistical
# steady state of advection (whose interpolation smooths the finest scales) and renewal.
SPIN_UP = 6


def synthetic_radar(
    num_sequences: int,
    num_frames: int = 20,
    *,
    size: int = 64,
    speed: tuple[float, float] = (1.0, 3.0),
    rotation: float = 0.02,
    turning: float = 0.02,
    wind_variability: float = 0.3,
    growth: float = 0.05,
    lifetime: float = 40.0,
    wet_fraction: float = 0.35,
    spectral_slope: float = 3.0,
    seed: int = 0,
    workers: int = 1,
) -> np.ndarray:
    """Sequences of synthetic radar rain fields in mm/h, moved by winds, growing and decaying.

    The physics, frame to frame (every `RADAR_INTERVAL_MINUTES`):

    - Rain is a threshold of a Gaussian field z with a power-law spectrum, |k|^-spectral_slope in
      2-D, as radar rain fields have (Seed 2003, pysteps' STEPS): where z exceeds its (1 -
      wet_fraction) quantile it rains, R = 0.1 mm/h * 10^(z - quantile) (10 dB per standard
      deviation: cores of 10-50 mm/h), elsewhere it is dry (intermittency).
    - The wind at each point is a mean wind of `speed` pixels a frame (uniform in the range, in a
      uniform direction) that turns at up to `turning` radians a frame, plus a divergence-free
      field: a vortex turning at up to `rotation` radians a frame at the frame's centre, and a
      smooth random flow of `wind_variability` times the mean speed. Rain moves with it,
      semi-Lagrangian (the value at a point comes from where the wind brought it from, bilinearly);
      the power the interpolation takes from the finest scales is given back to each ring of
      wavenumbers every frame, so the spectrum stays the power law.
    - Each scale evolves while it moves, in the wind's frame, by a second-order process (its
      change is itself an AR(1) field, as pysteps' STEPS uses AR(2)): the memory of a scale of L
      pixels is exp(-size / (2 lifetime L)) a frame, so small cells live shortly and large
      systems long (measured at lifetime 8 and size 32: patterns of 32, 16 and 8 pixels last
      about 10, 6 and 4 frames).
    - A smooth growth field g (one standard deviation 1), moving with the rain, adds a trend of
      `growth` t g at frame t: rain grows where g > 0 and decays where g < 0, 10 `growth` dB a
      frame where g is one standard deviation, which no extrapolation of motion can see. The
      threshold follows the spread of z + `growth` t g, so the wet area keeps `wet_fraction`,
      while the intensities spread with t (with the defaults, 10 dB per standard deviation at
      frame 0, 14 at frame 19).

    The sequences start after `SPIN_UP` frames of this evolution. The fields are made on a periodic
    domain twice the frame's side and cut from its centre, so rain enters and leaves through the
    edges. With 2 km pixels, the default speeds of 1-3 pixels a frame
    are 20-60 km/h. Easier for optical flow: `turning=rotation=wind_variability=growth=0` and a long
    `lifetime` (pure translation of a frozen pattern); harder: the opposite.

    Args:
      num_sequences: N, how many sequences.
      num_frames: T, frames per sequence.
      size: the side of the square frames, in pixels.
      speed: (low, high), the range of the mean wind's speed, in pixels a frame.
      rotation: the largest angular speed of the vortex, in radians a frame (drawn in +-rotation).
      turning: the largest rate at which the mean wind turns, in radians a frame (drawn in +-turning).
      wind_variability: the smooth random flow's typical speed, as a fraction of the mean speed.
      growth: the growth field's rate, in standard deviations of z a frame.
      lifetime: frames over which the largest scale (the frame's side) decorrelates.
      wet_fraction: the fraction of the area with rain, in (0, 1).
      spectral_slope: the 2-D power spectrum's exponent (the field's roughness: larger is smoother).
      seed: seeds the sequences; sequence n depends on (seed, n) alone, so the first k of N
        sequences are those of k.
      workers: threads that make the sequences, 16 at a time; the result is the same for any
        number.

    Returns:
      Rain rates in mm/h, float32 (N, T, size, size); `rain_to_pixels` makes training frames of them.

    Raises:
      TypeError: if an argument is not of its type.
      ValueError: if an argument is out of its range.

    Examples:
      >>> from convlstm_jax.data import rain_to_pixels, synthetic_radar
      >>> rain = synthetic_radar(2, 6, size=32, seed=1)
      >>> rain.shape, rain.dtype
      ((2, 6, 32, 32), dtype('float32'))
      >>> bool((rain == synthetic_radar(3, 6, size=32, seed=1)[:2]).all())
      True
      >>> rain_to_pixels(rain)[..., None].shape  # uint8 frames (N, T, H, W, 1), as training takes them
      (2, 6, 32, 32, 1)
    """
    num_sequences = _check_int("num_sequences", num_sequences, 1)
    num_frames = _check_int("num_frames", num_frames, 1)
    size = _check_int("size", size, 2)
    seed = _check_int("seed", seed, 0)
    workers = _check_int("workers", workers, 1)
    if not isinstance(speed, (tuple, list)) or len(speed) != 2:
        raise TypeError(f"speed must be a (low, high) pair of pixels a frame, got {speed!r}.")
    low = _check_real("speed[0]", speed[0], 0.0)
    high = _check_real("speed[1]", speed[1], low)
    rotation = _check_real("rotation", rotation, 0.0)
    turning = _check_real("turning", turning, 0.0)
    wind_variability = _check_real("wind_variability", wind_variability, 0.0)
    growth = _check_real("growth", growth, 0.0)
    lifetime = _check_real("lifetime", lifetime, 0.0)
    if lifetime == 0:
        raise ValueError("lifetime must be positive, got 0.")
    wet_fraction = _check_real("wet_fraction", wet_fraction, 0.0, 1.0)
    if wet_fraction in (0.0, 1.0):
        raise ValueError(f"wet_fraction must be strictly between 0 and 1, got {wet_fraction}.")
    spectral_slope = _check_real("spectral_slope", spectral_slope, 0.0)

    knobs = dict(
        num_frames=num_frames,
        size=size,
        speed=(low, high),
        rotation=rotation,
        turning=turning,
        wind_variability=wind_variability,
        growth=growth,
        lifetime=lifetime,
        wet_fraction=wet_fraction,
        spectral_slope=spectral_slope,
        seed=seed,
    )
    starts = list(range(0, num_sequences, _RADAR_CHUNK))
    counts = [min(_RADAR_CHUNK, num_sequences - start) for start in starts]
    if workers == 1 or len(starts) == 1:
        return np.concatenate([_radar_chunk(knobs, start, count) for start, count in zip(starts, counts)])
    import concurrent.futures

    # Threads: NumPy's FFTs and array arithmetic release the GIL.
    with concurrent.futures.ThreadPoolExecutor(min(workers, len(starts))) as pool:
        return np.concatenate(list(pool.map(_radar_chunk, [knobs] * len(starts), starts, counts)))


# Sequences made together, as one batch of arrays (and one task of a worker).
_RADAR_CHUNK = 16


def _radar_chunk(knobs: dict[str, Any], first: int, count: int) -> np.ndarray:
    """Sequences first, ..., first + count - 1 of `synthetic_radar` with the checked `knobs`."""
    from statistics import NormalDist

    num_frames, size, seed = knobs["num_frames"], knobs["size"], knobs["seed"]
    (low, high), rotation, turning = knobs["speed"], knobs["rotation"], knobs["turning"]
    wind_variability, growth, lifetime = knobs["wind_variability"], knobs["growth"], knobs["lifetime"]
    wet_fraction, spectral_slope = knobs["wet_fraction"], knobs["spectral_slope"]
    domain = 2 * size
    ky, kx, cycles = _wavenumbers(domain)
    scale = np.maximum(cycles, 1.0)  # the mean (k = 0) is set apart below

    def amplitude(slope: float) -> np.ndarray:
        a = scale ** (-slope / 2)
        a[0, 0] = 0.0
        full = np.concatenate([a, a[:, 1 : domain - a.shape[1] + 1]], axis=1)  # the other half of the spectrum
        return (a / np.sqrt((full**2).sum() / domain**2)).astype(np.float32)  # unit variance in real space

    rain_amplitude, smooth_amplitude = amplitude(spectral_slope), amplitude(spectral_slope + 4)
    # AR(1) per scale: a wave of `cycles` per domain (2 per frame side) keeps its pattern ~ lifetime * 2 / cycles.
    memory = np.exp(-scale / (2 * lifetime)).astype(np.float32)
    renewal = np.sqrt(1 - memory**2)
    threshold = NormalDist().inv_cdf(1 - wet_fraction)
    # Rings of whole wavenumbers (cycles per domain) and the power a unit-variance field of the spectrum
    # rain_amplitude^2 has in each: the real FFT of unit white noise has E|X|^2 = domain^2 per coefficient.
    rings = np.rint(cycles).astype(np.intp)
    ring_count = int(rings.max()) + 1
    ring_power = np.bincount(rings.ravel(), (domain**2 * rain_amplitude.astype(np.float64) ** 2).ravel(), ring_count)
    ring_offsets = np.arange(count)[:, np.newaxis, np.newaxis] * ring_count
    grid = np.arange(domain, dtype=np.float32)
    rows, columns = np.meshgrid(grid, grid, indexing="ij")
    centre = domain / 2 - 0.5
    # A vortex of angular speed 1 at the centre, periodic: streamfunction cos(k y) cos(k x) / k^2.
    k1 = 2 * np.pi / domain
    # u = d(psi)/dy along the columns, v = -d(psi)/dx down the rows: near the centre u = -dy, v = dx.
    y, x = k1 * (rows - centre + domain / 2), k1 * (columns - centre + domain / 2)
    vortex_u = (-np.sin(y) * np.cos(x) / k1).astype(np.float32)
    vortex_v = (np.cos(y) * np.sin(x) / k1).astype(np.float32)

    crop = slice(size // 2, size // 2 + size)
    out = np.empty((count, num_frames, size, size), np.float32)
    rngs = [np.random.default_rng([seed, n]) for n in range(first, first + count)]
    draws = np.array(
        [
            [
                rng.uniform(low, high),
                rng.uniform(0, 2 * np.pi),
                rng.uniform(-turning, turning),
                rng.uniform(-rotation, rotation),
            ]
            for rng in rngs
        ]
    )
    mean_speed, direction, turn, spin = (draws[:, i, np.newaxis, np.newaxis].astype(np.float32) for i in range(4))
    # A smooth divergence-free flow of typical speed 1, from a random streamfunction.
    stream = _power_law_noise(rngs, smooth_amplitude)
    flow_v = np.fft.irfft2(1j * kx * stream, s=(domain, domain))  # down the rows: d(psi)/dx
    flow_u = np.fft.irfft2(-1j * ky * stream, s=(domain, domain))  # along the columns: -d(psi)/dy
    typical = np.sqrt(np.mean(flow_u**2 + flow_v**2, axis=(1, 2), keepdims=True))
    flow_v, flow_u = flow_v / typical, flow_u / typical
    z = np.fft.irfft2(_power_law_noise(rngs, rain_amplitude), s=(domain, domain))
    z = (z - z.mean(axis=(1, 2), keepdims=True)) / z.std(axis=(1, 2), keepdims=True)
    g = np.fft.irfft2(_power_law_noise(rngs, smooth_amplitude), s=(domain, domain))
    # The change of z, itself an AR(1) process of the same memory moving with the rain: z evolves
    # smoothly in time (second order, as the AR(2) of pysteps' STEPS) instead of jittering.
    change = np.fft.irfft2(_power_law_noise(rngs, rain_amplitude), s=(domain, domain))
    for t in range(-SPIN_UP, num_frames):
        if t > -SPIN_UP:
            heading = direction + turn * t
            v = mean_speed * (np.sin(heading) + wind_variability * flow_v) + spin * vortex_v
            u = mean_speed * (np.cos(heading) + wind_variability * flow_u) + spin * vortex_u
            moved = _advect(np.stack([z, g, change], axis=1), rows - v, columns - u)
            g = moved[:, 1]
            change_spectrum = memory * np.fft.rfft2(moved[:, 2]) + renewal * _power_law_noise(rngs, rain_amplitude)
            change = np.fft.irfft2(change_spectrum, s=(domain, domain))
            mixed = memory * np.fft.rfft2(moved[:, 0]) + renewal * change_spectrum
            # Interpolation damps the finest scales a little at every frame: each ring of wavenumbers
            # gets its power back, so the spectrum stays the power law frame after frame.
            power = np.bincount(
                (ring_offsets + rings).ravel(),
                (np.abs(mixed) ** 2).ravel(),
                minlength=len(rngs) * ring_count,
            ).reshape(len(rngs), ring_count)
            gain = np.sqrt(ring_power / np.maximum(power, 1e-30))
            mixed = mixed * gain[np.arange(len(rngs))[:, np.newaxis, np.newaxis], rings].astype(np.float32)
            z = np.fft.irfft2(mixed, s=(domain, domain))
            z = (z - z.mean(axis=(1, 2), keepdims=True)) / z.std(axis=(1, 2), keepdims=True)
        if t >= 0:
            # Growth where g > 0, decay where g < 0, at `growth` standard deviations a frame; the threshold
            # follows the spread of z + trend g, so that the wet area stays `wet_fraction`.
            trend = np.float32(growth * t)
            rain_z = z[:, crop, crop] + trend * g[:, crop, crop] - threshold * np.sqrt(1 + trend**2)
            out[:, t] = np.where(rain_z > 0, 0.1 * 10**rain_z, 0.0)
    return out
