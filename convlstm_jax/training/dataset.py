"""The sequences a run trains and validates on: `load_data`."""

from __future__ import annotations

import os

import numpy as np

from ..nowcasting import load_radar_pngs, rain_to_pixels, synthetic_radar
from .config import ConfigError, TrainConfig
from .digits import bouncing_digits, load_moving_mnist


def load_data(config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation sequences, uint8 (N, input_frames + output_frames, H, W, 1).

    With `data="embedded"`, `train_sequences + val_sequences` sequences of two bouncing digits
    (`digits.bouncing_digits`, digits 7/16 of the frame's side, seeded by `seed`), the first ones for
    training. With `data="radar"`, as many sequences of synthetic radar (`nowcasting.synthetic_radar`
    with its defaults, seeded by `seed`) as HKO-7 stores its frames (`nowcasting.rain_to_pixels`). From
    a Moving MNIST file, or a folder of radar PNGs (`nowcasting.load_radar_pngs`, resized to `size`), the
    first `train_sequences` for training and the last `val_sequences` for validation, each cut to
    its first `input_frames + output_frames` frames: the split depends on the files alone (for
    radar, the latest sequences validate).

    Raises:
      ConfigError: if the file or folder is missing or unreadable, has too few sequences or
        frames, or its frames are not `size` x `size`.
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
        if config.radar:
            sequences = load_radar_pngs(config.data, frames_per_sequence=config.frames, size=config.size)
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
