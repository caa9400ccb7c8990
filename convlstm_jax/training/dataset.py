"""The sequences a run trains and validates on: `load_data`."""

from __future__ import annotations

import os

import numpy as np

from ..nowcasting import rain_to_pixels, synthetic_radar
from ..nowcasting.readers import load_hko7_rain
from ..nowcasting.units import rain_to_pixel_values
from .config import ConfigError, TrainConfig
from .digits import bouncing_digits, load_moving_mnist


def _pixels(rain: np.ndarray) -> np.ndarray:
    """Rain rates (N, T, H, W) in mm/h as HKO-7's pixels by Marshall-Palmer (`nowcasting.units`), (N, T, H, W, 1):
    uint8 where no rate is missing, else float32 pixels with NaN where missing."""
    pixels = rain_to_pixel_values(rain)
    if not np.isnan(pixels).any():
        pixels = np.rint(pixels).astype(np.uint8)
    return pixels[..., np.newaxis]


def load_data(config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation sequences, (N, input_frames + output_frames, H, W, 1).

    With `data="embedded"`, `train_sequences + val_sequences` sequences of two bouncing digits
    (`digits.bouncing_digits`, digits 7/16 of the frame's side, seeded by `seed`), the first ones for
    training. With `data="radar"`, as many sequences of synthetic radar (`nowcasting.synthetic_radar`
    with its defaults, seeded by `seed`) as HKO-7 stores its frames (`nowcasting.rain_to_pixels`). From
    a Moving MNIST file, a folder of radar PNGs (`nowcasting.readers.load_hko7_rain`: HKO-7's Z-R and
    masks, resized to `size`) or a radar archive (`data="pysteps:NAME"` or `"source"`:
    `nowcasting.sources.load_source` on `config.grid` and `config.pixel_km`), the first
    `train_sequences` for training and the last `val_sequences` for validation, each cut to its
    first `input_frames + output_frames` frames: the split depends on the files alone (for radar,
    the latest sequences validate).

    Digits and Moving MNIST are uint8. Radar is HKO-7's pixels of its rain rates, by Marshall-Palmer
    (`nowcasting.rain_to_pixels`, the encoding every radar pixel of this library has, whatever Z-R
    the source itself uses), so that the balanced loss's rain-rate weights and the scores in mm/h
    hold for every source: uint8 where no pixel is missing, else float32 pixels with NaN where
    missing (outside a radar's range, or masked by HKO-7). The frames are `config.interval_minutes`
    apart.

    Raises:
      ConfigError: if the file, folder or archive is missing or unreadable, has too few sequences or
        frames, gaps that leave no run long enough, frames of two sizes or apart by other than the
        source's timestep, or frames that are not `size` x `size`.
    """
    wanted = config.train_sequences + config.val_sequences
    if config.data in ("embedded", "radar"):
        if config.data == "embedded":
            digit_size = max(1, config.size * 7 // 16)  # 28 pixels in a 64-pixel frame, as Moving MNIST
            sequences = bouncing_digits(
                wanted, config.frames, size=config.size, digit_size=digit_size, seed=config.seed
            )
        else:
            rain = synthetic_radar(
                wanted, config.frames, size=config.size, seed=config.seed, workers=os.cpu_count() or 1
            )
            sequences = rain_to_pixels(rain)
            sequences = sequences[..., np.newaxis]
        return sequences[: config.train_sequences], sequences[config.train_sequences :]
    try:
        source = config.radar_source()
        if source is not None:
            from ..nowcasting.sources import load_source

            rain = load_source(
                source, frames_per_sequence=config.frames, size=config.size, grid=config.grid, pixel_km=config.pixel_km
            ).rain
            sequences = _pixels(rain)
        elif config.radar:
            sequences = _pixels(load_hko7_rain(config.data, frames_per_sequence=config.frames, size=config.size))
        else:
            sequences = load_moving_mnist(config.data)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(str(error)) from None
    count, frames, height, width, _ = sequences.shape
    if (height, width) != (config.size, config.size):
        raise ConfigError(f"The frames of {config.data!r} are {height}x{width}; pass --size {height} to use them.")
    if frames < config.frames:
        raise ConfigError(
            f"{config.data!r} has {frames} frames a sequence, fewer than "
            f"input_frames + output_frames = {config.frames}."
        )
    if count < wanted:
        raise ConfigError(
            f"{config.data!r} has {count} sequences, fewer than train_sequences + val_sequences = {wanted}."
        )
    keep = slice(0, config.frames)
    return sequences[: config.train_sequences, keep].copy(), sequences[count - config.val_sequences :, keep].copy()
