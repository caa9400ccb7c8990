"""The options of a training run: `TrainConfig`, its defaults and its checks, and `ConfigError`."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from convlstm_common import parse_network

# Options that only schedule a run: they may change when a run is resumed.
SCHEDULE_OPTIONS = ("steps", "eval_every", "checkpoint_every", "keep_checkpoints", "workdir", "progress", "sharding")


class ConfigError(ValueError):
    """A run cannot start: an invalid option, unusable data, or a workdir written by another run."""


def _option(default: Any, help: str, **parser_kwargs: Any) -> Any:
    """A `TrainConfig` field with its command-line help (and any other `add_argument` keyword)."""
    return dataclasses.field(default=default, metadata={"help": help, **parser_kwargs})


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run; `convlstm-train --option-name` sets the field `option_name`.

    Each field is described by its command-line help (`convlstm-train --help`, or the field's
    `metadata["help"]`).

    The default model is a one-layer encoder and forecaster of 32 hidden states on 4 x 4 patches of
    64 x 64 frames, trained by RMSProp for 600 steps of 8 sequences: about five minutes on two CPU
    cores, after which its validation MSE is half that of repeating the last input frame. Its
    forecasts are still blurred at that point (their SSIM is below the baseline's); longer runs and
    the network of the paper (Table 1), `--spec "ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64"`, sharpen them.

    On radar (`data="radar"`), the preset `radar` (`TrainConfig.from_preset("radar")`, which
    `convlstm-train --data radar` starts from) reads 5 frames and forecasts 10, trains 3000 steps
    by HKO-7's balanced loss: about ten minutes on two CPU cores, after which the model beats
    persistence in CSI at 0.5 mm/h at every lead time (`convlstm_jax.nowcasting`). The presets
    `paper-radar` and `paper-digits` are the paper's configurations, for a GPU.

    Invalid values raise `ConfigError` on construction, except those that depend on the data or
    the devices, which `train` checks before it starts.
    """

    spec: str = _option(
        "ConvLSTM(3x3)-3x3-32",
        "the network in the notation of Shi et al. 2015: 'ConvLSTM(<input kernel>)' then "
        "'-<state kernel>-<hidden states>' per layer",
    )
    patch_size: int = _option(4, "the side of the square patches the frames are cut into (the paper: 4)")
    peephole: str = _option("hadamard", "the peephole connections", choices=("hadamard", "conv", "none"))
    data: str = _option(
        "embedded",
        "'embedded' (bouncing digits made offline), 'radar' (synthetic radar echoes made offline, scored "
        "against persistence and optical flow), 'pysteps:NAME' (a radar archive as pysteps' data source NAME "
        "lays it out: knmi, mch, fmi, bom, ...; with --data-root), 'source' (the radar archive of "
        "--data-source), the path of mnist_test_seq.npy, or a folder of radar PNGs in HKO-7's layout",
        metavar="{embedded,radar,pysteps:NAME,source,PATH}",
    )
    data_root: str | None = _option(
        None,
        "the root folder of a radar archive's layout (pysteps' root_path) for --data pysteps:NAME; with "
        "--data source, replaces the JSON's root_path",
        type=str,
        metavar="DIR",
    )
    data_source: str | None = _option(
        None,
        "with --data source: a JSON object of pysteps' data-source settings (root_path, path_fmt, fn_pattern, "
        "fn_ext, importer, importer_kwargs, timestep)",
        type=str,
        metavar="FILE.json",
    )
    grid: str = _option(
        "tiles",
        "how radar archive frames become size x size frames: every whole tile after block means to "
        "--pixel-km, the central crop after them, or the central square downscaled by block means",
        choices=("tiles", "crop", "downscale"),
    )
    pixel_km: float | None = _option(
        2.0,
        "the pixel side in km that radar archive frames are block-averaged to for --grid tiles or crop "
        "('none': the archive's pixels)",
        type=_optional_float,
        metavar="KM",
    )
    train_sequences: int = _option(
        1024, "training sequences; from a file, its first ones (the validation ones are its last)"
    )
    val_sequences: int = _option(64, "validation sequences")
    size: int = _option(64, "the side of the square frames, in pixels")
    input_frames: int = _option(10, "frames the model reads")
    output_frames: int = _option(10, "frames the model forecasts")
    batch_size: int = _option(8, "sequences per training step (and per evaluation batch)")
    steps: int = _option(600, "training steps in all, counting those of a resumed run")
    loss: str = _option(
        "cross_entropy",
        "the training loss: the paper's cross-entropy, or HKO-7's balanced MSE + MAE for radar (metrics.balanced_loss)",
        choices=("cross_entropy", "balanced"),
    )
    optimizer: str = _option("rmsprop", "the optimiser (the paper: RMSProp)", choices=("rmsprop", "adam"))
    learning_rate: float = _option(1e-3, "the learning rate")
    decay: float = _option(0.9, "RMSProp's decay of the mean squared gradient (ignored by Adam)")
    clip_norm: float | None = _option(
        None, "clip the gradient to this global norm ('none': no clipping)", type=_optional_float, metavar="X"
    )
    seed: int = _option(0, "seeds the embedded digits, the initial parameters and the order of the batches")
    eval_every: int = _option(100, "steps between evaluations on the validation set (0: at the end only)")
    checkpoint_every: int = _option(200, "steps between checkpoints (0: at the end only)")
    keep_checkpoints: int = _option(3, "how many of the latest checkpoints to keep")
    workdir: str = _option("convlstm_run", "where the run's files go; a checkpoint there is resumed", metavar="DIR")
    sharding: str = _option(
        "none",
        "split each batch over the devices along its sequences ('data') or its frame rows ('spatial')",
        choices=("none", "data", "spatial"),
    )
    progress: bool = _option(True, "show a progress bar (only on a terminal)")

    def __post_init__(self) -> None:
        positive = ("patch_size", "train_sequences", "val_sequences", "size", "input_frames", "output_frames")
        for name in (*positive, "batch_size", "steps", "keep_checkpoints"):
            _check_int(name, getattr(self, name), 1)
        for name in ("eval_every", "checkpoint_every", "seed"):
            _check_int(name, getattr(self, name), 0)
        for name in ("peephole", "loss", "optimizer", "sharding", "grid"):
            choices = _field(name).metadata["choices"]
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {choices}, got {getattr(self, name)!r}.")
        try:
            parse_network(self.spec)
        except (TypeError, ValueError) as error:
            raise ConfigError(str(error)) from None
        if self.size % self.patch_size:
            raise ConfigError(
                f"{self.size}x{self.size} frames do not cut into {self.patch_size}x{self.patch_size} patches: "
                f"size must be a multiple of patch_size."
            )
        if self.batch_size > self.train_sequences:
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be at most train_sequences ({self.train_sequences})."
            )
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}.")
        if not 0 <= self.decay < 1:
            raise ConfigError(f"decay must be in [0, 1), got {self.decay}.")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ConfigError(f"clip_norm must be positive or None, got {self.clip_norm}.")
        if self.pixel_km is not None and not self.pixel_km > 0:
            raise ConfigError(f"pixel_km must be positive or None, got {self.pixel_km}.")
        self.radar_source()

    def radar_source(self) -> Any:
        """The radar archive of `data="pysteps:NAME"` or `data="source"`, a
        `nowcasting.sources.RadarSource`; None for other data.

        Raises:
          ConfigError: if pysteps has no source NAME, the root or the JSON file is missing, the JSON is not
            a source's settings, or `data_root`/`data_source` are given for other data.
        """
        archive = self.data.startswith("pysteps:") or self.data == "source"
        if self.data_source is not None and self.data != "source":
            raise ConfigError(f"data_source is read with data='source', got data={self.data!r}.")
        if self.data_root is not None and not archive:
            raise ConfigError(
                f"data_root is the root of a radar archive (data='pysteps:NAME' or 'source'), got data={self.data!r}."
            )
        if not archive:
            return None
        try:
            from ..nowcasting.sources import RadarSource
        except ImportError as error:
            raise ConfigError(f"data={self.data!r} reads radar through pysteps (the nowcast extra): {error}") from None
        try:
            if self.data == "source":
                if self.data_source is None:
                    raise ConfigError("data='source' reads the radar source of data_source (a JSON file); none given.")
                source = RadarSource.from_json(self.data_source, self.data_root)
            else:
                if self.data_root is None:
                    raise ConfigError(f"data={self.data!r} needs data_root, the root folder of the archive's layout.")
                source = RadarSource.from_pysteps(self.data.removeprefix("pysteps:"), self.data_root)
        except (OSError, TypeError, ValueError) as error:
            if isinstance(error, ConfigError):
                raise
            raise ConfigError(str(error)) from None
        if not os.path.isdir(source.root_path):
            raise ConfigError(f"The root of radar source {source.name!r}, {source.root_path!r}, is not a folder.")
        return source

    @property
    def interval_minutes(self) -> float:
        """Minutes between the data's frames: a radar archive's timestep, else
        `nowcasting.RADAR_INTERVAL_MINUTES` (the synthetic radar and HKO-7's PNGs)."""
        from ..nowcasting.readers import RADAR_INTERVAL_MINUTES

        source = self.radar_source()
        return float(RADAR_INTERVAL_MINUTES if source is None else source.timestep)

    @classmethod
    def from_preset(cls, name: str, **options: Any) -> TrainConfig:
        """The options of preset `name` (a key of `PRESETS`), with `options` over them.

        Example:
          >>> config = TrainConfig.from_preset("paper-radar", steps=100)
          >>> config.spec, config.size, config.patch_size, config.input_frames, config.output_frames, config.steps
          ('ConvLSTM(3x3)-3x3-64-3x3-64', 100, 2, 5, 15, 100)
        """
        if name not in PRESETS:
            raise ConfigError(f"preset must be one of {tuple(PRESETS)}, got {name!r}.")
        return cls(**{**PRESETS[name], **options})

    @property
    def radar(self) -> bool:
        """Whether the data are radar echoes (`data="radar"`, a radar archive or a folder of radar PNGs), whose run is
        scored as nowcasts (`convlstm_jax.nowcasting`)."""
        return (
            self.data in ("radar", "source")
            or self.data.startswith("pysteps:")
            or (self.data != "embedded" and os.path.isdir(self.data))
        )

    @property
    def frames(self) -> int:
        """Frames per sequence: `input_frames + output_frames`."""
        return self.input_frames + self.output_frames


# Named sets of options: `TrainConfig.from_preset(name)` and `convlstm-train --preset NAME`. Options given
# beside a preset win over it.
PRESETS: dict[str, dict[str, Any]] = {
    # The synthetic radar on two CPU cores in about ten minutes, beating persistence at every lead time:
    # 5 frames in (30 minutes) and 10 out (an hour), HKO-7's balanced loss. `convlstm-train --data radar`
    # starts from it.
    "radar": {"data": "radar", "input_frames": 5, "loss": "balanced", "steps": 3000},
    # Shi et al. 2015, Sec. 4.2, for a GPU: 5 radar frames in and 15 out (30 minutes, then 90), 100 x 100
    # frames as 50 x 50 x 4 tensors (2 x 2 patches), two layers of 64 hidden states with 3 x 3 kernels.
    # The sequences are synthetic radar; their number, the batch and the steps are this library's choice.
    "paper-radar": {
        "data": "radar",
        "spec": "ConvLSTM(3x3)-3x3-64-3x3-64",
        "size": 100,
        "patch_size": 2,
        "input_frames": 5,
        "output_frames": 15,
        "train_sequences": 8192,
        "val_sequences": 256,
        "batch_size": 16,
        "steps": 20000,
        "eval_every": 1000,
        "checkpoint_every": 1000,
    },
    # Shi et al. 2015, Sec. 4.1, for a GPU: the network of Table 1 on 64 x 64 bouncing digits, 10 frames in
    # and 10 out, 4 x 4 patches, batches of 16.
    "paper-digits": {
        "spec": "ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64",
        "train_sequences": 10000,
        "val_sequences": 256,
        "batch_size": 16,
        "steps": 20000,
        "eval_every": 1000,
        "checkpoint_every": 1000,
    },
}


def _field(name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(TrainConfig) if f.name == name)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an int, got {value!r}.")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}.")
