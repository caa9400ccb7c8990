"""Weights between `convlstm_torch` and `convlstm_jax`, with NumPy only.

The one module that knows both layouts:

| torch key (layer l: `cell_list.l.`) | torch shape          | Flax param (`cell_l/`)           | Flax shape          |
|--------------------------------------|----------------------|----------------------------------|---------------------|
| `conv.weight[:, :in]` (acts on X)    | (4·hid, in, kh, kw)  | `input_to_state/kernel`          | (kh, kw, in, 4·hid) |
| `conv.weight[:, in:]` (acts on H)    | (4·hid, hid, kh, kw) | `state_to_state/kernel`          | (kh, kw, hid, 4·hid)|
| `conv.bias`                          | (4·hid,)             | `input_to_state/bias`            | (4·hid,)            |
| `conv_x.weight`, `conv_x.bias`       | (4·hid, in, k'h, k'w)| `input_to_state/kernel`, `bias`  | (k'h,k'w,in,4·hid) |
| `conv_h.weight` (and `conv_h.bias`)  | (4·hid, hid, kh, kw) | `state_to_state/kernel` (`bias`) | (kh, kw, hid, 4·hid)|
| `conv_c.weight`, `conv_c.bias`       | (2·hid, hid, kh, kw) | `peephole_conv_if/kernel`, `bias`| (kh, kw, hid, 2·hid)|
| `conv_cnext.weight`, `.bias`         | (hid, hid, kh, kw)   | `peephole_conv_o/kernel`, `bias` | (kh, kw, hid, hid)  |
| `w_ci`, `w_cf`, `w_co`               | (hid, 1, 1)          | `peephole_i`, `_f`, `_o`         | (hid,)              |

Kernels are shown for images; for signals (`spatial_dims=1`) and volumes (3) they have one size per
spatial axis, (k,) or (kd, kh, kw), in the same places (torch `Conv1d`/`Conv3d` keys are the same),
and the peephole weights are (hid, 1) or (hid, 1, 1, 1).

`conv` is the seed's single convolution over [X, H]; a layer whose input-to-state kernel (k'h, k'w)
differs from its state-to-state kernel has `conv_x` and `conv_h` instead, and a layer without input
has `conv_h` alone, with the bias. The gate order (i, f, o, g) is the same on both sides. Conversion
only slices, transposes and reshapes, so torch -> Flax -> torch gives back the same bits.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

import ml_dtypes
import numpy as np

from convlstm_common import LayerSpec

_LAYER_KEY = re.compile(r"^cell_list\.(\d+)\.(.+)$")
_CONV = {
    "conv": "input_to_state",
    "conv_x": "input_to_state",
    "conv_h": "state_to_state",
    "conv_c": "peephole_conv_if",
    "conv_cnext": "peephole_conv_o",
}
_HADAMARD = {"w_ci": "peephole_i", "w_cf": "peephole_f", "w_co": "peephole_o"}


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: go through float32, exactly
            return value.float().numpy().astype(ml_dtypes.bfloat16)
        value = value.numpy()
    return np.asarray(value)


def _is_float(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.floating) or dtype == ml_dtypes.bfloat16


def expected_torch_shapes(specs: tuple[LayerSpec, ...], peephole: str | None, bias: bool) -> dict[str, tuple]:
    """The reference's state_dict keys and shapes for a stack of `specs`."""
    shapes: dict[str, tuple] = {}
    for index, spec in enumerate(specs):
        hid, kernel, prefix = spec.hidden_dim, spec.kernel_size, f"cell_list.{index}."
        # name: (out channels, in channels, kernel, has a bias)
        if spec.fused:
            convs = {"conv": (4 * hid, spec.input_dim + hid, kernel, bias)}
        else:
            convs = {"conv_h": (4 * hid, hid, kernel, bias and not spec.input_dim)}
            if spec.input_dim:
                convs["conv_x"] = (4 * hid, spec.input_dim, spec.input_kernel_size, bias)
        if peephole == "conv":
            convs.update(conv_c=(2 * hid, hid, kernel, bias), conv_cnext=(hid, hid, kernel, bias))
        for name, (out_channels, in_channels, size, has_bias) in convs.items():
            shapes[f"{prefix}{name}.weight"] = (out_channels, in_channels, *size)
            if has_bias:
                shapes[f"{prefix}{name}.bias"] = (out_channels,)
        if peephole == "hadamard":
            shapes.update({f"{prefix}{name}": (hid, *(1,) * spec.spatial_dims) for name in _HADAMARD})
    return shapes


def _kernel_to_flax(weight: np.ndarray) -> np.ndarray:
    """A torch kernel (O, I, *spatial) as a Flax one (*spatial, I, O)."""
    rank = weight.ndim - 2
    return np.transpose(weight, (*range(2, rank + 2), 1, 0))


def _kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """A Flax kernel (*spatial, I, O) as a torch one (O, I, *spatial)."""
    rank = kernel.ndim - 2
    return np.transpose(kernel, (rank + 1, rank, *range(rank)))


def _spatial_dims(state_dict: Mapping[str, np.ndarray]) -> int:
    """The spatial rank of a state_dict's convolutions (2 where none says)."""
    for key in sorted(state_dict, key=_natural):
        if key.endswith("weight") and key.rsplit(".", 2)[-2] in _CONV and 3 <= np.ndim(state_dict[key]) <= 5:
            return np.ndim(state_dict[key]) - 2
    return 2


def infer_architecture(
    state_dict: Mapping[str, np.ndarray], spatial_dims: int | None = None
) -> tuple[tuple[LayerSpec, ...], str | None, bool]:
    """Reads the stack's layers, peephole variant and bias from a state_dict's keys and shapes.

    The spatial rank is `spatial_dims`, or where None that of the first convolution's weight. A
    layer whose `conv.weight` is missing or malformed gets a best guess, so that the comparison
    with the expected keys reports every problem at once.
    """
    rank = _spatial_dims(state_dict) if spatial_dims is None else spatial_dims
    layers: dict[int, set[str]] = {}
    for key in state_dict:
        match = _LAYER_KEY.match(key)
        if match:
            layers.setdefault(int(match.group(1)), set()).add(match.group(2))
    names = set().union(*layers.values()) if layers else set()
    peephole = "conv" if names & {"conv_c.weight", "conv_c.bias", "conv_cnext.weight", "conv_cnext.bias"} else None
    if peephole is None and names & set(_HADAMARD):
        peephole = "hadamard"
    bias = bool(names & {"conv.bias", "conv_x.bias", "conv_h.bias"})
    specs = []
    previous_hidden = 0

    def shape_of(index: int, name: str) -> tuple[int, ...]:
        shape = tuple(getattr(state_dict.get(f"cell_list.{index}.{name}.weight"), "shape", ()))
        return shape if len(shape) == rank + 2 and shape[0] % 4 == 0 else ()

    for index in range(max(layers) + 1 if layers else 0):
        fused, state, inputs = shape_of(index, "conv"), shape_of(index, "conv_h"), shape_of(index, "conv_x")
        if fused and fused[1] > fused[0] // 4:
            hid = fused[0] // 4
            spec = LayerSpec(fused[1] - hid, hid, fused[2:])
        elif state:
            spec = LayerSpec(inputs[1] if inputs else 0, state[0] // 4, state[2:], inputs[2:] if inputs else None)
            if spec.fused:
                # Two convolutions with equal kernels: the input-to-state one changes the frame size.
                # Its padding, stride and dilation are not in the weights; "valid" stands for them.
                spec = dataclasses.replace(spec, padding="valid")
        else:
            spec = LayerSpec(previous_hidden or 1, previous_hidden or 1, (1,) * rank)
        specs.append(spec)
        previous_hidden = spec.hidden_dim
    # Layer l reads layer l-1's hidden state: build the expectation from that, not from the file.
    for index in range(1, len(specs)):
        specs[index] = dataclasses.replace(specs[index], input_dim=specs[index - 1].hidden_dim)
    return tuple(specs), peephole, bias


def _architecture(state_dict: Mapping[str, np.ndarray], model: Any) -> tuple[tuple[LayerSpec, ...], str | None, bool]:
    specs, peephole, bias = infer_architecture(state_dict, getattr(model, "spatial_dims", None))
    if model is None:
        return specs, peephole, bias
    model_specs = model.layer_specs()
    if model.input_dim is None:  # Inferred from the input: take it from the state_dict.
        first = dataclasses.replace(model_specs[0], input_dim=specs[0].input_dim if specs else 0)
        model_specs = (first, *model_specs[1:])
    return model_specs, model.peephole, model.bias


def _check_state_dict(state_dict: Mapping[str, np.ndarray], specs, peephole, bias, dtype) -> None:
    expected = expected_torch_shapes(specs, peephole, bias)
    problems = _dtype_problems(state_dict, dtype)
    for key in sorted(expected.keys() - state_dict.keys(), key=_natural):
        problems.append(f"missing key {key!r} (expected shape {expected[key]})")
    for key in sorted(state_dict.keys() - expected.keys(), key=_natural):
        problems.append(f"unexpected key {key!r} (shape {tuple(state_dict[key].shape)})")
    for key in sorted(expected.keys() & state_dict.keys(), key=_natural):
        array = state_dict[key]
        if tuple(array.shape) != expected[key]:
            problems.append(f"key {key!r} has shape {tuple(array.shape)}, expected {expected[key]}")
        elif not _is_float(array.dtype):
            problems.append(f"key {key!r} has dtype {array.dtype}, expected a floating-point dtype")
    if problems:
        description = ", ".join(f"{s.input_dim}->{s.hidden_dim} {'x'.join(map(str, s.kernel_size))}" for s in specs)
        hint = _prefix_hint(state_dict)
        found_peephole = infer_architecture(state_dict, specs[0].spatial_dims)[1]
        if found_peephole != peephole:
            hint += f"\nThese are the keys of peephole={found_peephole!r}."
        raise ValueError(
            f"The state_dict does not match a ConvLSTM with {len(specs)} layer(s) [{description}], "
            f"peephole={peephole!r}, bias={bias} ({len(problems)} problem(s)):\n  - " + "\n  - ".join(problems) + hint
        )


def _dtype_problems(state_dict: Mapping[str, np.ndarray], dtype: Any) -> list[str]:
    """Mixed float dtypes, or a dtype other than the model's `param_dtype`, are never cast silently."""
    by_dtype: dict[str, list[str]] = {}
    for key, array in state_dict.items():
        if _is_float(array.dtype):
            by_dtype.setdefault(str(array.dtype), []).append(key)
    if dtype is not None:
        wrong = {name: keys for name, keys in by_dtype.items() if name != str(np.dtype(dtype))}
        return [
            f"{len(keys)} key(s) have dtype {name} where the model's param_dtype is {np.dtype(dtype)} "
            f"({', '.join(sorted(keys, key=_natural)[:3])}{', ...' if len(keys) > 3 else ''}); pass dtype= to cast"
            for name, keys in sorted(wrong.items())
        ]
    if len(by_dtype) > 1:
        counts = ", ".join(
            f"{name} ({len(keys)} keys, e.g. {min(keys, key=_natural)!r})" for name, keys in by_dtype.items()
        )
        return [f"mixed dtypes: {counts}; pass dtype= to cast them all to one"]
    return []


def _prefix_hint(state_dict: Mapping[str, Any]) -> str:
    prefixes = {key[: key.find("cell_list.")] for key in state_dict if key.find("cell_list.") > 0}
    if len(prefixes) == 1:
        return f"\nThe keys start with {prefixes.pop()!r}: pass prefix= to strip it."
    return ""


def _natural(key: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def torch_to_flax(
    state_dict: Mapping[str, Any], model: Any = None, *, prefix: str = "", dtype: Any = None
) -> dict[str, Any]:
    """Converts a `convlstm_torch.ConvLSTM` state_dict into Flax variables for `convlstm_jax.ConvLSTM`.

    The architecture (layers, channels, kernels, peephole variant, bias) is read from the keys and
    shapes; pass `model` to hold the state_dict to that model's hyperparameters instead. Checkpoints
    of KL4805/ConvLSTM-Pytorch convert for `peephole="conv"`, those of ndrplz/ConvLSTM_pytorch for
    `peephole=None`. Needs no torch: values may be torch tensors or NumPy arrays.

    Dtypes are never changed silently: without `dtype`, every weight keeps its dtype (torch
    bfloat16 becomes `ml_dtypes.bfloat16`, exactly), and a state_dict mixing float dtypes, or one
    whose dtype is not `model.param_dtype`, is an error. With `dtype`, every weight is cast to it.

    Args:
      state_dict: a mapping from the reference's keys (`cell_list.0.conv.weight`, ...) to arrays.
      model: an optional `convlstm_jax.ConvLSTM` whose hyperparameters the weights must fit.
      prefix: a prefix to strip from every key (such as `"module."` or `"encoder."`); keys without
        it are ignored.
      dtype: a dtype to cast every weight to (such as `jnp.float32`), or None to keep them.

    Returns:
      `{"params": {"cell_0": {...}, ...}}`, ready for `model.apply`.

    Raises:
      ValueError: the state_dict does not fit; the message lists every missing, unexpected and
        mis-shaped key, with expected and found shapes.

    Example:
      An ndrplz-style checkpoint (no peepholes) of one layer, 1 -> 16 channels, 3x3 kernels:

      >>> state_dict = {
      ...     "cell_list.0.conv.weight": np.zeros((64, 17, 3, 3), np.float32),
      ...     "cell_list.0.conv.bias": np.zeros(64, np.float32),
      ... }
      >>> cell = torch_to_flax(state_dict)["params"]["cell_0"]
      >>> for name, p in sorted(cell.items()):
      ...     print(name, {k: v.shape for k, v in sorted(p.items())})
      input_to_state {'bias': (64,), 'kernel': (3, 3, 1, 64)}
      state_to_state {'kernel': (3, 3, 16, 64)}

      These variables are ready for `convlstm_jax.ConvLSTM(1, 16, (3, 3), 1, peephole=None).apply`.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping from keys to arrays, got {type(state_dict).__name__}.")
    if prefix:
        state_dict = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    arrays = {key: _to_numpy(value) for key, value in state_dict.items()}
    if dtype is not None:
        arrays = {key: value.astype(dtype) if _is_float(value.dtype) else value for key, value in arrays.items()}
    specs, peephole, bias = _architecture(arrays, model)
    if not specs:
        raise ValueError(
            f"The state_dict holds no ConvLSTM layer (no 'cell_list.<l>.' key); keys: {sorted(arrays)[:10]}."
        )
    expected_dtype = dtype if dtype is not None else (getattr(model, "param_dtype", None) if model else None)
    _check_state_dict(arrays, specs, peephole, bias, expected_dtype)

    params: dict[str, Any] = {}
    for index, spec in enumerate(specs):
        layer = {key.split(".", 2)[2]: value for key, value in arrays.items() if key.startswith(f"cell_list.{index}.")}
        cell: dict[str, Any] = {}
        for torch_name, flax_name in _CONV.items():
            if f"{torch_name}.weight" not in layer:
                continue
            kernel = _kernel_to_flax(layer[f"{torch_name}.weight"])  # OIHW -> HWIO
            if torch_name == "conv":
                cell["state_to_state"] = {"kernel": kernel[..., spec.input_dim :, :]}
                kernel = kernel[..., : spec.input_dim, :]
            cell[flax_name] = {"kernel": kernel}
            if f"{torch_name}.bias" in layer:
                cell[flax_name]["bias"] = layer[f"{torch_name}.bias"]
        for torch_name, flax_name in _HADAMARD.items():
            if torch_name in layer:
                cell[flax_name] = layer[torch_name].reshape(spec.hidden_dim)
        params[f"cell_{index}"] = cell
    return {"params": params}


def flax_to_torch(variables: Mapping[str, Any], model: Any = None) -> dict[str, np.ndarray]:
    """Converts `convlstm_jax.ConvLSTM` variables (or their gradients) into a reference state_dict.

    Args:
      variables: `{"params": {...}}` as `init` returns it, or the params mapping itself. Any
        tree of the same structure converts too, such as the gradients of a loss.
      model: the `convlstm_jax.ConvLSTM` the variables belong to. Needed only when an input-to-state
        convolution has the state-to-state kernel's size but another padding, stride or dilation:
        the reference then keeps two convolutions (`conv_x`, `conv_h`), not the seed's one.

    Returns:
      A dict from the reference's keys to NumPy arrays (writable copies), for
      `model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()})`.

    Raises:
      ValueError: a name is not one of this library's parameters; the message lists them all.
    """
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a mapping ({{'params': ...}}), got {type(variables).__name__}.")
    params = variables["params"] if "params" in variables else variables
    state_dict: dict[str, np.ndarray] = {}
    problems = []
    flax_to_torch_conv = {"peephole_conv_if": "conv_c", "peephole_conv_o": "conv_cnext"}
    flax_to_torch_hadamard = {flax_name: torch_name for torch_name, flax_name in _HADAMARD.items()}

    def put(name: str, value: Mapping[str, Any], kernel: np.ndarray) -> None:
        state_dict[f"{name}.weight"] = _kernel_to_torch(kernel)  # HWIO -> OIHW
        if "bias" in value:
            state_dict[f"{name}.bias"] = _to_numpy(value["bias"])

    specs = model.layer_specs() if model is not None else ()

    def plain(layer: int) -> bool:  # an input-to-state convolution that keeps the frame size
        if layer >= len(specs):
            return True
        spec = specs[layer]
        return spec.padding == "same" and set(spec.stride) == {1} and set(spec.dilation) == {1}

    for cell_name in sorted(params, key=_natural):
        match = re.fullmatch(r"cell_(\d+)", cell_name)
        if not match or not isinstance(params[cell_name], Mapping):
            problems.append(f"unexpected entry {cell_name!r} (expected cell_0, cell_1, ...)")
            continue
        prefix, cell = f"cell_list.{match.group(1)}.", params[cell_name]
        state = cell.get("state_to_state")
        rank = 2  # the spatial rank, read from the state-to-state kernel where there is one
        if not isinstance(state, Mapping) or "kernel" not in state:
            problems.append(f"{cell_name}: no 'state_to_state' kernel")
        else:
            kernel_h, inputs = _to_numpy(state["kernel"]), cell.get("input_to_state")
            rank = kernel_h.ndim - 2
            if isinstance(inputs, Mapping) and "kernel" in inputs:
                kernel_x = _to_numpy(inputs["kernel"])
                if kernel_x.shape[:-2] == kernel_h.shape[:-2] and plain(int(match.group(1))):  # the seed's one conv
                    put(prefix + "conv", inputs, np.concatenate([kernel_x, kernel_h], axis=-2))
                else:
                    put(prefix + "conv_x", inputs, kernel_x)
                    put(prefix + "conv_h", state, kernel_h)
            else:
                put(prefix + "conv_h", state, kernel_h)
        for name, value in cell.items():
            if name in flax_to_torch_hadamard:
                value = _to_numpy(value)
                state_dict[prefix + flax_to_torch_hadamard[name]] = value.reshape(value.shape[0], *(1,) * rank)
            elif name in flax_to_torch_conv and isinstance(value, Mapping) and "kernel" in value:
                put(prefix + flax_to_torch_conv[name], value, _to_numpy(value["kernel"]))
            elif name not in ("input_to_state", "state_to_state"):
                problems.append(f"{cell_name}: unexpected entry {name!r}")
    if problems:
        raise ValueError("These variables are not a convlstm_jax.ConvLSTM's:\n  - " + "\n  - ".join(problems))
    # Fresh, writable, C-ordered arrays: what `torch.from_numpy` takes without a warning.
    return {key: np.array(value, order="C") for key, value in state_dict.items()}


def read_state_dict(path: str | os.PathLike) -> Mapping[str, Any]:
    """Reads a reference checkpoint file's state_dict (see `load_checkpoint`), unconverted."""
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    if extension not in (".pt", ".pth", ".bin"):
        raise ValueError(
            f"Unknown checkpoint format {extension!r} for {path!r}: expected .safetensors, .pt, .pth or .bin."
        )
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"Loading {path!r} needs torch; or save the state_dict as .safetensors.") from error
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model_state_dict"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            return loaded[wrapper]
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path!r} holds a {type(loaded).__name__}, not a state_dict.")
    return loaded


def load_checkpoint(
    path: str | os.PathLike, model: Any = None, *, prefix: str = "", dtype: Any = None
) -> dict[str, Any]:
    """Loads a reference checkpoint file into Flax variables in one call.

    `.safetensors` files load without torch; `.pt`, `.pth` and `.bin` files go through
    `torch.load(..., weights_only=True)` and need torch installed. A file holding a dict with a
    `"state_dict"` or `"model_state_dict"` entry (as training scripts often save) is unwrapped.

    Args:
      path: the checkpoint file.
      model: an optional `convlstm_jax.ConvLSTM` whose hyperparameters the weights must fit.
      prefix: a prefix to strip from every key (such as `"module."`).
      dtype: a dtype to cast every weight to, or None to keep them (see `torch_to_flax`).

    Returns:
      `{"params": ...}`, as `torch_to_flax` returns it.
    """
    return torch_to_flax(read_state_dict(path), model, prefix=prefix, dtype=dtype)
