"""OpenSTL's ConvLSTM (chengtan9907/OpenSTL) as this library's Linen modules, with its weights.

`from_openstl` reads the state_dict of OpenSTL's `ConvLSTM_Model` (or of its `cell_list` alone) and
returns a Linen module of this library and the variables for its `apply`:

- only cells (`cell_list.<l>.*`): a `convlstm_jax.ConvLSTM` (`channels_last=True`,
  `batch_first=True`, `bias=False`, `peephole=None`, `layer_norm` as the weights say), whose
  `layer_outputs[0]` is every step of the last layer, what OpenSTL's stack computes;
- the whole model (`cell_list.*` and `conv_last.weight`): a `FramePredictor`, OpenSTL's frame model
  with its patches, its stack, its 1x1 output convolution and its autoregressive rollout.

How OpenSTL's keys, gates and patch channels map to this library's: the OpenSTL section ("From
OpenSTL") of the Interoperability guide, `docs/interop.md`.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import numpy as np

from .._convert import is_float, kernel_to_flax, to_numpy, torch_to_flax
from .._convlstm import ConvLSTM
from ..models import FramePredictor, openstl_patch_order

_WRAPPERS = ("state_dict", "model", "model_state_dict")
"""Entries of a checkpoint dict that hold the weights (Lightning's, OpenSTL's trainer's, common ones)."""

_PREFIXES = ("model.", "module.")
"""Key prefixes that are stripped: OpenSTL's method holds its model as `model`; DataParallel and
DistributedDataParallel add `module.`."""

_CELL_KEY = re.compile(r"^cell_list\.(\d+)\.(.+)$")
_USED = {
    "conv_x.0.weight": "input kernel",
    "conv_h.0.weight": "state kernel",
    "conv_x.1.weight": "input norm",
    "conv_x.1.bias": "input norm",
    "conv_h.1.weight": "state norm",
    "conv_h.1.bias": "state norm",
}
_NORMS = ("conv_x.1.weight", "conv_x.1.bias", "conv_h.1.weight", "conv_h.1.bias")
_UNUSED = re.compile(r"^(conv_o\.(0\.weight|1\.weight|1\.bias)|conv_last\.weight)$")
_OUTPUT = "conv_last.weight"


def openstl_gates_to_library(array: Any, axis: int = 0) -> np.ndarray:
    """Reorders the gate blocks along `axis` from OpenSTL's (i, f, g, o) to this library's (i, f, o, g).

    >>> openstl_gates_to_library(np.arange(8)).tolist()
    [0, 1, 2, 3, 6, 7, 4, 5]
    """
    i, f, g, o = np.split(np.asarray(array), 4, axis=axis)
    return np.concatenate([i, f, o, g], axis=axis)


def _unwrap(state_dict: Any) -> dict[str, np.ndarray]:
    """The weights of a state_dict or checkpoint dict as NumPy arrays, keys without `model.`/`module.`."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"state_dict must be a mapping from OpenSTL's keys to tensors or arrays (or a checkpoint dict "
            f"holding one under {' or '.join(repr(w) for w in _WRAPPERS)}), got {type(state_dict).__name__}."
        )
    for wrapper in _WRAPPERS:
        if isinstance(state_dict.get(wrapper), Mapping):
            state_dict = state_dict[wrapper]
            break
    arrays: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r} ({type(key).__name__}).")
        name = key
        while name.startswith(_PREFIXES):
            name = name.split(".", 1)[1]
        if name in sources:
            raise ValueError(
                f"Keys {sources[name]!r} and {key!r} are the same weight {name!r} once prefixes are stripped."
            )
        try:
            array = to_numpy(value)
        except (TypeError, ValueError) as error:
            raise TypeError(f"state_dict[{key!r}] must be a tensor or an array, got {type(value).__name__}.") from error
        if array.dtype == object:
            raise TypeError(f"state_dict[{key!r}] must be a tensor or an array, got {type(value).__name__}.")
        sources[name] = key
        arrays[name] = array
    return arrays


def _read_layers(arrays: Mapping[str, np.ndarray]) -> tuple[dict[int, dict[str, np.ndarray]], list[str], list[str]]:
    """Sorts the keys into each cell's used weights, the unused ones, and the unexpected ones."""
    layers: dict[int, dict[str, np.ndarray]] = {}
    unused, unexpected = [], []
    for key, array in arrays.items():
        match = _CELL_KEY.match(key)
        if key == _OUTPUT:
            continue
        if match and match.group(2) in _USED:
            layers.setdefault(int(match.group(1)), {})[match.group(2)] = array
        elif match and _UNUSED.match(match.group(2)):
            layers.setdefault(int(match.group(1)), {})  # a layer, even if its used weights are missing
            unused.append(key)
        else:
            unexpected.append(key)
    return layers, unused, unexpected


def _natural(key: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _shape(array: np.ndarray) -> tuple[int, ...]:
    return tuple(int(n) for n in array.shape)


@dataclasses.dataclass(frozen=True)
class _Architecture:
    """What OpenSTL's weights say: each layer's input and hidden channels, the kernel, the norms' frame."""

    input_dims: tuple[int, ...]
    hidden_dims: tuple[int, ...]
    kernel: tuple[int, int]
    norm_frame: tuple[int, int] | None
    output_depth: int | None  # the top-level conv_last's output channels, where there is one


@dataclasses.dataclass(frozen=True)
class _Cell:
    """One OpenSTL cell as its weights say: channels, kernel, and its norms' frame (None without norms)."""

    input_dim: int
    hidden_dim: int
    kernel: tuple[int, ...]
    norm_frame: tuple[int, ...] | None


def _read_cell(where: str, weights: Mapping[str, np.ndarray], problems: list[str]) -> _Cell | None:
    """Reads one cell's weights; appends what is wrong to `problems` (None where nothing can be read)."""
    missing = [name for name in ("conv_x.0.weight", "conv_h.0.weight") if name not in weights]
    problems += [f"missing key '{where}.{name}'" for name in missing]
    if missing:
        return None
    x, h = weights["conv_x.0.weight"], weights["conv_h.0.weight"]
    malformed = [
        name
        for name, array in (("conv_x.0.weight", x), ("conv_h.0.weight", h))
        if array.ndim != 4 or array.shape[0] % 4 or 0 in array.shape
    ]
    problems += [
        f"'{where}.{name}' has shape {_shape(weights[name])}: expected a Conv2d weight (4·hidden, in, k, k)"
        for name in malformed
    ]
    if malformed:
        return None
    hid, kernel = x.shape[0] // 4, _shape(x)[2:]
    if _shape(h)[:2] != (4 * hid, hid):
        problems.append(
            f"'{where}.conv_h.0.weight' has shape {_shape(h)}: expected (4·hidden, hidden, k, k) = "
            f"({4 * hid}, {hid}, ...) after conv_x.0.weight {_shape(x)}"
        )
    if _shape(h)[2:] != kernel:
        problems.append(
            f"'{where}': conv_x.0.weight's kernel {kernel} and conv_h.0.weight's {_shape(h)[2:]} differ: "
            "an OpenSTL cell has one filter_size"
        )
    if any(k % 2 == 0 for k in kernel):
        problems.append(
            f"'{where}' has an even kernel {kernel}: OpenSTL pads k // 2, which changes the frame size "
            "for even kernels; this library has odd kernels only"
        )
    norms = [name for name in _NORMS if name in weights]
    if not norms:
        return _Cell(int(x.shape[1]), hid, kernel, None)
    if len(norms) < len(_NORMS):
        absent = [name for name in _NORMS if name not in weights]
        problems.append(f"'{where}' has layer norm weights {norms} but not {absent}")
        return None
    frame = _shape(weights["conv_x.1.weight"])[1:]
    for name in _NORMS:
        shape = _shape(weights[name])
        if len(shape) != 3 or shape[0] != 4 * hid or shape[1:] != frame or 0 in shape:
            size = ", ".join(map(str, frame)) if len(frame) == 2 else "H', W'"
            problems.append(
                f"'{where}.{name}' has shape {shape}: expected a LayerNorm weight (4·hidden, H', W') = "
                f"({4 * hid}, {size}), as conv_x.1.weight's"
            )
    return _Cell(int(x.shape[1]), hid, kernel, frame)


def _architecture(arrays: Mapping[str, np.ndarray], layers: Mapping[int, Mapping[str, np.ndarray]]) -> _Architecture:
    """Reads and checks the layers; raises one ValueError listing every problem."""
    problems: list[str] = []
    cells = [_read_cell(f"cell_list.{index}", layers.get(index, {}), problems) for index in range(max(layers) + 1)]
    for index in range(1, len(cells)):
        below, cell = cells[index - 1], cells[index]
        if cell is not None and below is not None and cell.input_dim != below.hidden_dim:
            problems.append(
                f"'cell_list.{index}.conv_x.0.weight' reads {cell.input_dim} channels: layer {index} reads layer "
                f"{index - 1}'s hidden state, {below.hidden_dim} channels"
            )
    read = [cell for cell in cells if cell is not None]
    kernels = sorted({cell.kernel for cell in read})
    if len(kernels) > 1:
        problems.append(f"the layers' kernels differ ({kernels}): OpenSTL has one filter_size")
    normalised = [index for index, cell in enumerate(cells) if cell is not None and cell.norm_frame is not None]
    plain = [index for index, cell in enumerate(cells) if cell is not None and cell.norm_frame is None]
    if normalised and plain:
        problems.append(
            f"layers {normalised} have layer norms and layers {plain} do not: OpenSTL's layer_norm is one setting"
        )
    frames = sorted({cell.norm_frame for cell in read if cell.norm_frame is not None})
    if len(frames) > 1:
        problems.append(
            f"the layer norms are for states of different sizes {frames}: OpenSTL's cells all run on frames "
            "of H/patch_size x W/patch_size"
        )
    output, output_depth = arrays.get(_OUTPUT), None
    if output is not None:
        first, last = cells[0], cells[-1]
        hid = last.hidden_dim if last is not None else "hidden"
        if output.ndim != 4 or _shape(output)[2:] != (1, 1) or (last is not None and output.shape[1] != hid):
            problems.append(
                f"'{_OUTPUT}' has shape {_shape(output)}: expected (patch channels, {hid}, 1, 1), a 1x1 "
                "convolution of the last layer's hidden state"
            )
        else:
            output_depth = int(output.shape[0])
            if first is not None and output_depth != first.input_dim:
                problems.append(
                    f"'{_OUTPUT}' makes {output_depth} channels and the first layer reads {first.input_dim}: "
                    "OpenSTL feeds its predictions back as the next input, so both are the patch channels"
                )
    if problems:
        raise ValueError(
            f"The state_dict is not an OpenSTL ConvLSTM's ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems)
        )
    return _Architecture(
        tuple(cell.input_dim for cell in read),
        tuple(cell.hidden_dim for cell in read),
        kernels[0],
        frames[0] if frames else None,
        output_depth,
    )


_MISSING = object()


def _config(configs: Any, name: str) -> Any:
    """OpenSTL config `name` from a dict or an object (argparse Namespace, Lightning hparams), or _MISSING."""
    if configs is None:
        return _MISSING
    if isinstance(configs, Mapping):
        value = configs.get(name, _MISSING)
    else:
        value = getattr(configs, name, _MISSING)
    return _MISSING if value is None else value


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else None


def _check_configs(
    configs: Any, found: _Architecture, frame_size: tuple[int, int] | None, whole: bool
) -> tuple[dict[str, Any], tuple[int, int] | None]:
    """Checks `configs` (and `frame_size`) against the weights; returns the whole model's settings and
    the cells' frame size (None where nothing says it)."""
    if whole:
        _check_required_configs(configs)
    problems: list[str] = []
    settings = _read_settings(configs, problems)
    _check_configs_against_weights(configs, found, problems)
    has_norms = found.norm_frame is not None
    _check_frame(settings, found, frame_size, problems)
    if problems:
        raise ValueError(
            f"The configs do not fit OpenSTL's weights ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems)
        )
    return settings, found.norm_frame if has_norms else None


def _check_required_configs(configs: Any) -> None:
    """Raises a ValueError where `configs` lacks what the whole model needs and the weights do not hold."""
    absent = [
        name
        for name in ("patch_size", "in_shape", "pre_seq_length", "aft_seq_length")
        if _config(configs, name) is _MISSING
    ]
    if configs is None:
        raise ValueError(
            "The state_dict holds OpenSTL's whole ConvLSTM_Model (it has 'conv_last.weight'): pass configs= "
            "with patch_size, in_shape, pre_seq_length and aft_seq_length, which the weights do not hold "
            "(a dict, or the config object OpenSTL was trained with); or pass only the 'cell_list.*' weights "
            "for the ConvLSTM stack alone."
        )
    if absent:
        raise ValueError(
            f"configs lacks {', '.join(absent)}: OpenSTL's whole ConvLSTM_Model needs patch_size, in_shape "
            "(T, C, H, W), pre_seq_length and aft_seq_length, which the weights do not hold."
        )


def _read_settings(configs: Any, problems: list[str]) -> dict[str, Any]:
    """The whole model's settings in `configs` (patch_size, in_shape, pre_seq_length, aft_seq_length),
    each checked; a problem found is appended to `problems`."""
    settings: dict[str, Any] = {}
    patch = _config(configs, "patch_size")
    if patch is not _MISSING:
        settings["patch_size"] = _int(patch)
        if settings["patch_size"] is None or settings["patch_size"] < 1:
            problems.append(f"configs patch_size must be a positive int, got {patch!r}")
    in_shape = _config(configs, "in_shape")
    if in_shape is not _MISSING:
        sizes = (
            tuple(_int(n) for n in in_shape) if isinstance(in_shape, Sequence) and not isinstance(in_shape, str) else ()
        )
        if len(sizes) != 4 or any(n is None or n < 1 for n in sizes):
            problems.append(f"configs in_shape must be (T, C, H, W), four positive ints, got {in_shape!r}")
        else:
            settings["in_shape"] = sizes
    for name in ("pre_seq_length", "aft_seq_length"):
        value = _config(configs, name)
        if value is not _MISSING:
            settings[name] = _int(value)
            if settings[name] is None or settings[name] < 1:
                problems.append(f"configs {name} must be a positive int, got {value!r}")
    total = _config(configs, "total_length")
    pre, aft = settings.get("pre_seq_length"), settings.get("aft_seq_length")
    if total is not _MISSING and pre and aft and total != pre + aft:
        problems.append(
            f"configs total_length is {total!r}, not pre_seq_length + aft_seq_length = {pre} + {aft} = {pre + aft}"
        )
    return settings


def _check_configs_against_weights(configs: Any, found: _Architecture, problems: list[str]) -> None:
    """Appends to `problems` where `configs`' stride, filter_size, layer_norm or num_hidden contradict
    the weights."""
    stride = _config(configs, "stride")
    if stride is not _MISSING and stride not in (1, (1, 1), [1, 1]):
        problems.append(
            f"configs stride is {stride!r}: OpenSTL's cell strides both its convolutions, the state-to-state one "
            "too, so its state shrinks at every step and its model runs with stride 1 only (this library's stride "
            "is the input-to-state convolution's)"
        )
    filter_size = _config(configs, "filter_size")
    if filter_size is not _MISSING and (filter_size,) * 2 != found.kernel and filter_size != found.kernel:
        problems.append(f"configs filter_size is {filter_size!r}, the weights' kernels are {found.kernel}")
    layer_norm = _config(configs, "layer_norm")
    has_norms = found.norm_frame is not None
    if layer_norm is not _MISSING and bool(layer_norm) != has_norms:
        held = "hold layer norms (conv_x.1.*, conv_h.1.*)" if has_norms else "hold no layer norm"
        problems.append(f"configs layer_norm is {layer_norm!r}, and the weights {held}")
    num_hidden = _config(configs, "num_hidden")
    if num_hidden is not _MISSING:
        try:
            hidden = tuple(int(n) for n in (num_hidden.split(",") if isinstance(num_hidden, str) else num_hidden))
        except (TypeError, ValueError):
            hidden = None
        if hidden != found.hidden_dims:
            problems.append(f"configs num_hidden is {num_hidden!r}, the weights' layers have {found.hidden_dims}")


def _check_frame(
    settings: dict[str, Any], found: _Architecture, frame_size: tuple[int, int] | None, problems: list[str]
) -> None:
    """Appends to `problems` where the frames that in_shape and patch_size make, `frame_size` and the
    layer norms' frames disagree, or where the patches do not fit the first layer."""
    has_norms = found.norm_frame is not None
    frame = None
    patch, in_shape = settings.get("patch_size"), settings.get("in_shape")
    if patch and in_shape:
        _, channels, height, width = in_shape
        if height % patch or width % patch:
            problems.append(
                f"configs in_shape {in_shape} does not cut into {patch}x{patch} patches (patch_size={patch}): "
                "H and W must be multiples of it"
            )
        else:
            frame = (height // patch, width // patch)
        depth = channels * patch * patch
        if depth != found.input_dims[0]:
            problems.append(
                f"configs patch_size={patch} and in_shape {in_shape} make patches of {patch}·{patch}·{channels} = "
                f"{depth} channels; the first layer reads {found.input_dims[0]} (cell_list.0.conv_x.0.weight)"
            )
    if frame_size is not None:
        if frame is not None and frame != frame_size:
            problems.append(f"frame_size is {frame_size}; configs in_shape and patch_size make frames of {frame}")
        frame = frame_size
    if has_norms and frame is not None and frame != found.norm_frame:
        problems.append(
            f"the layer norms are for frames of {found.norm_frame} (conv_x.1.weight's last two axes); "
            f"{'frame_size' if frame_size is not None else 'configs in_shape / patch_size'} says {frame}"
        )


def _check_frame_size(frame_size: Any) -> tuple[int, int] | None:
    if frame_size is None:
        return None
    if isinstance(frame_size, numbers.Integral) and not isinstance(frame_size, bool):
        frame_size = (frame_size, frame_size)
    if (
        not isinstance(frame_size, Sequence)
        or isinstance(frame_size, str)
        or len(frame_size) != 2
        or any(_int(n) is None for n in frame_size)
    ):
        raise TypeError(f"frame_size must be (H, W), two positive ints, or an int, got {frame_size!r}.")
    if any(n < 1 for n in frame_size):
        raise ValueError(f"frame_size must be (H, W), two positive ints, got {tuple(frame_size)}.")
    return tuple(int(n) for n in frame_size)


def _library_state_dict(layers, found: _Architecture, patch_order: np.ndarray | None) -> dict[str, np.ndarray]:
    """OpenSTL's cells as a `convlstm_torch.ConvLSTM` state_dict (gates reordered; the first layer's
    input channels in `space_to_depth` order where `patch_order` is given)."""
    state_dict = {}
    for index in range(len(found.hidden_dims)):
        weights = layers[index]
        x = openstl_gates_to_library(weights["conv_x.0.weight"])
        if index == 0 and patch_order is not None:
            x = x[:, patch_order]
        h = openstl_gates_to_library(weights["conv_h.0.weight"])
        prefix = f"cell_list.{index}."
        if found.norm_frame is None:  # one convolution over [X, H], the reference's fused layout
            state_dict[prefix + "conv.weight"] = np.concatenate([x, h], axis=1)
        else:
            state_dict[prefix + "conv_x.weight"] = x
            state_dict[prefix + "conv_h.weight"] = h
            for source, target in (("conv_x.1", "norm_x"), ("conv_h.1", "norm_h")):
                for leaf in ("weight", "bias"):
                    state_dict[f"{prefix}{target}.{leaf}"] = openstl_gates_to_library(weights[f"{source}.{leaf}"])
    return state_dict


def _check_weights(
    arrays: Mapping[str, np.ndarray], layers: Mapping, unused: list[str], unexpected: list[str], dtype: Any
) -> dict[str, np.ndarray]:
    """Raises a ValueError where the keys are not an OpenSTL ConvLSTM's, a weight is not floating-point,
    or the weights mix dtypes without `dtype`; returns the weights the model uses."""
    if unexpected or not layers:
        listed = ", ".join(repr(key) for key in sorted(unexpected, key=_natural)[:20])
        more = f" (and {len(unexpected) - 20} more)" if len(unexpected) > 20 else ""
        reason = (
            f"unexpected keys {listed}{more}"
            if unexpected
            else f"no 'cell_list.<l>.' key (keys: {sorted(arrays)[:10]})"
        )
        raise ValueError(
            f"The state_dict is not an OpenSTL ConvLSTM's: {reason}. Expected 'cell_list.<l>.conv_x.0.weight', "
            "'cell_list.<l>.conv_h.0.weight' (with layer norm also 'conv_x.1.*', 'conv_h.1.*'), the unused "
            "'cell_list.<l>.conv_o.*' and 'cell_list.<l>.conv_last.weight', and for the whole model 'conv_last.weight'."
        )
    floats = {key: array for key, array in arrays.items() if is_float(array.dtype)}
    not_float = sorted(arrays.keys() - floats.keys(), key=_natural)
    if not_float:
        raise ValueError(
            "OpenSTL's weights are floating-point; these are not: "
            + ", ".join(f"{key!r} ({arrays[key].dtype})" for key in not_float)
        )
    used = {key: array for key, array in arrays.items() if key not in unused}
    dtypes = sorted({str(array.dtype) for array in used.values()})
    if dtype is None and len(dtypes) > 1:
        raise ValueError(f"The weights mix dtypes {dtypes}: pass dtype= to cast them all to one.")
    return used


def _frame_predictor(
    stack: ConvLSTM, layers: Mapping, found: _Architecture, settings: dict[str, Any], output: np.ndarray
) -> tuple[FramePredictor, dict[str, Any]]:
    """OpenSTL's whole model as a `FramePredictor` and its variables, from its cast cells (`layers`),
    its `settings` and its output convolution's weight (`output`, cast)."""
    patch, (_, channels, _, _) = settings["patch_size"], settings["in_shape"]
    order = openstl_patch_order(patch, channels)
    params = dict(torch_to_flax(_library_state_dict(layers, found, order), stack)["params"])
    output = output[order]  # (C·p·p, hidden, 1, 1), space_to_depth's channel order
    params["output"] = {"kernel": kernel_to_flax(output)}
    model = FramePredictor(
        found.hidden_dims,
        found.kernel,
        in_channels=channels,
        patch_size=patch,
        pre_seq_length=settings["pre_seq_length"],
        aft_seq_length=settings["aft_seq_length"],
        layer_norm=stack.layer_norm,
        param_dtype=stack.param_dtype,
    )
    return model, {"params": params}


def from_openstl(
    state_dict: Mapping[str, Any],
    *,
    frame_size: int | tuple[int, int] | None = None,
    configs: Any = None,
    dtype: Any = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Reads OpenSTL's ConvLSTM weights into a Linen module of this library and its variables.

    What comes back depends on what the state_dict holds:

    - OpenSTL's cells only (`cell_list.<l>.*`): a `convlstm_jax.ConvLSTM` with `channels_last=True`,
      `batch_first=True`, `return_all_layers=False`, `bias=False`, `peephole=None` and `layer_norm`
      (with `frame_size`, the norms' H' x W') where the weights have norms. Its `layer_outputs[0]`
      is the last layer's hidden state at every step, (B, T, H', W', hidden), what OpenSTL's stack
      computes from the same inputs. The first layer reads OpenSTL's patch channels: feed it
      `openstl_patches(frames, patch_size)`.
    - OpenSTL's whole `ConvLSTM_Model` (the cells and a top-level `conv_last.weight`): a
      `FramePredictor` built from `configs` (what the weights do not hold: `patch_size`,
      `in_shape`, `pre_seq_length`, `aft_seq_length`). It takes frames (B, T, H, W, C) and returns
      every generated frame as OpenSTL's model does; `[:, -aft_seq_length:]` is what OpenSTL's
      method returns at test time (channels-last).

    OpenSTL's cells also hold a convolution `conv_o` (with its norm) and a 1x1 `conv_last` that
    their forward never uses: those keys are accepted and left out, with a warning naming them.

    Args:
      state_dict: OpenSTL's state_dict (torch tensors or arrays), or a checkpoint dict holding it
        under "state_dict" (a Lightning checkpoint of OpenSTL's method), "model" or
        "model_state_dict". Keys prefixed by "model." (the method's model) or "module."
        (DataParallel), in any number, are read without them.
      frame_size: (H', W'), the frames the cells read (for the whole model H/p x W/p), or None.
        Only checked: against the layer norms where the weights have them, against `configs`
        where they give it; the layer norms hold it.
      configs: OpenSTL's config (a dict, or an object such as its argparse Namespace or its
        method's hparams) with `patch_size`, `in_shape` (T, C, H, W), `pre_seq_length` and
        `aft_seq_length`, needed for the whole model. `filter_size`, `stride`, `layer_norm`,
        `num_hidden` and `total_length`, where given, are checked against the weights (`stride` must
        be 1: OpenSTL's cell strides both its convolutions, and its model runs with stride 1 only).
        `reverse_scheduled_sampling` changes training only: at test time both settings feed the
        model the context, then its own predictions.
      dtype: a dtype to cast every weight to, or None to keep the weights' dtype (the module's
        `param_dtype`).

    Returns:
      `(model, variables)`, ready for `model.apply(variables, ...)`.

    Raises:
      TypeError: the state_dict is not a mapping of arrays, or `frame_size` is malformed.
      ValueError: a key is unexpected or missing, a shape or dtype does not fit, or `configs`
        lacks or contradicts what the model needs; the message lists every problem it found.

    Example:
      A one-layer OpenSTL cell stack, 4 -> 8 channels, 3x3 kernels, without layer norm:

      >>> state_dict = {
      ...     "cell_list.0.conv_x.0.weight": np.zeros((32, 4, 3, 3), np.float32),
      ...     "cell_list.0.conv_h.0.weight": np.zeros((32, 8, 3, 3), np.float32),
      ... }
      >>> model, variables = from_openstl(state_dict)
      >>> type(model).__name__, model.hidden_dim, model.layer_norm, model.peephole
      ('ConvLSTM', (8,), False, None)
    """
    arrays = _unwrap(state_dict)
    frame_size = _check_frame_size(frame_size)
    layers, unused, unexpected = _read_layers(arrays)
    used = _check_weights(arrays, layers, unused, unexpected, dtype)
    found = _architecture(arrays, layers)
    whole = found.output_depth is not None
    settings, norm_frame = _check_configs(configs, found, frame_size, whole)
    if unused:
        warnings.warn(
            f"OpenSTL's ConvLSTMCell holds weights its forward never uses; left out: "
            f"{', '.join(sorted(unused, key=_natural))}.",
            stacklevel=2,
        )
    param_dtype = np.dtype(dtype) if dtype is not None else next(iter(used.values())).dtype
    cast = (lambda array: array.astype(param_dtype)) if dtype is not None else (lambda array: array)
    layers = {index: {name: cast(array) for name, array in weights.items()} for index, weights in layers.items()}
    stack = ConvLSTM(
        found.input_dims[0],
        list(found.hidden_dims),
        found.kernel,
        len(found.hidden_dims),
        batch_first=True,
        bias=False,
        return_all_layers=False,
        peephole=None,
        layer_norm=norm_frame is not None,
        frame_size=norm_frame,
        channels_last=True,
        param_dtype=param_dtype,
    )
    if not whole:
        return stack, torch_to_flax(_library_state_dict(layers, found, None), stack)
    return _frame_predictor(stack, layers, found, settings, cast(arrays[_OUTPUT]))


__all__ = ["from_openstl", "openstl_gates_to_library"]
