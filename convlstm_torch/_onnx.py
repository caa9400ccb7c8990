"""ONNX export of a `ConvLSTM` or `Bidirectional`: the whole-sequence model and the single-step one.

The time loop is exported as one ONNX `Scan` (torch's `scan` higher-order op, which
`torch.onnx.export(..., dynamo=True)` translates), so the sequence length stays dynamic; the
layers of a stack run inside the same `Scan` body, step by step (layer l at step t reads layer
l - 1 at step t and its own state at step t - 1, as in the layer-by-layer reference).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from convlstm_common import spatial_axes

from ._bidirectional import Bidirectional
from ._convlstm import ConvLSTM, flip_sequences

MIN_OPSET = 18
"""The oldest ONNX opset the export writes (torch's exporter translates to opset 18 and newer)."""

MAX_OPSET = 25
"""The newest ONNX opset tested (with onnxruntime 1.32)."""

_EXTERNAL_DATA_BYTES = 1 << 30
"""Weights larger than this go to a `.data` file beside the model (ONNX files hold at most 2 GiB)."""


def _stacks(model: ConvLSTM | Bidirectional) -> list[ConvLSTM]:
    return [model.forward_layer, model.backward_layer] if isinstance(model, Bidirectional) else [model]


def _returned(stack: ConvLSTM) -> list[int]:
    return list(range(stack.num_layers)) if stack.return_all_layers else [stack.num_layers - 1]


def onnx_input_names(
    model: ConvLSTM | Bidirectional, *, step: bool = False, initial_state: bool = False, seq_lengths: bool = False
) -> list[str]:
    """The names of the ONNX model's inputs that `to_onnx` writes with these options, in order."""
    stack = _stacks(model)[0]
    names = ["x"]
    if step or initial_state:
        suffixes = ["", "_backward"] if isinstance(model, Bidirectional) else [""]
        names += [f"{s}{layer}{suffix}" for suffix in suffixes for layer in range(stack.num_layers) for s in "hc"]
    if seq_lengths:
        names.append("seq_lengths")
    return names


def onnx_output_names(model: ConvLSTM | Bidirectional, *, step: bool = False) -> list[str]:
    """The names of the ONNX model's outputs that `to_onnx` writes, in order."""
    stack = _stacks(model)[0]
    if step:
        return [f"{s}{layer}_out" for layer in range(stack.num_layers) for s in "hc"]
    layers = _returned(stack)
    names = [f"output{layer}" for layer in layers]
    suffixes = ["", "_backward"] if isinstance(model, Bidirectional) else [""]
    return names + [f"{s}{layer}{suffix}_out" for suffix in suffixes for layer in layers for s in "hc"]


def _to_channels_first(x: torch.Tensor, axis: int) -> torch.Tensor:
    return x.movedim(-1, axis)


def _to_channels_last(x: torch.Tensor, axis: int) -> torch.Tensor:
    return x.movedim(axis, -1)


def _state_frames(stack: ConvLSTM, frame: tuple) -> list[tuple]:
    """Each layer's state frame for input frames of size `frame` (ints, or the exporter's symbolic
    sizes): the output size of its input-to-state convolution, without `state_size`'s check, which
    the example passed."""
    frames = []
    for cell in stack.cell_list:
        spec = cell.spec
        if spec.input_dim:
            frame = tuple(
                (n + 2 * p - d * (k - 1) - 1) // s + 1
                for n, p, d, k, s in zip(frame, spec.input_padding, spec.dilation, spec.input_kernel_size, spec.stride)
            )
        frames.append(frame)
    return frames


def _run_stack(stack: ConvLSTM, x: torch.Tensor, state, valid: torch.Tensor | None, lengths: torch.Tensor | None):
    """`stack`'s forward pass on a batch-first `x` (B, T, C, ...) as one `scan` over time.

    `state` is None or one `(h, c)` per layer; `valid` (T, B) says which steps are within each
    sequence's length (None: all). Returns every layer's outputs (batch-first) and final states.
    """
    b, _, _, *frame = x.shape
    if state is None:  # zeros, of sizes computed from the (possibly symbolic) frame
        state = [
            tuple(torch.zeros((b, cell.hidden_dim, *f), device=x.device, dtype=x.dtype) for _ in "hc")
            for cell, f in zip(stack.cell_list, _state_frames(stack, tuple(frame)))
        ]
    if stack.reverse:
        x = flip_sequences(x, lengths)
    cells = list(stack.cell_list)

    def step(carry, inputs):
        x_t = inputs[0]
        new_carry, outputs = [], []
        for layer, cell in enumerate(cells):
            h, c = carry[2 * layer], carry[2 * layer + 1]
            h_next, c_next = cell._step(x_t, h, c)
            if len(inputs) > 1:  # Past its end, a sequence keeps its state and outputs zeros.
                keep = inputs[1].view(-1, *(1,) * (h.dim() - 1))
                h_next, c_next, y = (
                    torch.where(keep, h_next, h),
                    torch.where(keep, c_next, c),
                    torch.where(keep, h_next, torch.zeros_like(h_next)),
                )
            else:
                y = h_next.clone()  # a scan output must not alias the carry
            new_carry += [h_next, c_next]
            outputs.append(y)
            x_t = y
        return new_carry, outputs

    from torch._higher_order_ops.scan import scan

    xs = [x.transpose(0, 1)] + ([] if valid is None else [valid])
    carry, ys = scan(step, [t for pair in state for t in pair], xs)
    outputs = [y.transpose(0, 1) for y in ys]
    if stack.reverse and stack.keep_order:
        outputs = [flip_sequences(y, lengths) for y in outputs]
    return outputs, [(carry[2 * layer], carry[2 * layer + 1]) for layer in range(len(cells))]


class _Sequence(nn.Module):
    """The whole-sequence model on flat inputs and outputs, as the ONNX model has them."""

    def __init__(self, model, initial_state: bool, seq_lengths: bool, channels_last: bool):
        super().__init__()
        self.model = model
        self.initial_state, self.seq_lengths, self.channels_last = initial_state, seq_lengths, channels_last

    def forward(self, x: torch.Tensor, *rest: torch.Tensor):
        stacks = _stacks(self.model)
        first = stacks[0]
        if self.channels_last:
            x = _to_channels_first(x, 2)
        if not first.batch_first:
            x = x.transpose(0, 1)
        rest = list(rest)
        states = [None] * len(stacks)
        if self.initial_state:  # h0, c0, h1, c1, ... for each direction
            for direction in range(len(stacks)):
                pairs = []
                for _ in range(first.num_layers):
                    h, c, *rest = rest
                    if self.channels_last:
                        h, c = _to_channels_first(h, 1), _to_channels_first(c, 1)
                    pairs.append((h, c))
                states[direction] = pairs
        lengths = valid = None
        if self.seq_lengths:
            lengths = rest.pop(0).to(torch.long)
            valid = torch.arange(x.shape[1], device=x.device)[:, None] < lengths[None, :]
        runs = [_run_stack(stack, x, state, valid, lengths) for stack, state in zip(stacks, states)]
        layers = _returned(first)
        outputs = [runs[0][0][layer] for layer in layers]
        if isinstance(self.model, Bidirectional):
            backward = [runs[1][0][layer] for layer in layers]
            if self.model.merge == "sum":
                outputs = [f + b for f, b in zip(outputs, backward)]
            else:
                outputs = [torch.cat([f, b], dim=2) for f, b in zip(outputs, backward)]
        finals = [t for _, final in runs for layer in layers for t in final[layer]]
        if self.channels_last:
            outputs = [_to_channels_last(y, 2) for y in outputs]
            finals = [_to_channels_last(t, 1) for t in finals]
        return (*outputs, *finals)


class _Step(nn.Module):
    """One step of every layer: (x_t, h0, c0, h1, c1, ...) -> (h0', c0', h1', c1', ...)."""

    def __init__(self, model: ConvLSTM, channels_last: bool):
        super().__init__()
        self.model, self.channels_last = model, channels_last

    def forward(self, x: torch.Tensor, *state: torch.Tensor):
        if self.channels_last:
            x = _to_channels_first(x, 1)
            state = [_to_channels_first(t, 1) for t in state]
        new = []
        for layer, cell in enumerate(self.model.cell_list):
            h, c = cell._step(x, state[2 * layer], state[2 * layer + 1])
            new += [h, c]
            x = h
        if self.channels_last:
            new = [_to_channels_last(t, 1) for t in new]
        return tuple(new)


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _check_arguments(model, path, example_input, step, dynamic, opset, initial_state, seq_lengths, channels_last):
    """Checks every argument; returns the output path and the example as a torch tensor in the
    torch layout (a sequence, or one frame with `step`)."""
    if not isinstance(model, (ConvLSTM, Bidirectional)):
        raise TypeError(f"model must be a convlstm_torch.ConvLSTM or Bidirectional, got {type(model).__name__}.")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"path's directory {str(path.parent)!r} does not exist.")
    for name, flag in [
        ("step", step),
        ("dynamic", dynamic),
        ("initial_state", initial_state),
        ("seq_lengths", seq_lengths),
    ]:
        if not _is_bool(flag):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}.")
    if opset is not None and (isinstance(opset, (bool, np.bool_)) or not isinstance(opset, (int, np.integer))):
        raise TypeError(f"opset must be None or an int, got {type(opset).__name__}.")
    if opset is not None and not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must lie in [{MIN_OPSET}, {MAX_OPSET}] (or be None for torch's default), got {opset}.")
    if step and isinstance(model, Bidirectional):
        raise ValueError(
            "step=True exports one step of a unidirectional ConvLSTM; a Bidirectional model's backward "
            "direction needs the whole sequence: export it with step=False."
        )
    if step and (initial_state or seq_lengths):
        raise ValueError(
            "initial_state and seq_lengths are options of the whole-sequence model (step=False); the step "
            "model always takes each layer's state."
        )
    stack = _stacks(model)[0]
    x = _example_frames(stack, _example_tensor(example_input), step, channels_last)
    stack.state_sizes(tuple(x.shape[-stack.spatial_dims :]))  # a frame too small for a valid convolution
    weight = next(model.parameters())
    return path, x.to(device=weight.device, dtype=weight.dtype)


def _example_tensor(example_input: Any) -> torch.Tensor:
    """`example_input` (a floating-point torch tensor or NumPy array) as a torch tensor."""
    if isinstance(example_input, np.ndarray):
        if not np.issubdtype(example_input.dtype, np.floating):
            raise TypeError(f"example_input must have a floating-point dtype, got {example_input.dtype}.")
        example_input = torch.from_numpy(np.ascontiguousarray(example_input))
    if not torch.is_tensor(example_input):
        raise TypeError(f"example_input must be a torch.Tensor or a NumPy array, got {type(example_input).__name__}.")
    if not example_input.is_floating_point():
        raise TypeError(f"example_input must have a floating-point dtype, got {example_input.dtype}.")
    return example_input


def _example_frames(stack: ConvLSTM, example_input: torch.Tensor, step: bool, channels_last: bool) -> torch.Tensor:
    """Checks the example's shape against the model; returns it detached in the torch layout: a
    sequence, or one frame with `step`."""
    axes = spatial_axes(stack.spatial_dims)
    frame_axes = f"{axes}, C" if channels_last else f"C, {axes}"
    sequence = f"({'B, T' if stack.batch_first else 'T, B'}, {frame_axes})"
    frame = f"(B, {frame_axes})"
    rank = stack.spatial_dims + 3
    expected = f"a sequence {sequence}" + (f" or one frame {frame}" if step else "")
    if example_input.dim() not in ((rank, rank - 1) if step else (rank,)):
        raise ValueError(
            f"example_input must be {expected} (spatial_dims={stack.spatial_dims}), "
            f"got shape {tuple(example_input.shape)}."
        )
    x = example_input.detach()
    if x.dim() == rank:
        if channels_last:
            x = _to_channels_first(x, 2)
        channels = x.shape[2]
        empty = 0 in x.shape[:2] + x.shape[3:]
    else:
        if channels_last:
            x = _to_channels_first(x, 1)
        channels = x.shape[1]
        empty = 0 in x.shape[:1] + x.shape[2:]
    if channels != stack.input_dim:
        where = "last" if channels_last else ("dim 2" if example_input.dim() == rank else "dim 1")
        raise ValueError(
            f"example_input has {channels} channels ({where} of {tuple(example_input.shape)}); the model's "
            f"input_dim is {stack.input_dim}."
        )
    if empty:
        raise ValueError(
            f"example_input must not have an empty dimension but channels, got shape {tuple(example_input.shape)}."
        )
    if x.dim() == rank and step:
        x = x[:, 0] if stack.batch_first else x[0]
    return x


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """Every submodule in eval mode (dropout off) inside; each module's own mode restored after."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode


@contextlib.contextmanager
def _quiet_exporter():
    """Silences the exporter's notices that are not the caller's to act on: its own deprecations,
    a dynamic axis named once per input, and the log of operators it skips (torchvision's)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message="# The axis name: .* will not be used", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


_TRACE_SIZES = {"batch": 2, "steps": 3}
"""The sizes at which the dynamic axes are traced (a frame axis: 4 + its least size + its index)."""

FRAME_AXES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}
"""The names of the ONNX model's dynamic frame axes, by the number of spatial axes."""


def fixed_frame_reason(model: ConvLSTM | Bidirectional, step: bool = False, initial_state: bool = False) -> str | None:
    """Why `to_onnx` exports `model` at the example's frame size even with `dynamic=True`, or None
    where the frame size is dynamic."""
    stack = _stacks(model)[0]
    specs = [cell.spec for cell in stack.cell_list]
    if any(spec.layer_norm for spec in specs):
        return "its layer norms' weights are for frames of that size"
    strided = any(set(spec.stride) != {1} for spec in specs if spec.input_dim)
    if (step or initial_state) and (strided or any(any(offset) for offset in _state_offsets(stack))):
        return (
            "its states are inputs whose frame sizes differ from the frame's (its padding, stride or dilation), "
            "which torch's exporter does not take as dynamic"
        )
    return None


def _least_frame(stack: ConvLSTM, frame: tuple[int, ...]) -> list[int] | None:
    """Per axis, the least size at which the frame and every layer's state have 2 positions or more
    (torch's exporter traces a size of 1 as a case of its own), the other axes as `frame`; None
    where `frame` itself is smaller."""
    least = []
    for axis in range(len(frame)):
        for n in range(2, frame[axis] + 1):
            sizes = _state_frames(stack, (*frame[:axis], n, *frame[axis + 1 :]))
            if all(size[axis] >= 2 for size in sizes):
                least.append(n)
                break
        else:
            return None
    return least


def _state_offsets(stack: ConvLSTM) -> list[tuple[int, ...]]:
    """Per layer, each axis's state size minus the frame's (stride 1 throughout: sizes differ by a constant)."""
    offsets, total = [], [0] * stack.spatial_dims
    for cell in stack.cell_list:
        spec = cell.spec
        if spec.input_dim:
            for axis, (p, d, k) in enumerate(zip(spec.input_padding, spec.dilation, spec.input_kernel_size)):
                total[axis] += 2 * p - d * (k - 1)
        offsets.append(tuple(total))
    return offsets


def _resize(x: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    # `x` with `size` copies of its first entry along `axis`.
    shape = list(x.shape)
    shape[axis] = size
    return x.narrow(axis, 0, 1).expand(shape).contiguous()


def export_onnx(
    model: ConvLSTM | Bidirectional,
    path: str | os.PathLike,
    example_input: Any,
    *,
    step: bool = False,
    dynamic: bool = True,
    opset: int | None = None,
    initial_state: bool = False,
    seq_lengths: bool = False,
    channels_last: bool = False,
) -> pathlib.Path:
    """`to_onnx`, with `channels_last`: the ONNX model then takes and returns channels-last frames
    (..., H, W, C) (the Linen layout), transposed inside the graph."""
    import onnx
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    path, x = _check_arguments(
        model, path, example_input, step, dynamic, opset, initial_state, seq_lengths, channels_last
    )
    stack = _stacks(model)[0]
    first_frame_axis = 2 if step else 3  # in the torch layout
    least = _least_frame(stack, tuple(x.shape[first_frame_axis:]))
    dynamic_frame = dynamic and least is not None and fixed_frame_reason(model, step, initial_state) is None
    x, axes = _trace_input(stack, x, step, dynamic, least if dynamic_frame else None)
    wrapper, args, n_states = _wrapper_and_args(model, x, step, initial_state, seq_lengths, channels_last)
    frame_names = FRAME_AXES[stack.spatial_dims] if dynamic_frame else ()
    dynamic_axes, derived, dynamic_shapes, axis_names = _dynamic_axes(
        args, axes, n_states, frame_names, least, step, dynamic, channels_last
    )
    inputs = onnx_input_names(model, step=step, initial_state=initial_state, seq_lengths=seq_lengths)
    outputs = onnx_output_names(model, step=step)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    with _eval_mode(wrapper), _quiet_exporter(), torch.no_grad():
        # Captured here in strict mode: in the exporter's default (non-strict) capture, `scan` runs
        # through torch.compile, whose cache entries from an earlier export at fixed sizes can fix
        # a dynamic axis (which the exporter then accepts as a "suggested fix").
        exported = torch.export.export(wrapper, tuple(args), dynamic_shapes=dynamic_shapes, strict=True)
        program = torch.onnx.export(
            exported,
            tuple(args),
            dynamo=True,
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=axis_names,  # names the ONNX dims
            opset_version=opset,
            verbose=False,
        )
    _check_program(program, inputs, outputs, dynamic_axes, derived)
    # The exporter leaves copies of constants that no node reads (onnxruntime warns of each).
    RemoveUnusedNodesPass()(program.model)
    program.save(str(path), external_data=size > _EXTERNAL_DATA_BYTES)
    onnx.checker.check_model(str(path), full_check=True)
    return path


def _trace_input(
    stack: ConvLSTM, x: torch.Tensor, step: bool, dynamic: bool, least: list[int] | None
) -> tuple[torch.Tensor, dict[str, int]]:
    """The example resized along the axes left dynamic, and those axes (name: axis of x).

    Each dynamic axis is traced at a size of its own (a batch of 2, 3 steps; a frame axis at
    `least` + 4 + its index, where `least` is given), as the exporter may fix an axis of size 0
    or 1, or tie two axes of one size together.
    """
    axes = {}  # name: axis of x
    if dynamic:
        if step:
            axes = {"batch": 0}
        else:
            axes = {"batch": 0, "steps": 1} if stack.batch_first else {"steps": 0, "batch": 1}
        for name, axis in axes.items():
            x = _resize(x, axis, _TRACE_SIZES[name])
    if least is not None:
        first_frame_axis = 2 if step else 3
        for axis in range(stack.spatial_dims):
            x = _resize(x, first_frame_axis + axis, least[axis] + 4 + axis)
    return x, axes


def _wrapper_and_args(
    model: ConvLSTM | Bidirectional,
    x: torch.Tensor,
    step: bool,
    initial_state: bool,
    seq_lengths: bool,
    channels_last: bool,
) -> tuple[nn.Module, list[torch.Tensor], int]:
    """The module to export, its example arguments (x, each layer's states, the lengths) and the
    number of state arguments."""
    stack = _stacks(model)[0]
    if step:
        wrapper = _Step(model, channels_last)
        b, frame = x.shape[0], tuple(x.shape[2:])
    else:
        wrapper = _Sequence(model, initial_state, seq_lengths, channels_last)
        (b, t), frame = (x.shape[:2] if stack.batch_first else x.shape[1::-1]), tuple(x.shape[3:])
    frames = [frame, *stack.state_sizes(frame)[:-1]]  # what each layer reads
    states = []
    if step or initial_state:  # new tensors for each: torch.export makes one input of a tensor passed twice
        states = [t_ for s in _stacks(model) for cell, f in zip(s.cell_list, frames) for t_ in cell.init_hidden(b, f)]
    if channels_last:
        x = _to_channels_last(x, 1 if step else 2)
        states = [_to_channels_last(s, 1) for s in states]
    args = [x, *states] + ([torch.full((b,), t, dtype=torch.int64, device=x.device)] if seq_lengths else [])
    return wrapper, args, len(states)


def _dynamic_axes(args, axes, n_states, frame_names, least, step, dynamic, channels_last):
    """What is dynamic, for torch.export and for the ONNX dims' names.

    The axes of x, then the batch axis of every other input; the frame axes of x, and those of each
    state input (of the frame's size: `fixed_frame_reason` fixes it otherwise). Returns the names by
    input (`[{axis: name}]`), each state input's frame dims (`[{axis: Dim}]`), torch.export's
    `dynamic_shapes` and the exporter's axis names (both None with `dynamic=False`).
    """
    dynamic_axes = [{axis: name for name, axis in axes.items()}]
    dynamic_axes += [{0: "batch"} if dynamic else {} for _ in args[1:]]
    derived = []  # per state input: {axis: frame dim}
    if not dynamic:
        return dynamic_axes, derived, None, None
    first_frame_axis = 2 if step else 3
    x_frame = (first_frame_axis - 1 if channels_last else first_frame_axis) if frame_names else 0
    state_frame = 1 if channels_last else 2
    dims = {name: torch.export.Dim(name) for name in axes}
    dims.update({name: torch.export.Dim(name, min=n) for name, n in zip(frame_names, least or ())})
    shapes = [{axis: dims[name] for axis, name in entry.items()} for entry in dynamic_axes]
    if frame_names:  # x's frame axes, and those of the state inputs (with step or initial_state)
        dynamic_axes[0].update({x_frame + axis: name for axis, name in enumerate(frame_names)})
        shapes[0].update({x_frame + axis: dims[name] for axis, name in enumerate(frame_names)})
        for index in range(n_states):
            derived.append({state_frame + a: dims[name] for a, name in enumerate(frame_names)})
            shapes[1 + index].update(derived[-1])
    # forward(x, *rest): torch.export reads (x's, (rest's ...)), or (x's,) without rest.
    dynamic_shapes = (shapes[0], tuple(shapes[1:])) if len(args) > 1 else (shapes[0],)
    axis_names = (dynamic_axes[0], tuple(dynamic_axes[1:])) if len(args) > 1 else (dynamic_axes[0],)
    return dynamic_axes, derived, dynamic_shapes, axis_names


def _check_program(program, inputs: list[str], outputs: list[str], dynamic_axes: list, derived: list) -> None:
    """Raises a RuntimeError where the exported model's inputs or outputs are not named `inputs` and
    `outputs`, or where the exporter fixed an axis meant to be dynamic."""
    for kind, graph_values, names in [
        ("inputs", program.model.graph.inputs, inputs),
        ("outputs", program.model.graph.outputs, outputs),
    ]:
        if [value.name for value in graph_values] != names:
            raise RuntimeError(f"The exported model's {kind} are {[v.name for v in graph_values]}, not {names}.")
    for value, entry in zip(program.model.graph.inputs, dynamic_axes):
        for axis, name in entry.items():
            if value.shape[axis] != name:
                raise RuntimeError(
                    f"torch's exporter made axis {axis} ({name}) of the ONNX input {value.name!r} "
                    f"{value.shape[axis]!r}; export with dynamic=False for fixed sizes."
                )
    for value, entry in zip(program.model.graph.inputs[1:], derived):
        for axis in entry:
            if isinstance(value.shape[axis], int):
                raise RuntimeError(
                    f"torch's exporter fixed axis {axis} of the ONNX input {value.name!r} to {value.shape[axis]}; "
                    "export with dynamic=False for fixed sizes."
                )


def to_onnx(
    model: ConvLSTM | Bidirectional,
    path: str | os.PathLike,
    example_input: Any,
    *,
    step: bool = False,
    dynamic: bool = True,
    opset: int | None = None,
    initial_state: bool = False,
    seq_lengths: bool = False,
) -> pathlib.Path:
    """Writes `model` (with its weights) to an ONNX file, to run in onnxruntime (tested) or another runtime.

    The whole-sequence model (`step=False`) runs every layer over the sequence as `model` does;
    the single-step model (`step=True`) advances every layer by one frame, for streaming inference.
    The export runs in eval mode (dropout off); each module's own mode is restored after. The ONNX
    model computes in the weights' dtype (onnxruntime's CPU provider has no float64 convolution:
    export a float32 model to run there) and does not check its inputs (`check_finite` is not
    exported; a wrong shape is onnxruntime's error). Explicit dropout masks, a training-time input,
    are not inputs of the ONNX model.

    Inputs and outputs, by name (l is a layer's index in the stack; every state is (B, hidden_dim[l],
    *state frame), the state frame being the frame after layer l's input-to-state convolutions):

    - `step=False`: input `x`, in `model`'s layout ((B, T, C, H, W) if `batch_first`, else
      (T, B, C, H, W)); with `initial_state`, `h{l}` and `c{l}` for every layer (zeros otherwise);
      with `seq_lengths`, `seq_lengths`, int64 (B,), each in [0, T] (not checked), as `ConvLSTM`
      takes them. Outputs: `output{l}` for each returned layer (all with `return_all_layers`, else
      the last), batch-first (B, T, hidden_dim[l], H, W) as `model` returns them; then `h{l}_out`,
      `c{l}_out`, the returned layers' final states. A `Bidirectional` model's outputs merge both
      directions; its backward direction's initial and final states are `h{l}_backward`,
      `c{l}_backward`, `h{l}_backward_out`, `c{l}_backward_out`.
    - `step=True` (a `ConvLSTM` only): inputs `x` (B, C, H, W), one frame, and `h{l}`, `c{l}` for
      every layer; outputs `h{l}_out`, `c{l}_out` for every layer. The last layer's `h` is the
      step's output. Feed the outputs back as the next step's states, starting from zeros; a
      `reverse` model is fed its frames last first.

    `onnx_input_names` and `onnx_output_names` list the names in order.

    Args:
      model: a `convlstm_torch.ConvLSTM` or `Bidirectional`, with any options.
      path: the `.onnx` file to write (its directory must exist). Weights over 1 GiB go to a
        `.data` file beside it.
      example_input: a torch tensor or NumPy array with the shape of the ONNX model's `x`: a
        sequence in `model`'s layout, or with `step=True` one frame (B, C, H, W) (a sequence is
        taken to its first frame). Only its shape matters; it is cast to the weights' dtype.
      step: export the single-step model instead of the whole-sequence one.
      dynamic: the batch size (ONNX dim "batch"), the sequence length ("steps") and the frame size
        ("height", "width"; "length" for signals, "depth" too for volumes) are dynamic: the ONNX
        model runs at any batch size and length, whatever the example's (1 included), and at any
        frame whose every axis is at least 2 and gives every layer's state 2 positions or more
        (torch's exporter traces a size of 1 as a case of its own). The frame size stays the
        example's for a model with `layer_norm` (its norms' weights are for that size), and for the
        step model or `initial_state` where a layer's padding, stride or dilation makes the state's
        frame differ from the input's (`fixed_frame_reason` says why). The channels are the
        example's. False fixes every size to the example's.
      opset: the ONNX opset, in [18, 25]; None for torch's default (20 in torch 2.13).
      initial_state: the whole-sequence model takes every layer's initial state (else zeros).
      seq_lengths: the whole-sequence model takes `seq_lengths`.

    Returns:
      The path written, after `onnx.checker.check_model` passed on it.

    Raises:
      TypeError, ValueError: a model of another type or an example that does not fit it, checked
        before anything is exported.
      RuntimeError: torch's exporter fixed an axis asked to be dynamic (not seen with torch 2.13).

    The time loop is one ONNX `Scan` (so the sequence length can be dynamic); export takes a few
    seconds. Needs `onnx` and `onnxscript` (`pip install convlstm-jax[interop]`).

    Example:
      >>> import torch
      >>> from convlstm_torch import ConvLSTM
      >>> from convlstm_torch import to_onnx  # doctest: +SKIP
      >>> import onnxruntime as ort  # doctest: +SKIP
      >>> model = ConvLSTM(1, 8, 3, 1, batch_first=True)
      >>> to_onnx(model, "convlstm.onnx", torch.zeros(2, 5, 1, 16, 16))  # doctest: +SKIP
      PosixPath('convlstm.onnx')
      >>> session = ort.InferenceSession("convlstm.onnx")  # doctest: +SKIP
      >>> output, h, c = session.run(None, {"x": torch.zeros(3, 7, 1, 64, 48).numpy()})  # doctest: +SKIP
      >>> output.shape  # doctest: +SKIP
      (3, 7, 8, 64, 48)
    """
    return export_onnx(
        model,
        path,
        example_input,
        step=step,
        dynamic=dynamic,
        opset=opset,
        initial_state=initial_state,
        seq_lengths=seq_lengths,
    )
