"""`convlstm-convert`: a ConvLSTM from one format to another, checked against the source.

    convlstm-convert SOURCE DEST [--config FILE.json] [--shape B,T,H,W] [--seed N] [--prefix P]

    convlstm-convert model.pt model.msgpack            # torch state_dict -> Flax msgpack (and model.msgpack.json)
    convlstm-convert model.msgpack model.onnx          # reads model.msgpack.json; writes model.onnx.json
    convlstm-convert model.safetensors model.stablehlo --shape 1,8,64,64
    convlstm-convert model.pt checkpoints/convlstm     # an orbax checkpoint directory
    convlstm-convert model.pt model.onnx --config options.json   # what the weights do not hold: {"stride": 2}
    convlstm-convert model.keras model.pt              # a Keras 3 ConvLSTM2D stack
    convlstm-convert model.weights.h5 model.msgpack --config model.keras
    convlstm-convert openstl.pth predictor.msgpack --config openstl.json
                    # {"patch_size": 4, "in_shape": [20, 1, 64, 64], "pre_seq_length": 10, "aft_seq_length": 10}

Formats, by extension (a directory, or a path without an extension, is an orbax checkpoint):

A torch state_dict (also a KL4805 or ndrplz checkpoint, whose keys are the reference's) and an
OpenSTL checkpoint share extensions: an OpenSTL one is told by its keys. Every model passes through
one form, a Linen `convlstm_jax.ConvLSTM`, `convlstm_jax.Bidirectional`, or for OpenSTL's whole
`ConvLSTM_Model` a `convlstm_jax.FramePredictor`, and its variables. A `FramePredictor` is written
as .msgpack, orbax or .stablehlo (it has no torch twin, so no torch or ONNX form).

The ONNX and StableHLO files take any batch size and any frame size (H, W: --shape only sets the
check's input), each axis from the least the convolutions take (ONNX: at least 2 positions in the
frame and in every layer's state; a FramePredictor's: multiples of its patch size); ONNX and
StableHLO files of a ConvLSTM take any sequence length, a FramePredictor's StableHLO file the T of
the check. A model with layer norm takes only the frame size of the check (--shape, or the layer
norms' own): its norms' weights are for that size; the command says so when it writes one.

The configuration beside the weights: DEST's whole name with .json added (model.onnx.json beside
model.onnx, so that model.msgpack.json beside model.msgpack is another; for an orbax directory,
DEST/config.json) holds {"kind": "ConvLSTM", "Bidirectional" or "FramePredictor",
"options": every constructor keyword of the Linen model (a Bidirectional's layer's), "merge" (a
Bidirectional's), "source": SOURCE, "format": SOURCE's format}. Per-layer sizes are written as
lists per layer of lists per axis, as --config takes them. Where SOURCE has such a file beside it,
it is read: torch -> msgpack -> onnx needs no --config. The name earlier versions wrote (model.json
beside model.msgpack) is read too, where no other model file (model.onnx, model.pt) shares its
stem. DEST's configuration is never written over the --config file or over a JSON file this
command did not write (exit 2). convlstm-parity --checkpoint --config reads it as it is.

--config FILE.json gives what the weights do not hold, over the file beside SOURCE, key by key:

- torch, safetensors, msgpack, orbax: a JSON object of convlstm_torch.ConvLSTM keywords, as
  `convlstm-parity --checkpoint --config` takes it ({"padding": "valid", "stride": [[2, 2], [1, 1]]},
  {"bidirectional": {"merge": "sum"}}; a list of lists gives one size per axis for each layer), or
  a file in the form written beside the weights, whose "options" may also hold the Linen-only
  keywords (such as {"kind": "ConvLSTM", "options": {"channels_last": false}} for ONNX and
  StableHLO files in torch's layout). Sizes, kernels, peephole, bias and layer norm are read from
  the weights; padding, stride and dilation are not in them (without a config: "same", 1, 1, or as
  the notes say). A FramePredictor's msgpack or orbax needs its config.
- OpenSTL: OpenSTL's configs by its names (patch_size, in_shape [T, C, H, W], pre_seq_length,
  aft_seq_length; filter_size, stride, layer_norm, num_hidden are checked against the weights):
  needed for the whole model (a FramePredictor); cells alone are a ConvLSTM reading OpenSTL's
  patch channels.
- .weights.h5: the Keras architecture: the path of a .keras file, or a JSON file holding the Keras
  config (model.get_config(), or keras.saving.serialize_keras_object's dict). Without --config,
  NAME.keras beside NAME.weights.h5 is the architecture. A .keras file holds its own.

--prefix P strips a key prefix from a torch or OpenSTL state_dict (such as "module."); a
convlstm_torch.models.EncoderForecaster's stacks convert one at a time (--prefix encoder.).

The check, before success is reported: a random normal input (--seed, default 0) of --shape
(default: batch 2, 3 steps, 16 per spatial axis, or the layer norms' frame size, or the frame size
a Keras model fixes; a FramePredictor reads pre_seq_length frames, of a multiple of its patch size;
the channels are the model's) runs
through SOURCE in its own framework (the torch reference convlstm_torch for torch state_dicts;
Keras on the JAX backend for Keras files; the Linen model for msgpack and orbax; for OpenSTL, which
is not a dependency, the Linen model convlstm_jax.from_openstl builds) and through DEST in its
own runtime (the torch reference loading the written file; onnxruntime; convlstm_jax.interop.stablehlo.load;
the Linen model with the variables read back from the msgpack or orbax). Every returned output and
final state (for Keras, what the Keras model returns; for a FramePredictor, the generated frames) is
compared at the float32 tolerance (convlstm_common.tolerance), under
jax.default_matmul_precision("highest"); StableHLO artifacts are traced under it too. Layouts: the
torch reference takes (B, T, C, H, W); the Linen model, the ONNX and StableHLO files take its own
(channels-last by default; time-major where batch_first is false).

Exit status: 0 when the check passes (printing what was read, what was written and the check's
worst score, a fraction of the tolerance: <= 1 passes); 1 when it fails (the files stay written);
2, with one message on stderr, on anything that cannot be converted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from convlstm_common import check_frame, spatial_axes
from convlstm_common.tolerance import tolerance_for

from . import config as configs
from . import formats
from .checkpoints import checkpoint_options, checkpoint_stacks, parse_shape, read_checkpoint
from .formats import FORMATS, Format, format_of, get_format

PROG = "convlstm-convert"
_DOC = __doc__  # the table of formats is made from the registry: `_usage`

KINDS = configs.KINDS
DEFAULT_SIDE = 16
DEFAULT_BATCH, DEFAULT_STEPS = 2, 3

_KERAS_WEIGHTS = ".weights.h5"
_OPENSTL_KEY = re.compile(r"(^|\.)cell_list\.\d+\.conv_[xh]\.0\.weight$")


# --- the internal form ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Loaded:
    """A model read from a file: the internal form, and how to run the file in its own framework.

    Attributes:
      model: a Linen `convlstm_jax.ConvLSTM`, `Bidirectional` or `FramePredictor`.
      variables: its variables, `{"params": ...}`.
      format: the file's format (a key of `formats.FORMATS`).
      path: the file.
      run: a random input (B, T, *frame, C) in, the file's results out, computed in its own
        framework, by name (`_results`), batch-first and channels-last.
      runtime: where `run` computes, for the report.
      notes: what was assumed where the file is silent.
      frame: the frame size the file fixes (a Keras model's input shape), or None.
    """

    model: Any
    variables: dict[str, Any]
    format: str
    path: Path
    run: Callable[[np.ndarray], dict[str, np.ndarray]]
    runtime: str
    notes: list[str] = dataclasses.field(default_factory=list)
    frame: tuple[int, ...] | None = None

    @property
    def kind(self) -> str:
        return type(self.model).__name__


_Config = configs.ModelConfig


# --- formats and files ------------------------------------------------------------------------------------


def config_path(path: Path, fmt: str) -> Path:
    """Where the configuration beside a model file is: the whole file name with .json added (so that
    model.msgpack and model.onnx keep one each), or DIR/config.json for an orbax directory.

    >>> str(config_path(Path("out/model.msgpack"), "msgpack")), str(config_path(Path("ckpt"), "orbax"))
    ('out/model.msgpack.json', 'ckpt/config.json')
    """
    beside = get_format(fmt).beside
    return configs.config_path(path, fmt) if beside is None else beside(path)


def _legacy_config(path: Path, fmt: str) -> tuple[Path | None, list[str]]:
    """The configuration of the name earlier versions wrote (model.json beside model.msgpack), where
    no other model file shares that name's stem (but the one it names as its source); else None, and
    a note on why it is not read."""
    legacy = path.with_suffix(".json")
    own = get_format(fmt)
    if own.directory or own.beside is not None or not legacy.is_file():
        return None, []
    try:
        source = json.loads(legacy.read_bytes()).get("source")
    except (OSError, ValueError, AttributeError):
        source = None  # read, and reported, as the configuration
    source = Path(source).name if isinstance(source, str) else None
    others = sorted(
        other.name
        for other in path.parent.iterdir()
        if other.name not in (path.name, source)
        and any(other.suffix.lower() in known.extensions for known in FORMATS.values())
        and other.with_suffix(".json") == legacy
    )
    if others:
        return None, [
            f"note: {legacy} may describe {', '.join(others)} as well as {path.name}: not read. Name it "
            f"{config_path(path, fmt).name} if it is {path.name}'s."
        ]
    return legacy, []


def _check_config_target(target: Path, user: Path | None) -> None:
    """Refuses to write DEST's configuration over the --config file or a JSON file this command did not write."""
    if user is not None and user.exists() and target.exists() and target.resolve() == user.resolve():
        raise ValueError(
            f"DEST's configuration goes to {target}, which is the --config file: give DEST another name, or move "
            "the --config file."
        )
    if target.is_file():
        try:
            own = "kind" in json.loads(target.read_bytes())
        except (OSError, ValueError, TypeError):
            own = False
        if not own:
            raise ValueError(
                f"DEST's configuration goes to {target}, which exists and is not a {PROG} configuration (no "
                '"kind"): it would be overwritten. Give DEST another name, or move that file.'
            )
    if target.exists() and not target.is_file():
        raise ValueError(f"DEST's configuration goes to {target}, which is not a file.")


def _plan(source: Path, dest: Path, user: Path | None = None) -> tuple[str, str]:
    """The formats of SOURCE and DEST; refuses, before any work, what cannot be converted."""
    source_format, dest_format = format_of(source, "SOURCE"), format_of(dest, "DEST")
    if source_format.reader is None:
        label = source_format.label
        raise ValueError(
            f"SOURCE {source}: {label} is written, not read: {PROG} has no {label} importer. It reads "
            f"{formats.families(formats.readable())}."
        )
    if dest_format.writer is None:
        raise ValueError(
            f"DEST {dest}: {dest_format.label} files are read, not written. {PROG} writes "
            f"{formats.families(formats.writable())}."
        )
    if not source.exists():
        what = "directory" if source_format.directory else "file"
        raise ValueError(f"SOURCE {source}: no such {what}.")
    if source_format.directory and not source.is_dir():
        raise ValueError(
            f"SOURCE {source} is a file without an extension; an {source_format.name} checkpoint is a directory."
        )
    if not source_format.directory and not source.is_file():
        raise ValueError(f"SOURCE {source} is not a file.")
    if dest.exists() and dest.resolve() == source.resolve():
        raise ValueError(f"DEST {dest} is SOURCE: give another path.")
    if not dest.absolute().parent.is_dir():
        raise ValueError(f"DEST {dest}: its folder {dest.absolute().parent} does not exist.")
    if dest_format.directory and dest.exists():
        raise ValueError(f"DEST {dest} exists; an {dest_format.name} checkpoint is written to a new directory.")
    _check_config_target(config_path(dest, dest_format.name), user)
    formats.require(source_format, f"Reading {source_format.label} ({source})")
    formats.require(dest_format, f"Writing {dest_format.label} ({dest})")
    return source_format.name, dest_format.name


def _load_json(path: Path, label: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ValueError(f"{label}: no such file.") from None
    except OSError as error:
        raise ValueError(f"{label} cannot be read: {error.strerror}.") from None
    except ValueError as error:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{label} is not JSON ({error}).") from None


# --- configurations ---------------------------------------------------------------------------------------


_option_names = configs.option_names
_reference_names = configs.reference_names


def _beside_config(path: Path, fmt: str) -> tuple[_Config, list[str]]:
    """The configuration beside a model file (empty where there is none), and notes."""
    beside, notes = config_path(path, fmt), []
    if not beside.is_file():
        beside, notes = _legacy_config(path, fmt)
        if beside is None:
            return _Config(label=str(path)), notes
    label = f"{beside} (the configuration beside {path.name})"
    raw = _load_json(beside, label)
    if not configs.is_written(raw):
        return _Config(label=str(path)), [f'note: {beside} is not a {PROG} configuration (no "kind"): not read.']
    return configs.parse_config(raw, label), []


def _user_config(path: Path) -> _Config:
    """--config for a torch, msgpack or orbax SOURCE: this command's form, or convlstm_torch.ConvLSTM
    keywords as `convlstm-parity --config` reads them (`convlstm_jax.interop.config.read_config`)."""
    return configs.read_config(path)


def _config_for(path: Path, fmt: str, user: Path | None) -> tuple[_Config, list[str]]:
    config, notes = _beside_config(path, fmt)
    if user is not None:
        config = config.over(_user_config(user))
    return config, notes


def configuration(loaded: Loaded) -> dict[str, Any]:
    """The JSON object written beside the weights: kind, every constructor keyword, merge, source and format.

    Per-layer options (hidden_dim, kernel_size, input_kernel_size, padding, stride, dilation) are
    written per layer, sizes per axis, as `--config` reads them.
    """
    import convlstm_jax

    model = loaded.model
    if isinstance(model, convlstm_jax.FramePredictor):
        options = {name: getattr(model, name) for name in _option_names("FramePredictor")}
    else:
        layer = model.layer if isinstance(model, convlstm_jax.Bidirectional) else model
        options = {name: getattr(layer, name) for name in _option_names("ConvLSTM")}
        specs = layer.layer_specs()
        if options["input_dim"] is None:
            params = loaded.variables["params"]
            params = params["forward_layer"] if isinstance(model, convlstm_jax.Bidirectional) else params
            options["input_dim"] = convlstm_jax.infer_architecture(params, layer.spatial_dims)[0][0].input_dim
        options |= {
            "hidden_dim": [s.hidden_dim for s in specs],
            "kernel_size": [s.kernel_size for s in specs],
            "input_kernel_size": [s.input_kernel_size for s in specs],
            "padding": [s.padding for s in specs],
            "stride": [s.stride for s in specs],
            "dilation": [s.dilation for s in specs],
        }
    merge = model.merge if isinstance(model, convlstm_jax.Bidirectional) else None
    return configs.config_object(loaded.kind, options, merge, loaded.path, loaded.format)


# --- reading ----------------------------------------------------------------------------------------------


def read(path: Path, fmt: str, config: Path | None = None, prefix: str = "") -> Loaded:
    """Reads a model file of format `fmt` (see `formats.format_of`) into the internal form, with its reader.

    Args:
      path: the file or orbax directory.
      fmt: its format, the name of a registered format with a reader (`formats.readable`).
      config: a --config file, or None (the configuration beside `path`, if any, is read anyway).
      prefix: a key prefix to strip from a torch or OpenSTL state_dict.

    Raises:
      ValueError, TypeError: the file or the configuration does not make a model; the message says why.
      OSError: the file cannot be read.
    """
    own = get_format(fmt)
    if own.reader is None:
        raise ValueError(f"{path}: {own.label} is written, not read: {PROG} has no {own.label} importer.")
    if prefix and not own.takes_prefix:
        raise ValueError(f"--prefix applies to {_prefixed()} state_dicts; {path} is a {own.label}.")
    return own.reader(path, fmt, config, prefix)


def _prefixed(conjunction: str = "and") -> str:
    """The families of the formats `--prefix` applies to: "torch and OpenSTL"."""
    return formats.join((fmt.family for fmt in FORMATS.values() if fmt.takes_prefix), conjunction)


def _torch_state_dict(path: Path, prefix: str) -> dict[str, Any]:
    try:
        return read_checkpoint(path, prefix)
    except ValueError as error:  # its messages name the option of convlstm-parity that gives the file
        message = str(error)
        raise ValueError(message.removeprefix("--checkpoint ")) from None


def _is_openstl(state_dict: Mapping[str, Any]) -> bool:
    """Whether a state_dict holds OpenSTL's cells (keys `cell_list.N.conv_x.0.weight`, maybe nested or prefixed)."""
    mappings = [state_dict, *(value for value in state_dict.values() if isinstance(value, Mapping))]
    return any(isinstance(key, str) and _OPENSTL_KEY.search(key) for mapping in mappings for key in mapping)


def _torch_config(config: _Config, stacks: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The convlstm_torch.ConvLSTM keywords of a configuration, as `checkpoint_options` takes them."""
    detected = "Bidirectional" if len(stacks) == 2 else "ConvLSTM"
    if config.kind and config.kind != detected:
        holds = "a Bidirectional's (forward_layer.*, backward_layer.*)" if len(stacks) == 2 else "a ConvLSTM's"
        raise ValueError(f"{config.label} says kind {config.kind}, but {path} holds {holds} weights.")
    return dataclasses.replace(config, kind=detected).reference_keywords()


def _build(
    stacks: dict[str, dict[str, Any]], config: _Config, path: Path
) -> tuple[Any, dict[str, Any], dict[str, Any], str | None, list[str]]:
    """A Linen ConvLSTM or Bidirectional from a reference state_dict's stacks (`checkpoint_stacks`) and a configuration.

    Returns:
      (model, variables, torch_keywords, merge, notes).
    """
    import convlstm_jax

    kwargs, merge, notes = checkpoint_options(stacks, _torch_config(config, stacks, path), config.label, path)
    linen = {key: value for key, value in config.options.items() if key not in _reference_names()}
    try:
        layer = convlstm_jax.ConvLSTM(**kwargs, **linen)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{config.label}: {error}") from None
    params: dict[str, Any] = {}
    for key, stack in stacks.items():
        try:  # the weights against the model the configuration describes
            converted = dict(convlstm_jax.torch_to_flax(stack, layer)["params"])
        except ValueError as error:
            raise ValueError(f"{config.label}: {key}*: {error}" if key else f"{config.label}: {error}") from None
        if key:
            params[key.rstrip(".")] = converted
        else:
            params = converted
    model = convlstm_jax.Bidirectional(layer, merge=merge) if merge else layer
    return model, {"params": params}, kwargs, merge, notes


def _read_torch(path: Path, fmt: str, user: Path | None, prefix: str) -> Loaded:
    state_dict = _torch_state_dict(path, prefix)
    if _is_openstl(state_dict):
        return _read_openstl(path, state_dict, user)
    stacks = checkpoint_stacks(state_dict, path)
    config, notes = _config_for(path, fmt, user)
    model, variables, kwargs, merge, more = _build(stacks, config, path)
    run = _torch_runner(kwargs, merge, stacks)
    return Loaded(model, variables, fmt, path, run, "the torch reference (convlstm_torch)", notes + more)


def _read_openstl_file(path: Path, fmt: str, user: Path | None, prefix: str) -> Loaded:
    """An OpenSTL checkpoint, read as such whatever its keys (a torch file with OpenSTL's keys is one too)."""
    return _read_openstl(path, _torch_state_dict(path, prefix), user)


def _read_openstl(path: Path, state_dict: Mapping[str, Any], user: Path | None) -> Loaded:
    import convlstm_jax

    configs = None
    if user is not None:
        label = f"--config {user}"
        configs = _load_json(user, label)
        if not isinstance(configs, dict) or "kind" in configs:
            raise ValueError(
                f"{label}: {path} is an OpenSTL checkpoint; its --config is a JSON object of OpenSTL's configs "
                "(patch_size, in_shape [T, C, H, W], pre_seq_length, aft_seq_length, ...)."
            )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model, variables = convlstm_jax.from_openstl(state_dict, configs=configs)
        except ValueError as error:
            if configs is None and "configs" in str(error):
                hint = "Here: --config FILE.json, OpenSTL's configs as a JSON object."
                raise ValueError(f"{path}: {error} {hint}") from None
            raise
    notes = [f"note: {warning.message}" for warning in caught]
    if isinstance(model, convlstm_jax.ConvLSTM):
        notes.append(
            "note: OpenSTL's cells alone: a ConvLSTM whose first layer reads OpenSTL's patch channels "
            "(convlstm_jax.openstl_patches)."
        )
    return Loaded(
        model,
        variables,
        "openstl",
        path,
        _linen_runner(model, variables),
        "the Linen model convlstm_jax.from_openstl builds (OpenSTL itself is not a dependency and is not run)",
        notes,
    )


def _restore(path: Path, fmt: str) -> Any:
    """The tree a msgpack file or an orbax directory holds."""
    if fmt == "msgpack":
        from flax import serialization

        try:
            return serialization.msgpack_restore(path.read_bytes())
        except ValueError as error:  # msgpack's errors on bytes that are not msgpack
            raise ValueError(f"{path} is not a Flax msgpack file ({error}).") from None
    import orbax.checkpoint as ocp

    if not (path / "_METADATA").is_file():
        raise ValueError(
            f"{path} is not an orbax checkpoint of variables (no _METADATA), as {PROG} writes them "
            "(orbax.checkpoint.StandardCheckpointer)."
        )
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(path.absolute())


def _params_kind(params: Mapping[str, Any], path: Path) -> str:
    if not isinstance(params, Mapping) or not params:
        raise ValueError(f"{path} holds no Flax variables ({{'params': {{'cell_0': ...}}}}).")
    names = set(params)
    if names == {"forward_layer", "backward_layer"}:
        return "Bidirectional"
    if "output" in names:
        return "FramePredictor"
    return "ConvLSTM"


def _geometry_model(params: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    """A ConvLSTM of the params' sizes and the configuration's padding, stride and dilation, which
    `flax_to_torch` needs to tell the reference's one convolution from its two; None where not given."""
    import convlstm_jax

    geometry = {key: options[key] for key in ("padding", "stride", "dilation") if key in options}
    if not geometry:
        return None
    specs, _, _ = convlstm_jax.infer_architecture(params)
    try:
        return convlstm_jax.ConvLSTM(
            specs[0].input_dim,
            [s.hidden_dim for s in specs],
            [s.kernel_size for s in specs],
            len(specs),
            input_kernel_size=[s.input_kernel_size for s in specs],
            spatial_dims=specs[0].spatial_dims,
            **geometry,
        )
    except (TypeError, ValueError):
        return None  # checkpoint_options reports it, with the configuration's name


def _read_flax(path: Path, fmt: str, user: Path | None, prefix: str = "") -> Loaded:
    """A Flax msgpack file or orbax directory (`--prefix` does not apply: refused by `read`)."""
    import convlstm_jax

    tree = _restore(path, fmt)
    params = tree.get("params", tree) if isinstance(tree, Mapping) else tree
    kind = _params_kind(params, path)
    config, notes = _config_for(path, fmt, user)
    if config.kind and config.kind != kind:
        raise ValueError(f"{config.label} says kind {config.kind}, but {path} holds a {kind}'s params.")
    variables = {"params": params}
    if kind == "FramePredictor":
        if config.kind is None:
            raise ValueError(
                f"{path} holds a FramePredictor's params (cell_*, output): its patch size and sequence lengths are "
                f"not in the weights, and there is no configuration beside it ({config_path(path, fmt)}): give "
                '--config with {"kind": "FramePredictor", "options": {...}}.'
            )
        try:
            model = convlstm_jax.FramePredictor(**config.options)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{config.label}: {error}") from None
        _check_fit(model, params, _default_input(model, variables, None), config.label, path)
    else:
        if not config.options:
            notes.append(
                f"note: no configuration beside {path} and no --config: padding, stride and dilation are not in "
                'the weights and are taken as "same", 1 and 1.'
            )
        directions = ("forward_layer", "backward_layer") if kind == "Bidirectional" else ("",)
        state_dict = {}
        for direction in directions:
            stack = params[direction] if direction else params
            try:
                converted = convlstm_jax.flax_to_torch(stack, _geometry_model(stack, config.options))
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from None
            state_dict |= {f"{direction}.{k}" if direction else k: v for k, v in converted.items()}
        model, _, _, _, more = _build(checkpoint_stacks(state_dict, path), config, path)  # the weights checked there
        notes += more
    return Loaded(model, variables, fmt, path, _linen_runner(model, variables), "Linen (convlstm_jax)", notes)


def _check_fit(model: Any, params: Mapping[str, Any], x: np.ndarray, label: str, path: Path) -> None:
    """Raises ValueError listing every param of `params` that `model` does not have, lacks or shapes otherwise."""
    import jax

    from convlstm_jax._convert import param_shapes

    layout = _to_layout(x, model)
    expected = param_shapes(jax.eval_shape(model.init, jax.random.key(0), layout)["params"])
    given = param_shapes(params)
    problems = [f"missing {p} {expected[p]}" for p in sorted(expected.keys() - given.keys())]
    problems += [f"unexpected {p} {given[p]}" for p in sorted(given.keys() - expected.keys())]
    problems += [
        f"{p} is {given[p]}, the model's is {expected[p]}"
        for p in sorted(expected.keys() & given.keys())
        if given[p] != expected[p]
    ]
    if problems:
        raise ValueError(
            f"The params in {path} do not fit the {type(model).__name__} of {label} ({len(problems)} problem(s)):\n"
            "  - " + "\n  - ".join(problems)
        )


def _keras_architecture(path: Path, fmt: str, user: Path | None) -> Any:
    if fmt == "keras":
        if user is not None:
            raise ValueError(
                f"--config {user}: {path} holds its own architecture; --config goes with a {_KERAS_WEIGHTS} file "
                "(the .keras file of its architecture, or a JSON file of its Keras config)."
            )
        return None
    if user is None:
        beside = path.with_name(path.name[: -len(_KERAS_WEIGHTS)] + ".keras")
        if beside.is_file():
            return str(beside)
        raise ValueError(
            f"{path} holds weights only: give --config with the architecture, a .keras file or a JSON file of the "
            f"Keras config (model.get_config()); or put it beside the weights as {beside.name}."
        )
    if user.suffix.lower() == ".keras":
        if not user.is_file():
            raise ValueError(f"--config {user}: no such file.")
        return str(user)
    architecture = _load_json(user, f"--config {user}")
    if not isinstance(architecture, dict):
        raise ValueError(
            f"--config {user} must hold a JSON object, the Keras config of the model (model.get_config()), "
            "or be a .keras file."
        )
    return architecture


def _read_keras(path: Path, fmt: str, user: Path | None, prefix: str = "") -> Loaded:
    """A .keras file, or Keras weights with their architecture (`--prefix` does not apply: refused by `read`)."""
    import zipfile

    import convlstm_jax

    from .keras import import_keras, load_keras

    architecture = _keras_architecture(path, fmt, user)
    keras = import_keras()
    with _keras_context():
        try:
            obj = load_keras(keras, str(path), architecture)
        except zipfile.BadZipFile as error:
            raise ValueError(f"{path} is not a Keras file ({error}).") from None
    model, variables = convlstm_jax.from_keras(obj)
    if isinstance(obj, keras.Model):
        shape = tuple(obj.inputs[0].shape)
    else:
        shape = tuple(obj.get_build_config()["input_shape"])
    layer = _layer(model)
    frame = shape[2:-1] if layer.channels_last else shape[3:]
    runtime = f"Keras {keras.__version__} (JAX backend)"
    frame = tuple(frame) if None not in frame else None
    return Loaded(model, variables, fmt, path, _keras_runner(keras, obj, model), runtime, frame=frame)


# --- running: every result by name, batch-first and channels-last ------------------------------------------


def _layer(model: Any) -> Any:
    import convlstm_jax

    return model.layer if isinstance(model, convlstm_jax.Bidirectional) else model


def _returned(layer: Any) -> list[int]:
    """The layers whose outputs and states a stack returns."""
    return list(range(layer.num_layers)) if layer.return_all_layers else [layer.num_layers - 1]


def _to_layout(x: np.ndarray, model: Any) -> np.ndarray:
    """A (B, T, *frame, C) input in `model`'s layout (its channels_last and batch_first)."""
    import convlstm_jax

    if isinstance(model, convlstm_jax.FramePredictor):
        return x
    layer = _layer(model)
    if not layer.channels_last:
        x = np.moveaxis(x, -1, 2)
    return x if layer.batch_first else np.swapaxes(x, 0, 1)


def _results(outputs: Any, states: Any, layers: list[int], channels_last: bool, bidirectional: bool) -> dict:
    """A stack's `(outputs, states)` by name (`output/l`, `h/l`, `c/l`; `forward/h/l`, `backward/c/l` for a
    Bidirectional), batch-first and channels-last (the outputs of every front are batch-first)."""

    def last(array: Any, axis: int) -> np.ndarray:
        array = np.asarray(array, np.float32)
        return array if channels_last else np.moveaxis(array, axis, -1)

    results = {f"output/{layer}": last(y, 2) for layer, y in zip(layers, outputs)}
    directions = (("forward/", states[0]), ("backward/", states[1])) if bidirectional else (("", states),)
    for prefix, stack_states in directions:
        for layer, (h, c) in zip(layers, stack_states):
            results |= {f"{prefix}h/{layer}": last(h, 1), f"{prefix}c/{layer}": last(c, 1)}
    return results


def _linen_results(model: Any, out: Any) -> dict[str, np.ndarray]:
    import convlstm_jax

    if isinstance(model, convlstm_jax.FramePredictor):
        return {"frames": np.asarray(out, np.float32)}
    layer = _layer(model)
    bidirectional = isinstance(model, convlstm_jax.Bidirectional)
    return _results(out[0], out[1], _returned(layer), layer.channels_last, bidirectional)


def _linen_runner(model: Any, variables: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        import jax

        import convlstm_jax

        kwargs = {} if isinstance(model, convlstm_jax.FramePredictor) else {"deterministic": True}
        with jax.default_matmul_precision("highest"):
            return _linen_results(model, model.apply(variables, _to_layout(x, model), **kwargs))

    return run


def _torch_runner(kwargs: dict[str, Any], merge: str | None, stacks: Mapping[str, Mapping[str, Any]]) -> Callable:
    """The torch reference with the file's own tensors, in float32."""

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        import convlstm_torch
        from convlstm_jax._convert import to_numpy

        layer = convlstm_torch.ConvLSTM(**kwargs)
        model = convlstm_torch.Bidirectional(layer, merge=merge) if merge else layer
        state_dict = {
            f"{key}{name}": torch.from_numpy(np.array(to_numpy(value), np.float32))
            for key, stack in stacks.items()
            for name, value in stack.items()
        }
        model.float().load_state_dict(state_dict)
        model.eval()
        inputs = np.moveaxis(x, -1, 2)  # (B, T, C, *frame)
        inputs = inputs if layer.batch_first else np.swapaxes(inputs, 0, 1)
        with torch.no_grad():
            outputs, states = model(torch.from_numpy(np.ascontiguousarray(inputs)))
        states = [states[0], states[1]] if merge else [states]
        states = [[(h.numpy(), c.numpy()) for h, c in direction] for direction in states]
        states = tuple(states) if merge else states[0]
        return _results([y.numpy() for y in outputs], states, _returned(layer), False, bool(merge))

    return run


def _keras_context():
    """Keras's own JAX code broadcasts ranks and promotes dtypes: allowed while it runs."""
    import contextlib

    import jax

    stack = contextlib.ExitStack()
    stack.enter_context(jax.numpy_rank_promotion("allow"))
    stack.enter_context(jax.numpy_dtype_promotion("standard"))
    return stack


def _keras_runner(keras: Any, obj: Any, model: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The Keras layer or model itself; its outputs named as the imported model's results (see `from_keras`)."""

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        import jax

        import convlstm_jax

        core = obj
        if isinstance(obj, keras.Model):
            core = [layer for layer in obj.layers if not isinstance(layer, keras.layers.InputLayer)][-1]
        bidirectional = isinstance(model, convlstm_jax.Bidirectional)
        options = core.forward_layer if bidirectional else core
        layer = _layer(model)
        last = layer.num_layers - 1
        with _keras_context(), jax.default_matmul_precision("highest"):
            out = obj(_to_layout(x, model), training=False)
        out = [keras.ops.convert_to_numpy(y) for y in (out if isinstance(out, (list, tuple)) else [out])]
        final = f"merged_h/{last}" if bidirectional else f"h/{last}"  # the final hidden state alone
        names = [f"output/{last}" if options.return_sequences else final]
        if options.return_state:
            directions = ("forward/", "backward/") if bidirectional else ("",)
            names += [f"{d}{s}/{last}" for d in directions for s in "hc"]
        results = {}
        for name, y in zip(names, out):
            y = np.asarray(y, np.float32)
            sequence = name.startswith("output/")
            results[name] = y if layer.channels_last else np.moveaxis(y, 2 if sequence else 1, -1)
        return results

    return run


def _onnx_runner(path: Path, model: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        import onnxruntime

        layer = _layer(model)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        values = session.run(names, {"x": np.ascontiguousarray(_to_layout(x, model))})
        results = {}
        bidirectional = layer is not model
        for name, value in zip(names, values):
            match = re.fullmatch(r"output(\d+)|([hc])(\d+)(_backward)?_out", name)
            if match is None:
                continue
            value = np.asarray(value, np.float32)
            if match.group(1) is not None:
                results[f"output/{match.group(1)}"] = value if layer.channels_last else np.moveaxis(value, 2, -1)
            else:
                direction = ("backward/" if match.group(4) else "forward/") if bidirectional else ""
                key = f"{direction}{match.group(2)}/{match.group(3)}"
                results[key] = value if layer.channels_last else np.moveaxis(value, 1, -1)
        return results

    return run


def _stablehlo_runner(path: Path, model: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        import jax

        from . import stablehlo

        with jax.default_matmul_precision("highest"):
            return _linen_results(model, stablehlo.load(path)(_to_layout(x, model)))

    return run


# --- the input of the check ---------------------------------------------------------------------------------


def _default_input(
    model: Any, variables: Mapping[str, Any], shape: tuple[int, ...] | None, fixed: tuple[int, ...] | None = None
) -> np.ndarray:
    """A zero input (B, T, *frame, C) of `shape` (B, T, *frame) or the default one; checked against the
    model, and against the frame size `fixed` where the source fixes one."""
    import convlstm_jax

    if isinstance(model, convlstm_jax.FramePredictor):
        return np.zeros(_frame_predictor_shape(model, variables, shape), np.float32)
    layer = _layer(model)
    rank, specs = layer.spatial_dims, layer.layer_specs()
    channels = specs[0].input_dim
    if shape is None:
        frame = specs[0].frame_size if layer.layer_norm and specs[0].frame_size else (DEFAULT_SIDE,) * rank
        return np.zeros((DEFAULT_BATCH, DEFAULT_STEPS, *(fixed or frame), channels), np.float32)
    batch, steps, *frame = shape
    if fixed is not None and tuple(frame) != fixed:
        text = ",".join(map(str, shape))
        raise ValueError(f"--shape {text}: the source takes frames of {'x'.join(map(str, fixed))} only.")
    if len(frame) != rank:
        axes = spatial_axes(rank).replace(" ", "")
        text = ",".join(map(str, shape))
        raise ValueError(f"the model's convolutions are {rank}-D: --shape takes B,T,{axes}, got {text}.")
    try:
        layer.state_sizes(tuple(frame), channels)
        check_frame(specs[0], tuple(frame))
    except ValueError as error:
        raise ValueError(f"--shape {','.join(map(str, shape))}: {error}") from None
    return np.zeros((batch, steps, *frame, channels), np.float32)


def _frame_predictor_shape(model: Any, variables: Mapping[str, Any], shape: tuple[int, ...] | None) -> tuple:
    p, pre, total = model.patch_size, model.pre_seq_length, model.pre_seq_length + model.aft_seq_length
    norm = None
    if model.layer_norm:
        scale = variables["params"].get("cell_0", {}).get("input_norm", {}).get("scale")
        norm = tuple(int(n) * p for n in np.shape(scale)[:2]) if scale is not None else None
    if shape is None:
        side = DEFAULT_SIDE if DEFAULT_SIDE % p == 0 else p * (DEFAULT_SIDE // p + 1)
        return (DEFAULT_BATCH, pre, *(norm or (side, side)), model.in_channels)
    text = ",".join(map(str, shape))
    batch, steps, *frame = shape
    if len(frame) != 2:
        raise ValueError(f"a FramePredictor reads images: --shape takes B,T,H,W, got {text}.")
    if steps not in (pre, total):
        raise ValueError(
            f"--shape {text}: a FramePredictor reads T = pre_seq_length ({pre}) or pre_seq_length + aft_seq_length "
            f"({total}) frames."
        )
    if any(n % p for n in frame):
        raise ValueError(f"--shape {text}: H and W must be multiples of the patch size {p}.")
    if norm is not None and tuple(frame) != norm:
        raise ValueError(f"--shape {text}: the layer norms are for frames of {norm[0]}x{norm[1]}.")
    return (batch, steps, *frame, model.in_channels)


# --- writing ----------------------------------------------------------------------------------------------


def _plain(tree: Any) -> Any:
    """Variables as nested dicts of NumPy arrays."""
    if isinstance(tree, Mapping):
        return {str(key): _plain(value) for key, value in tree.items()}
    return np.asarray(tree)


def _write_torch(model: Any, variables: Any, dest: Path, example: np.ndarray) -> list[Path]:
    import torch

    import convlstm_jax

    torch.save(convlstm_jax.torch_module(model, variables).state_dict(), dest)
    return [dest]


def _write_safetensors(model: Any, variables: Any, dest: Path, example: np.ndarray) -> list[Path]:
    from safetensors.torch import save_file

    import convlstm_jax

    state_dict = convlstm_jax.torch_module(model, variables).state_dict()
    save_file({key: value.contiguous() for key, value in state_dict.items()}, str(dest))
    return [dest]


def _write_msgpack(model: Any, variables: Any, dest: Path, example: np.ndarray) -> list[Path]:
    from flax import serialization

    dest.write_bytes(serialization.msgpack_serialize(_plain(variables)))
    return [dest]


def _write_orbax(model: Any, variables: Any, dest: Path, example: np.ndarray) -> list[Path]:
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(dest.absolute(), _plain(variables))
        checkpointer.wait_until_finished()
    return [dest]


def _write_onnx(model: Any, variables: Any, dest: Path, example: np.ndarray) -> list[Path]:
    from .onnx import to_onnx

    to_onnx(model, variables, dest, _to_layout(example, model))
    data = dest.with_name(dest.name + ".data")  # weights over 1 GiB go beside the model
    return [dest, data] if data.exists() else [dest]


def _write_stablehlo(model: Any, variables: Any, dest: Path, example: np.ndarray) -> list[Path]:
    import jax

    from . import stablehlo

    with jax.default_matmul_precision("highest"):
        exported = stablehlo.export(model, variables, _to_layout(example, model))
    return stablehlo.save(exported, dest)


def _check_direction(loaded: Loaded, dest: Path, fmt: str) -> None:
    """Refuses to write a FramePredictor (OpenSTL's whole model) to a format that has no form of it."""
    own = get_format(fmt)
    if loaded.kind == "FramePredictor" and not own.writes_frame_predictor:
        forms = formats.join((f.named for f in formats.writable() if f.writes_frame_predictor), "or")
        raise ValueError(
            f"{loaded.path} holds OpenSTL's whole ConvLSTM_Model (a convlstm_jax.FramePredictor: patches, a "
            f"ConvLSTM stack, an output convolution and the rollout), which has no {own.label} form in this "
            f"library: write it as {forms} (OpenSTL's cells alone convert to any format)."
        )


def _frame_note(model: Any, fmt: str, example: np.ndarray) -> str | None:
    """The line saying that the exported model takes frames of the check's size only, and why; None
    where it takes any frame size (or DEST is not an export)."""
    import convlstm_jax

    own = get_format(fmt)
    if not own.exported:
        return None
    layer = model if isinstance(model, convlstm_jax.FramePredictor) else _layer(model)
    if not layer.layer_norm:
        return None
    frame = "x".join(map(str, example.shape[2:-1]))
    return (
        f"note   the {own.label} model takes only {frame} frames (any batch size): its layer norms' weights are "
        "for frames of that size"
    )


def write(loaded: Loaded, dest: Path, fmt: str, example: np.ndarray) -> list[Path]:
    """Writes the model to DEST in format `fmt` and its configuration beside it; returns the paths written."""
    _check_direction(loaded, dest, fmt)
    writer = get_format(fmt).writer
    if writer is None:
        raise ValueError(f"{dest}: {get_format(fmt).label} files are read, not written.")
    written = writer(loaded.model, loaded.variables, dest, example)
    beside = config_path(dest, fmt)
    configs.write_config(beside, configuration(loaded))
    return [*written, beside]


def _dest_runner(dest: Path, fmt: str, loaded: Loaded) -> tuple[Callable, str]:
    """DEST in its own runtime, for the check: its format's runner, or its reader's model read back."""
    own = get_format(fmt)
    if own.runner is not None:
        return own.runner(dest, loaded.model), own.runtime
    reread = read(dest, fmt)
    return reread.run, f"{reread.runtime}, read back with its configuration"


# --- the formats: one entry each, in the order the command lists them ------------------------------------------


def _is_orbax_path(path: Path) -> bool:
    """An orbax checkpoint is a directory; a path without an extension is taken for one."""
    return path.is_dir() or not path.suffix


def _keras_weights_config(path: Path) -> Path:
    """The JSON file beside NAME.weights.h5: NAME.json."""
    return path.with_name(path.name[: -len(_KERAS_WEIGHTS)] + ".json")


_TORCH, _INTEROP = "convlstm-jax[torch]", "convlstm-jax[interop]"
_REFERENCE = "the torch reference (convlstm_torch)"

for _format in (
    Format(
        "torch",
        "torch state_dict",
        "torch state_dict of a convlstm_torch.ConvLSTM or Bidirectional",
        "torch",
        (".pt", ".pth", ".bin"),
        reader=_read_torch,
        writer=_write_torch,
        needs=(("torch", _TORCH),),
        takes_prefix=True,
    ),
    Format(
        "safetensors",
        "safetensors state_dict",
        "the same, as safetensors",
        "torch",
        (".safetensors",),
        reader=_read_torch,
        writer=_write_safetensors,
        needs=(("torch", _TORCH),),
        takes_prefix=True,
    ),
    Format(
        "openstl",
        "OpenSTL checkpoint",
        "OpenSTL ConvLSTM checkpoint (keys cell_list.N.conv_x.0.*)",
        "OpenSTL",
        (".pt", ".pth", ".bin"),  # a torch file, told by its keys
        files=".pth",
        reader=_read_openstl_file,
        needs=(("torch", _TORCH),),
        takes_prefix=True,
    ),
    Format(
        "msgpack",
        "Flax msgpack",
        "Flax variables, msgpack (flax.serialization)",
        "Flax",
        (".msgpack",),
        reader=_read_flax,
        writer=_write_msgpack,
        writes_frame_predictor=True,
    ),
    Format(
        "orbax",
        "orbax checkpoint",
        "Flax variables, orbax checkpoint",
        "Flax",
        recognises=_is_orbax_path,
        files="an orbax directory",
        reader=_read_flax,
        writer=_write_orbax,
        needs=(("orbax.checkpoint", "convlstm-jax[train]"),),
        directory=True,
        writes_frame_predictor=True,
    ),
    Format(
        "keras",
        "Keras model",
        "Keras 3 ConvLSTM1D/2D/3D stack, or a Bidirectional of one",
        "Keras",
        (".keras",),
        reader=_read_keras,
        needs=(("keras", _INTEROP),),
    ),
    Format(
        "keras-weights",
        "Keras weights",
        "the same, weights only (with its architecture)",
        "Keras",
        (_KERAS_WEIGHTS,),
        reader=_read_keras,
        needs=(("keras", _INTEROP),),
        beside=_keras_weights_config,
    ),
    Format(
        "onnx",
        "ONNX",
        "ONNX (convlstm_jax's to_onnx)",
        "ONNX",
        (".onnx",),
        writer=_write_onnx,
        runner=_onnx_runner,
        runtime="onnxruntime",
        needs=(("torch", _TORCH), ("onnx", _INTEROP), ("onnxscript", _INTEROP), ("onnxruntime", _INTEROP)),
        exported=True,
    ),
    Format(
        "stablehlo",
        "StableHLO",
        "StableHLO (a serialized jax.export artifact)",
        "StableHLO",
        (".stablehlo",),
        writer=_write_stablehlo,
        runner=_stablehlo_runner,
        runtime="convlstm_jax.interop.stablehlo.load",
        needs=(("flatbuffers", "flatbuffers"),),
        writes_frame_predictor=True,
        exported=True,
    ),
):
    FORMATS[_format.name] = _format
del _format

READS = tuple(name for name, fmt in FORMATS.items() if fmt.reader is not None)
"""The formats read, by name (from the registry)."""
WRITES = tuple(name for name, fmt in FORMATS.items() if fmt.writer is not None)
"""The formats written, by name (from the registry)."""


# --- the check --------------------------------------------------------------------------------------------


def compare(expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], merge: str | None) -> tuple:
    """The worst float32 tolerance score over `expected`'s results, and the result where it is reached.

    A Bidirectional's merged final hidden state (`merged_h/l`, Keras's output without
    return_sequences) is made from `actual`'s two directions.
    """
    tolerance = tolerance_for("float32")
    worst, where = 0.0, ""
    for name, value in expected.items():
        got = actual.get(name)
        if got is None and name.startswith("merged_h/"):
            layer = name.split("/", 1)[1]
            forward, backward = actual[f"forward/h/{layer}"], actual[f"backward/h/{layer}"]
            got = forward + backward if merge == "sum" else np.concatenate([forward, backward], axis=-1)
        if got is None:
            raise KeyError(f"DEST gave no {name!r}; it gave {sorted(actual)}.")
        score = tolerance.score(got, value) if np.shape(got) == np.shape(value) else float("inf")
        if score > worst or not where:
            worst, where = score, name
    return worst, where


def _summary(model: Any) -> str:
    import convlstm_jax

    if isinstance(model, convlstm_jax.FramePredictor):
        return (
            f"a FramePredictor (OpenSTL's ConvLSTM_Model): layers of {list(model.hidden_dim)} channels, "
            f"{model.in_channels}-channel frames in {model.patch_size}x{model.patch_size} patches, "
            f"{model.pre_seq_length} frames in, {model.aft_seq_length} out"
        )
    layer = _layer(model)
    specs = layer.layer_specs()
    text = (
        f"{layer.num_layers} layer(s), {specs[0].input_dim} -> {[s.hidden_dim for s in specs]} channels, "
        f"{layer.spatial_dims}-D"
    )
    if isinstance(model, convlstm_jax.Bidirectional):
        return f"a Bidirectional (merge {model.merge!r}) of a ConvLSTM of {text}"
    return f"a ConvLSTM of {text}"


def _usage() -> str:
    """The module's text with the table of the registered formats (`formats.table`) under its heading."""
    heading = "Formats, by extension (a directory, or a path without an extension, is an orbax checkpoint):\n\n"
    return _DOC.replace(heading, f"{heading}{formats.table()}\n\n", 1)


def _parser() -> argparse.ArgumentParser:
    usage = _usage()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=usage.split("\n", 1)[0].replace("`", ""),
        epilog=usage.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, metavar="SOURCE", help="the model to read (see the formats below)")
    folders = "".join(f" or {fmt.name} directory" for fmt in formats.writable() if fmt.directory)
    parser.add_argument(
        "dest", type=Path, metavar="DEST", help=f"the file{folders} to write: {formats.extensions('DEST')}"
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE.json", help="what the weights do not hold, over the file beside (below)"
    )
    parser.add_argument(
        "--shape",
        type=parse_shape,
        metavar="B,T,H,W",
        help="the check's input: B,T,H,W (B,T,L or B,T,D,H,W for 1-D or 3-D convolutions); "
        f"{formats.join(fmt.label for fmt in FORMATS.values() if fmt.exported)} files take other sizes too, but "
        "for a model with layer norm (below)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the check's random input (default 0)")
    parser.add_argument(
        "--prefix", default="", metavar="P", help=f"a key prefix to strip from a {_prefixed('or')} state_dict"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        source_format, dest_format = _plan(args.source, args.dest, args.config)
        if args.config is not None and not args.config.is_file():
            what = "is not a file" if args.config.exists() else "no such file"
            raise ValueError(f"--config {args.config}: {what}.")
        loaded = read(args.source, source_format, args.config, args.prefix)
        _check_direction(loaded, args.dest, dest_format)
        shape = _default_input(loaded.model, loaded.variables, args.shape, loaded.frame).shape
        x = np.random.default_rng(args.seed).standard_normal(shape).astype(np.float32)
        written = write(loaded, args.dest, dest_format, x)
    except (ValueError, TypeError, OSError, ImportError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2

    for note in loaded.notes:
        print(note)
    print(f"read   {args.source} ({get_format(loaded.format).label}): {_summary(loaded.model)}")
    print(f"wrote  {', '.join(map(str, written))}")
    note = _frame_note(loaded.model, dest_format, x)
    if note is not None:
        print(note)
    expected = loaded.run(x)
    try:  # DEST in its own runtime: a file that cannot be read back fails the check
        run_dest, dest_runtime = _dest_runner(args.dest, dest_format, loaded)
        actual = run_dest(x)
    except (ValueError, TypeError, OSError) as error:
        print(f"{PROG}: the check failed: {args.dest} cannot be read back: {error}", file=sys.stderr)
        return 1
    score, where = compare(expected, actual, getattr(loaded.model, "merge", None))
    passed = score <= 1.0
    print(
        f"check  worst {score:.3g} of the float32 tolerance ({where}; <= 1 passes) over {len(expected)} result(s): "
        f"{'passed' if passed else 'FAILED'}\n"
        f"       SOURCE in {loaded.runtime}; DEST in {dest_runtime}; a random input (B, T, *frame, C) = {shape}, "
        f"--seed {args.seed}"
    )
    if not passed:
        print(
            f"{PROG}: the check failed: {args.dest} does not compute what {args.source} computes ({where} is "
            f"{score:.3g} times the float32 tolerance off); the files are written, but do not use them.",
            file=sys.stderr,
        )
        return 1
    return 0


__doc__ = _usage()  # the module's text, with its table of formats

if __name__ == "__main__":
    sys.exit(main())
