"""Weights between `convlstm_torch` and `convlstm_jax`, with NumPy only.

The one module that knows both layouts. `CONVERSION_TABLE` says, for a layer `l`, which torch
state_dict key (under `cell_list.l.`) holds which Flax params (under `cell_l/`), in which layers
(a condition on the layer's `LayerSpec`, the peephole variant and the bias), with which shape, and
how the values change on the way (`Transform`). `torch_to_flax`, `flax_to_torch` and
`expected_torch_shapes` read it; `infer_architecture` reads the layer specs from the weights of
either side:

>>> for entry in CONVERSION_TABLE:
...     print(f"{entry.torch:18} {', '.join(entry.flax):44} {entry.layers:15} {entry.transform.name}")
conv.weight        input_to_state/kernel, state_to_state/kernel fused           fused kernel
conv.bias          input_to_state/bias                          fused           as is
conv_x.weight      input_to_state/kernel                        separate, input kernel
conv_x.bias        input_to_state/bias                          separate, input as is
conv_h.weight      state_to_state/kernel                        separate        kernel
conv_h.bias        state_to_state/bias                          no input        as is
conv_c.weight      peephole_conv_if/kernel                      every           kernel
conv_c.bias        peephole_conv_if/bias                        every           as is
conv_cnext.weight  peephole_conv_o/kernel                       every           kernel
conv_cnext.bias    peephole_conv_o/bias                         every           as is
w_ci               peephole_i                                   every           hadamard
w_cf               peephole_f                                   every           hadamard
w_co               peephole_o                                   every           hadamard
norm_x.weight      input_norm/scale                             norm, input     norm
norm_x.bias        input_norm/bias                              norm, input     norm
norm_h.weight      state_norm/scale                             norm            norm
norm_h.bias        state_norm/bias                              norm            norm

Torch kernels are (O, I, *spatial), Flax kernels (*spatial, I, O), for one, two or three spatial
axes (`Conv1d`/`Conv2d`/`Conv3d` keys are the same). `conv` is KL4805/ConvLSTM-Pytorch's single convolution over
[X, H], (4·hid, in + hid, *k): its first `in` input channels act on X (`input_to_state`), the
others on H (`state_to_state`); a layer is fused where `LayerSpec.fused` says so. Otherwise it has
`conv_x` and `conv_h`, and a layer without input has `conv_h` alone, with the bias. `conv_c` is
(2·hid, hid, *k), `conv_cnext` (hid, hid, *k); the Hadamard peepholes are (hid, 1, ...) in torch
(one 1 per spatial axis) and (hid,) in Flax. A layer with `layer_norm` has the norms of its two
convolutions' outputs, (4·hid, *state) in torch and (*state, 4·hid) in Flax. The gate order
(i, f, o, g) is the same on both sides.
Conversion only slices, concatenates, transposes and reshapes, so torch -> Flax -> torch gives
back the same bits.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import ml_dtypes
import numpy as np

from convlstm_common import LayerSpec


def to_numpy(value: Any) -> np.ndarray:
    """`value` (a torch tensor, a JAX or NumPy array, or anything `np.asarray` takes) as a NumPy array.

    Torch tensors are detached and moved to the CPU without importing torch; torch bfloat16 becomes
    `ml_dtypes.bfloat16`, exactly.

    >>> to_numpy([1.0, 2.0])
    array([1., 2.])
    """
    if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: go through float32, exactly
            return value.float().numpy().astype(ml_dtypes.bfloat16)
        value = value.numpy()
    return np.asarray(value)


def is_float(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.floating) or dtype == ml_dtypes.bfloat16


def kernel_to_flax(weight: np.ndarray) -> np.ndarray:
    """A torch kernel (O, I, *spatial) as a Flax one (*spatial, I, O), for any number of spatial axes.

    >>> kernel_to_flax(np.zeros((8, 3, 5, 7))).shape
    (5, 7, 3, 8)
    """
    rank = weight.ndim - 2
    return np.transpose(weight, (*range(2, rank + 2), 1, 0))


def kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """A Flax kernel (*spatial, I, O) as a torch one (O, I, *spatial); the inverse of `kernel_to_flax`.

    >>> kernel_to_torch(np.zeros((5, 7, 3, 8))).shape
    (8, 3, 5, 7)
    """
    rank = kernel.ndim - 2
    return np.transpose(kernel, (rank + 1, rank, *range(rank)))


@dataclasses.dataclass(frozen=True)
class Transform:
    """How the values of one table entry change between the layouts.

    `to_flax(array, spec)` takes the torch array and gives one Flax array per path of the entry;
    `to_torch(arrays, spec)` takes those and gives the torch array back, bit for bit.
    """

    name: str
    to_flax: Callable[[np.ndarray, LayerSpec], tuple[np.ndarray, ...]]
    to_torch: Callable[[tuple[np.ndarray, ...], LayerSpec], np.ndarray]


def _split_fused(weight: np.ndarray, spec: LayerSpec) -> tuple[np.ndarray, np.ndarray]:
    kernel = kernel_to_flax(weight)  # the input channels are X's, then H's
    return kernel[..., : spec.input_dim, :], kernel[..., spec.input_dim :, :]


AS_IS = Transform("as is", lambda value, spec: (value,), lambda values, spec: values[0])
KERNEL = Transform(
    "kernel", lambda weight, spec: (kernel_to_flax(weight),), lambda kernels, spec: kernel_to_torch(kernels[0])
)
FUSED_KERNEL = Transform(
    "fused kernel", _split_fused, lambda kernels, spec: kernel_to_torch(np.concatenate(kernels, axis=-2))
)
HADAMARD = Transform(
    "hadamard",
    lambda weight, spec: (weight.reshape(spec.hidden_dim),),
    lambda values, spec: values[0].reshape(values[0].shape[0], *(1,) * spec.spatial_dims),
)

NORM = Transform(
    "norm",
    lambda value, spec: (np.moveaxis(value, 0, -1),),
    lambda values, spec: np.moveaxis(values[0], -1, 0),
)

LAYERS: dict[str, Callable[[LayerSpec], bool]] = {
    "fused": lambda spec: spec.fused,
    "separate": lambda spec: not spec.fused,
    "separate, input": lambda spec: not spec.fused and spec.input_dim > 0,
    "no input": lambda spec: not spec.input_dim,
    "norm": lambda spec: spec.layer_norm,
    "norm, input": lambda spec: spec.layer_norm and spec.input_dim > 0,
    "every": lambda spec: True,
}
"""The conditions on a layer's spec that `ConversionEntry.layers` names."""

SIZES: dict[str, Callable[[LayerSpec], tuple[int, ...]]] = {
    "4h": lambda spec: (4 * spec.hidden_dim,),
    "2h": lambda spec: (2 * spec.hidden_dim,),
    "h": lambda spec: (spec.hidden_dim,),
    "i": lambda spec: (spec.input_dim,),
    "i+h": lambda spec: (spec.input_dim + spec.hidden_dim,),
    "k": lambda spec: spec.kernel_size,
    "k'": lambda spec: spec.input_kernel_size,
    "1": lambda spec: (1,) * spec.spatial_dims,
    "s": lambda spec: spec.state_frame,
}
"""The sizes `ConversionEntry.shape` names: h hidden and i input channels, the state-to-state kernel
k and the input-to-state kernel k' (one size per spatial axis), a 1 per spatial axis, and the
state's size s for frames of the layer's `frame_size`."""


@dataclasses.dataclass(frozen=True)
class ConversionEntry:
    """One row of `CONVERSION_TABLE`: a torch key of layer l and the Flax params it holds.

    Attributes:
      torch: the key under `cell_list.<l>.`.
      flax: the param paths under `cell_<l>/` ("input_to_state/kernel"), in the order of
        `transform.to_flax`'s results.
      layers: the layers that have it, a key of `LAYERS` (a condition on the `LayerSpec`).
      peephole: the peephole variant it belongs to, or None where every variant has it.
      bias: whether only stacks with biases have it.
      shape: the torch shape, as keys of `SIZES`.
      transform: how the values change between the layouts.
    """

    torch: str
    flax: tuple[str, ...]
    layers: str
    peephole: str | None
    bias: bool
    shape: tuple[str, ...]
    transform: Transform

    def applies(self, spec: LayerSpec, peephole: str | None, bias: bool) -> bool:
        """Whether a layer of `spec` in a stack of `peephole` and `bias` has this entry."""
        return LAYERS[self.layers](spec) and self.peephole in (None, peephole) and (bias or not self.bias)

    def torch_shape(self, spec: LayerSpec) -> tuple[int, ...]:
        """The torch array's shape in a layer of `spec`.

        >>> CONVERSION_TABLE[0].torch_shape(LayerSpec(3, 16, (5, 5)))
        (64, 19, 5, 5)
        """
        return tuple(size for name in self.shape for size in SIZES[name](spec))


# fmt: off
CONVERSION_TABLE: tuple[ConversionEntry, ...] = (
    #                torch key            Flax paths (under cell_<l>/)
    #                layers               peephole    bias   torch shape         transform
    ConversionEntry("conv.weight",       ("input_to_state/kernel", "state_to_state/kernel"),
                    "fused",             None,       False, ("4h", "i+h", "k"), FUSED_KERNEL),
    ConversionEntry("conv.bias",         ("input_to_state/bias",),
                    "fused",             None,       True,  ("4h",),            AS_IS),
    ConversionEntry("conv_x.weight",     ("input_to_state/kernel",),
                    "separate, input",   None,       False, ("4h", "i", "k'"),  KERNEL),
    ConversionEntry("conv_x.bias",       ("input_to_state/bias",),
                    "separate, input",   None,       True,  ("4h",),            AS_IS),
    ConversionEntry("conv_h.weight",     ("state_to_state/kernel",),
                    "separate",          None,       False, ("4h", "h", "k"),   KERNEL),
    ConversionEntry("conv_h.bias",       ("state_to_state/bias",),  # without input, the bias moves here
                    "no input",          None,       True,  ("4h",),            AS_IS),
    ConversionEntry("conv_c.weight",     ("peephole_conv_if/kernel",),
                    "every",             "conv",     False, ("2h", "h", "k"),   KERNEL),
    ConversionEntry("conv_c.bias",       ("peephole_conv_if/bias",),
                    "every",             "conv",     True,  ("2h",),            AS_IS),
    ConversionEntry("conv_cnext.weight", ("peephole_conv_o/kernel",),
                    "every",             "conv",     False, ("h", "h", "k"),    KERNEL),
    ConversionEntry("conv_cnext.bias",   ("peephole_conv_o/bias",),
                    "every",             "conv",     True,  ("h",),             AS_IS),
    ConversionEntry("w_ci",              ("peephole_i",),
                    "every",             "hadamard", False, ("h", "1"),         HADAMARD),
    ConversionEntry("w_cf",              ("peephole_f",),
                    "every",             "hadamard", False, ("h", "1"),         HADAMARD),
    ConversionEntry("w_co",              ("peephole_o",),
                    "every",             "hadamard", False, ("h", "1"),         HADAMARD),
    ConversionEntry("norm_x.weight",     ("input_norm/scale",),
                    "norm, input",       None,       False, ("4h", "s"),        NORM),
    ConversionEntry("norm_x.bias",       ("input_norm/bias",),
                    "norm, input",       None,       False, ("4h", "s"),        NORM),
    ConversionEntry("norm_h.weight",     ("state_norm/scale",),
                    "norm",              None,       False, ("4h", "s"),        NORM),
    ConversionEntry("norm_h.bias",       ("state_norm/bias",),
                    "norm",              None,       False, ("4h", "s"),        NORM),
)
# fmt: on
"""Every weight of a ConvLSTM layer, torch key by torch key (see the module's docstring)."""


_LAYER_KEY = re.compile(r"^cell_list\.(\d+)\.(.+)$")
_CELL = re.compile(r"cell_(\d+)")
_CONV = {
    entry.torch.rsplit(".", 1)[0]
    for entry in CONVERSION_TABLE
    if entry.torch.endswith(".weight") and entry.transform is not NORM
}


def _variant(present: Callable[[ConversionEntry], bool]) -> tuple[str | None, bool]:
    """The peephole variant and bias of a stack whose weights include the entries `present` says."""
    found = [entry for entry in CONVERSION_TABLE if present(entry)]
    peepholes = {entry.peephole for entry in found}
    peephole = "conv" if "conv" in peepholes else "hadamard" if "hadamard" in peepholes else None
    return peephole, any(entry.bias and entry.peephole is None for entry in found)


def expected_torch_shapes(specs: tuple[LayerSpec, ...], peephole: str | None, bias: bool) -> dict[str, tuple]:
    """The reference's state_dict keys and shapes for a stack of `specs`.

    >>> expected_torch_shapes((LayerSpec(2, 4, (3, 3)),), peephole=None, bias=True)
    {'cell_list.0.conv.weight': (16, 6, 3, 3), 'cell_list.0.conv.bias': (16,)}
    """
    return {
        f"cell_list.{index}.{entry.torch}": entry.torch_shape(spec)
        for index, spec in enumerate(specs)
        for entry in CONVERSION_TABLE
        if entry.applies(spec, peephole, bias)
    }


def _spatial_dims(state_dict: Mapping[str, np.ndarray]) -> int:
    """The spatial rank of a state_dict's convolutions (2 where none says)."""
    for key in sorted(state_dict, key=_natural):
        owner = key.rpartition(".")[0].rpartition(".")[2]  # "cell_list.0.conv.weight" -> "conv"
        if key.endswith("weight") and owner in _CONV and 3 <= np.ndim(state_dict[key]) <= 5:
            return np.ndim(state_dict[key]) - 2
    return 2


def infer_architecture(
    weights: Mapping[str, Any], spatial_dims: int | None = None
) -> tuple[tuple[LayerSpec, ...], str | None, bool]:
    """Reads the stack's layers, peephole variant and bias from its weights' names and shapes.

    `weights` is a `convlstm_torch.ConvLSTM` state_dict (`cell_list.0.conv.weight`, ...; torch
    tensors or arrays), or `convlstm_jax.ConvLSTM` variables (`{"params": {"cell_0": ...}}` or the
    params mapping itself). The spatial rank is `spatial_dims`, or where None that of the first
    convolution's weight (of each layer's kernels, for Flax params).

    In a state_dict, a layer whose `conv.weight` is missing or malformed gets a best guess, so that
    the comparison with the expected keys reports every problem at once; layer l's input channels
    are layer l-1's hidden channels. A layer with `conv_x` and `conv_h` of equal kernels gets
    `padding="valid"`: its input-to-state convolution changes the frame size by a padding, stride
    or dilation that the weights do not hold, and "valid" stands for them. Flax params do not tell
    the two apart: their layers get `padding="same"` (pass the model's own specs where it matters).

    Returns:
      `(specs, peephole, bias)`: a `LayerSpec` per layer, the peephole variant ("conv",
      "hadamard" or None) and whether the convolutions have biases.

    Example:
      >>> state_dict = {
      ...     "cell_list.0.conv.weight": np.zeros((64, 17, 3, 3), np.float32),
      ...     "cell_list.0.conv.bias": np.zeros(64, np.float32),
      ... }
      >>> specs, peephole, bias = infer_architecture(state_dict)
      >>> [(s.input_dim, s.hidden_dim, s.kernel_size) for s in specs], peephole, bias
      ([(1, 16, (3, 3))], None, True)
      >>> infer_architecture(torch_to_flax(state_dict)) == (specs, peephole, bias)
      True
    """
    if any(isinstance(value, Mapping) for value in weights.values()):
        return _flax_architecture(weights, spatial_dims)
    rank = _spatial_dims(weights) if spatial_dims is None else spatial_dims
    layers: dict[int, set[str]] = {}
    for key in weights:
        match = _LAYER_KEY.match(key)
        if match:
            layers.setdefault(int(match.group(1)), set()).add(match.group(2))
    names = set().union(*layers.values()) if layers else set()
    peephole, bias = _variant(lambda entry: entry.torch in names)
    specs = []
    previous_hidden = 0

    def shape_of(index: int, name: str) -> tuple[int, ...]:
        shape = tuple(getattr(weights.get(f"cell_list.{index}.{name}.weight"), "shape", ()))
        return shape if len(shape) == rank + 2 and shape[0] % 4 == 0 else ()

    for index in range(max(layers) + 1 if layers else 0):
        fused, state, inputs = shape_of(index, "conv"), shape_of(index, "conv_h"), shape_of(index, "conv_x")
        if fused and fused[1] > fused[0] // 4:
            hid = fused[0] // 4
            spec = LayerSpec(fused[1] - hid, hid, fused[2:])
        elif state:
            spec = LayerSpec(inputs[1] if inputs else 0, state[0] // 4, state[2:], inputs[2:] if inputs else None)
            norm = tuple(getattr(weights.get(f"cell_list.{index}.norm_h.weight"), "shape", ()))
            if len(norm) == rank + 1:
                # Normalised layers keep two convolutions; the norms hold the state's size, taken as
                # the frame's ("same", stride 1: pass the model where its geometry is another).
                spec = dataclasses.replace(spec, layer_norm=True, frame_size=norm[1:])
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


def _flax_architecture(
    variables: Mapping[str, Any], spatial_dims: int | None
) -> tuple[tuple[LayerSpec, ...], str | None, bool]:
    """`infer_architecture` of Flax params: the kernels (*k, in, out) give each layer's spec."""
    params = variables["params"] if "params" in variables else variables
    cells = {}
    for name, cell in params.items():
        match = _CELL.fullmatch(str(name))
        if match and isinstance(cell, Mapping):
            cells[int(match.group(1))] = cell
    paths = {path for cell in cells.values() for path, _ in _leaves(cell)}
    peephole, bias = _variant(lambda entry: bool(paths & set(entry.flax)))
    specs = []
    previous_hidden = 0

    def shape_of(cell: Mapping[str, Any], name: str) -> tuple[int, ...]:
        conv = cell.get(name)
        shape = tuple(np.shape(conv["kernel"])) if isinstance(conv, Mapping) and "kernel" in conv else ()
        return shape if len(shape) >= 3 else ()

    for index in range(max(cells) + 1 if cells else 0):
        cell = cells.get(index, {})
        state, inputs = shape_of(cell, "state_to_state"), shape_of(cell, "input_to_state")
        if state and spatial_dims is not None and len(state) - 2 != spatial_dims:
            raise ValueError(
                f"cell_{index}/state_to_state/kernel has shape {state}: a {len(state) - 2}-D kernel "
                f"(*kernel_size, hidden_dim, 4·hidden_dim), not {spatial_dims}-D (spatial_dims={spatial_dims})."
            )
        hid = state[-2] if state else previous_hidden or 1
        kernel = state[:-2] or inputs[:-2] or (1,) * (spatial_dims or 2)
        spec = LayerSpec(inputs[-2] if inputs else 0, hid, kernel, inputs[:-2] or None)
        norm = cell.get("state_norm")
        if isinstance(norm, Mapping) and "scale" in norm:
            spec = dataclasses.replace(spec, layer_norm=True, frame_size=tuple(np.shape(norm["scale"]))[:-1])
        specs.append(spec)
        previous_hidden = spec.hidden_dim
    return tuple(specs), peephole, bias


def _architecture(state_dict: Mapping[str, np.ndarray], model: Any) -> tuple[tuple[LayerSpec, ...], str | None, bool]:
    specs, peephole, bias = infer_architecture(state_dict, getattr(model, "spatial_dims", None))
    if model is None:
        return specs, peephole, bias
    model_specs = model.layer_specs()
    if model.input_dim is None:  # Inferred from the input: take it from the state_dict.
        first = dataclasses.replace(model_specs[0], input_dim=specs[0].input_dim if specs else 0)
        model_specs = (first, *model_specs[1:])
    if model_specs and model_specs[0].layer_norm and model_specs[0].frame_size is None and specs:
        model_specs = frames_from_norms(model_specs, specs[0])
    return model_specs, model.peephole, model.bias


def frames_from_norms(model_specs: tuple[LayerSpec, ...], first: LayerSpec) -> tuple[LayerSpec, ...]:
    """A normalised model's layers, without a `frame_size` (taken from its input at init), with the
    frame sizes its weights hold: the first layer's norms are its state's size, its frame's where
    its input-to-state convolution keeps the size."""
    state = first.frame_size
    if state is None:
        raise ValueError(
            "This model normalises its layers (layer_norm=True), and the weights hold no layer norms: they "
            "are of a stack without layer_norm."
        )
    if model_specs[0].state_size(state) != state:
        raise ValueError(
            f"The weights' layer norms are for states of {state}, and this model's first input-to-state "
            "convolution changes the frame size: give the model its frame_size."
        )
    frame, chained = state, []
    for spec in model_specs:
        spec = dataclasses.replace(spec, frame_size=frame)
        frame = spec.state_frame
        chained.append(spec)
    return tuple(chained)


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
        elif not is_float(array.dtype):
            problems.append(f"key {key!r} has dtype {array.dtype}, expected a floating-point dtype")
    if problems:
        description = ", ".join(f"{s.input_dim}->{s.hidden_dim} {'x'.join(map(str, s.kernel_size))}" for s in specs)
        hint = _prefix_hint(state_dict)
        hint = f"\n{hint}" if hint else ""
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
        if is_float(array.dtype):
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
    """A hint to pass `prefix=` where every key shares one before `cell_list.` (as the keys of
    `nn.DataParallel`, `module.`, do), else ""."""
    prefixes = {key[: key.find("cell_list.")] for key in state_dict if key.find("cell_list.") > 0}
    if len(prefixes) == 1:
        return f"The keys start with {prefixes.pop()!r}: pass prefix= to strip it."
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
        mis-shaped key, with expected and found shapes. It holds no ConvLSTM layer (such as another
        module's state_dict), with a hint where every key has one prefix (`nn.DataParallel`'s
        `module.`); no key starts with `prefix`, naming a few of the keys.

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
        kept = {key[len(prefix) :]: value for key, value in state_dict.items() if str(key).startswith(prefix)}
        if not kept:
            keys = sorted(map(str, state_dict))
            raise ValueError(
                f"No key starts with prefix {prefix!r}; the keys: {keys[:5]}{' ...' if len(keys) > 5 else ''}."
            )
        state_dict = kept
    arrays = {key: to_numpy(value) for key, value in state_dict.items()}
    if dtype is not None:
        arrays = {key: value.astype(dtype) if is_float(value.dtype) else value for key, value in arrays.items()}
    specs, peephole, bias = _architecture(arrays, model)
    if not specs:
        hint = _prefix_hint(arrays)
        raise ValueError(
            f"The state_dict holds no ConvLSTM layer (no 'cell_list.<l>.' key); keys: {sorted(arrays)[:10]}."
            + (f" {hint}" if hint else "")
        )
    expected_dtype = dtype if dtype is not None else (getattr(model, "param_dtype", None) if model else None)
    _check_state_dict(arrays, specs, peephole, bias, expected_dtype)

    params: dict[str, Any] = {}
    for index, spec in enumerate(specs):
        cell: dict[str, Any] = {}
        for entry in CONVERSION_TABLE:
            if entry.applies(spec, peephole, bias):
                values = entry.transform.to_flax(arrays[f"cell_list.{index}.{entry.torch}"], spec)
                for path, value in zip(entry.flax, values):
                    *parents, leaf = path.split("/")
                    node = cell
                    for parent in parents:
                        node = node.setdefault(parent, {})
                    node[leaf] = value
        params[f"cell_{index}"] = cell
    return {"params": params}


def flax_to_torch(variables: Mapping[str, Any], model: Any = None) -> dict[str, np.ndarray]:
    """Converts `convlstm_jax.ConvLSTM` variables (or their gradients) into a reference state_dict.

    The layers are read from the params with `infer_architecture`; a layer is KL4805/ConvLSTM-Pytorch's single
    convolution (`conv`) where its `LayerSpec.fused` says so, else `conv_x` and `conv_h`.

    Args:
      variables: `{"params": {...}}` as `init` returns it, or the params mapping itself. Any
        tree of the same structure converts too, such as the gradients of a loss.
      model: the `convlstm_jax.ConvLSTM` the variables belong to. Needed only when an input-to-state
        convolution has the state-to-state kernel's size but another padding, stride or dilation:
        the reference then keeps two convolutions (`conv_x`, `conv_h`), not KL4805/ConvLSTM-Pytorch's one.

    Returns:
      A dict from the reference's keys to NumPy arrays (writable copies), for
      `model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()})`.

    Raises:
      ValueError: a name is not one of this library's parameters; the message lists them all.

    Example:
      >>> variables = {"params": {"cell_0": {
      ...     "input_to_state": {"kernel": np.zeros((3, 3, 1, 64)), "bias": np.zeros(64)},
      ...     "state_to_state": {"kernel": np.zeros((3, 3, 16, 64))},
      ... }}}
      >>> {key: value.shape for key, value in flax_to_torch(variables).items()}
      {'cell_list.0.conv.weight': (64, 17, 3, 3), 'cell_list.0.conv.bias': (64,)}
    """
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a mapping ({{'params': ...}}), got {type(variables).__name__}.")
    params = variables["params"] if "params" in variables else variables
    specs, peephole, bias = infer_architecture(params)
    model_specs = model.layer_specs() if model is not None else ()
    known = {path.split("/")[0] for entry in CONVERSION_TABLE for path in entry.flax}
    state_dict: dict[str, np.ndarray] = {}
    problems = []
    for cell_name in sorted(params, key=_natural):
        match = _CELL.fullmatch(str(cell_name))
        if not match or not isinstance(params[cell_name], Mapping):
            problems.append(f"unexpected entry {cell_name!r} (expected cell_0, cell_1, ...)")
            continue
        index, cell = int(match.group(1)), params[cell_name]
        spec = specs[index]
        if index < len(model_specs):  # the frame geometry is the model's, not in the weights
            geometry = model_specs[index]
            spec = dataclasses.replace(
                spec, padding=geometry.padding, stride=geometry.stride, dilation=geometry.dilation
            )
        leaves = {path: value for path, value in _leaves(cell)}
        covered = set()
        for entry in CONVERSION_TABLE:
            if not entry.applies(spec, peephole, bias):
                continue
            covered.update(entry.flax)
            missing = [path for path in entry.flax if path not in leaves]
            if not missing:
                arrays = tuple(to_numpy(leaves[path]) for path in entry.flax)
                state_dict[f"cell_list.{index}.{entry.torch}"] = entry.transform.to_torch(arrays, spec)
            elif not entry.bias:  # a bias may be left out; a kernel or peephole may not
                problems += [f"{cell_name}: no {_name(path)}" for path in missing]
        problems += [f"{cell_name}: unexpected entry {name!r}" for name in cell if name not in known]
        problems += [
            f"{cell_name}: unexpected entry {path!r}"
            for path in leaves
            if path not in covered and path.split("/")[0] in known
        ]
    if problems:
        raise ValueError(
            "These variables are not a convlstm_jax.ConvLSTM's:\n  - " + "\n  - ".join(dict.fromkeys(problems))
        )
    # Fresh, writable, C-ordered arrays: what `torch.from_numpy` takes without a warning.
    return {key: np.array(value, order="C") for key, value in state_dict.items()}


def _leaves(cell: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """A cell's params by path: ("input_to_state/kernel", array), ..., ("peephole_i", array)."""
    for name, value in cell.items():
        if isinstance(value, Mapping):
            yield from ((f"{name}/{key}", leaf) for key, leaf in value.items())
        else:
            yield name, value


def _name(path: str) -> str:
    """A param path for messages: 'state_to_state' kernel, 'peephole_i'."""
    parent, _, leaf = path.rpartition("/")
    return f"{parent!r} {leaf}" if parent else repr(leaf)


def param_shapes(tree: Any, path: str = "") -> dict[str, tuple[int, ...]]:
    """The shape of every leaf of a params tree, by its path (`cell_0/input_to_state/kernel`)."""
    if isinstance(tree, Mapping):
        shapes = {}
        for key, value in tree.items():
            shapes.update(param_shapes(value, f"{path}/{key}" if path else str(key)))
        return shapes
    return {path: tuple(np.shape(tree))}
