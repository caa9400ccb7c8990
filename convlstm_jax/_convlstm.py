"""A stack of ConvLSTM layers, each a time loop compiled once with `nn.scan`.

The stack's logic (checks, layouts, lengths, dropout masks, the layers around their time loops) is
in functions of its options (`JaxStackOptions`, which the Linen and NNX stacks are) and its layers'
`LayerSpec`s. What differs between Linen and NNX (making cells, the time loop, dropout's randomness)
comes in through a small protocol, `StackFrontend`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Dtype
from jax.experimental import checkify

from convlstm_common import LayerSpec, check_frame, check_peephole, check_rate, spatial_axes
from convlstm_common.options import cell_kwargs, document, stack_specs

from ._cell import Carry, ConvLSTMCell, check_floating
from ._conv import check_conv_gradient, check_unroll, resolve_unroll, step_remat
from .options import JaxCellOptions, JaxStackOptions


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)}"
    return f"{len(value)} entries" if isinstance(value, (list, tuple)) else type(value).__name__


def flip_sequences(x: jax.Array, lengths: jax.Array | None, time_axis: int) -> jax.Array:
    """Reverses each sequence of `x` along `time_axis` within its own length.

    Steps past a sequence's length stay where they are; with `lengths` None, the whole time axis
    is reversed. Applying it twice gives `x` back.
    """
    if lengths is None:
        return jnp.flip(x, time_axis)
    steps = x.shape[time_axis]
    t = jnp.arange(steps, dtype=lengths.dtype)
    # index[b, t]: the step that lands at t for sequence b.
    index = jnp.where(t[None, :] < lengths[:, None], lengths[:, None] - 1 - t[None, :], t[None, :])
    if time_axis == 0:
        index = index.T
    index = index.reshape(*index.shape, *(1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=time_axis)


def check_finite(name: str, x: jax.Array) -> None:
    """A `checkify` check that `x` holds no NaN or inf (`check_finite=True`)."""
    bad = jnp.sum(~jnp.isfinite(x))
    checkify.check(bad == 0, f"{name} holds {{bad}} NaN or inf value(s) (check_finite=True).", bad=bad)


class Cell(Protocol):
    """A layer's cell as `run_stack` uses it: the methods of `ConvLSTMCell`."""

    def __call__(self, carry: Carry, inputs: jax.Array) -> tuple[Carry, jax.Array]: ...

    def input_projection(self, inputs: jax.Array) -> jax.Array: ...

    def state_step(self, carry: Carry, projected_inputs: jax.Array | None) -> tuple[Carry, jax.Array]: ...


class StackFrontend(Protocol):
    """What a framework (Linen, NNX) gives `run_stack`: its cells, its time loop, its randomness."""

    def cell(self, index: int, spec: LayerSpec, dtype: Dtype) -> Cell:
        """Layer `index`'s cell, computing in `dtype`."""
        ...

    def scan(
        self, cell: Cell, carry: Carry, xs: tuple[jax.Array, jax.Array], mask_h, lengths, hoisted: bool
    ) -> tuple[Carry, jax.Array]:
        """Runs `layer_step(cell, carry, (inputs, t), mask_h, lengths, hoisted)` over the time axis of
        `inputs` (and of `t`, axis 0); returns the last carry and the outputs."""
        ...

    def deterministic(self) -> bool:
        """Whether dropout is off; asked only when masks are to be drawn."""
        ...

    def dropout_key(self) -> jax.Array:
        """A fresh key for each drawn mask."""
        ...

    def input_channels(self) -> int | None:
        """The input channels the params were made for where `input_dim` is None (read from x at
        init); None where there are no params yet, or `input_dim` is given."""
        ...


def cell_options(stack: JaxStackOptions, spec: LayerSpec, dtype: Dtype) -> dict[str, Any]:
    """The keyword arguments of layer `spec`'s cell in `stack`, computing in `dtype`: its sizes, and
    every cell option (`JaxCellOptions`), per layer where the stack takes one per layer."""
    return {
        "hidden_dim": spec.hidden_dim,
        "kernel_size": spec.kernel_size,
        "input_dim": spec.input_dim,
        "bias": stack.bias,
        **cell_kwargs(stack, spec, JaxCellOptions),
        "dtype": dtype,
    }


# A stack below is the Linen `ConvLSTM` or the NNX one (`convlstm_jax.nnx.ConvLSTM`), both
# `JaxStackOptions`. These functions are the stack's logic for both.


def layer_specs(stack: JaxStackOptions) -> tuple[LayerSpec, ...]:
    """One `LayerSpec` per layer of `stack`; input_dim 0 where it is inferred from the input."""
    return stack_specs(stack)


def check_hyperparameters(stack: JaxStackOptions) -> tuple[LayerSpec, ...]:
    """Checks `stack`'s hyperparameters; returns its `layer_specs`.

    Raises:
      TypeError, ValueError: a hyperparameter is invalid; the message names it.
    """
    specs = layer_specs(stack)
    check_peephole(stack.peephole)
    check_conv_gradient(stack.conv_gradient)
    check_rate("dropout", stack.dropout)
    check_rate("recurrent_dropout", stack.recurrent_dropout)
    check_unroll(stack.unroll)
    return specs


def per_layer_tuples(stack: JaxStackOptions, specs: tuple[LayerSpec, ...]) -> dict[str, tuple]:
    """`stack`'s per-layer lists, resolved to tuples with one entry per layer (hashable, and read as
    per-layer again: a list [3, 1] of kernels stays "3x3, then 1x1", not one 3x1 kernel)."""
    tuples = {}
    if isinstance(stack.hidden_dim, list):
        tuples["hidden_dim"] = tuple(s.hidden_dim for s in specs)
    for name in ("kernel_size", "input_kernel_size", "stride", "dilation", "padding"):
        if isinstance(getattr(stack, name), list):
            tuples[name] = tuple(getattr(s, name) for s in specs)
    return tuples


def stack_state_sizes(
    stack: JaxStackOptions, frame: tuple[int, ...], input_dim: int | None = None
) -> list[tuple[int, ...]]:
    """The spatial size of each layer's state for input frames of size `frame`; see `ConvLSTM.state_sizes`."""
    specs = layer_specs(stack)
    if stack.input_dim is None:
        specs = (dataclasses.replace(specs[0], input_dim=1 if input_dim is None else input_dim), *specs[1:])
    return state_sizes(specs, frame)


def zero_states(stack: JaxStackOptions, input_shape: tuple[int, ...]) -> list[Carry]:
    """Zero initial states for a sequence of shape `input_shape`; see `ConvLSTM.initialize_carry`."""
    rank = stack.spatial_dims
    if len(input_shape) != rank + 3:
        raise ValueError(
            f"input_shape must be the {rank + 3}-D shape of the input sequence {layout(stack)}, got {input_shape}."
        )
    batch = input_shape[0 if stack.batch_first else 1]
    frame = input_shape[2:-1] if stack.channels_last else input_shape[3:]
    channels = input_shape[-1] if stack.channels_last else input_shape[2]
    dtype = stack.dtype if stack.dtype is not None else stack.param_dtype
    states = []
    for spec, size in zip(layer_specs(stack), stack_state_sizes(stack, frame, channels)):
        shape = state_shape(batch, size, spec.hidden_dim, stack.channels_last)
        states.append((jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)))
    return states


def layer_step(cell: Any, carry: Carry, xs: tuple[jax.Array, jax.Array], mask_h, lengths, hoisted: bool):
    """One step of a layer's time loop: `xs` is (inputs, t), the step's input and its index.

    `inputs` is X, or, for a layer whose input-to-state convolution runs outside the loop
    (`hoisted`), its output W_x * X + b. `mask_h` (or None) drops out the hidden state read by the
    state-to-state convolution; past its length (`lengths`, or None), a sequence keeps its state
    and outputs zeros.
    """
    inputs, t = xs
    h, c = carry
    h = h if mask_h is None else h * mask_h
    new_carry, y = cell.state_step((h, c), inputs) if hoisted else cell((h, c), inputs)
    if lengths is not None:
        valid = (t < lengths).reshape((-1,) + (1,) * (h.ndim - 1))
        new_carry = jax.tree.map(lambda new, old: jnp.where(valid, new, old), new_carry, carry)
        y = jnp.where(valid, y, jnp.zeros_like(y))
    return new_carry, y


def run_stack(
    stack: JaxStackOptions,
    frontend: StackFrontend,
    x: jax.Array,
    hidden_state: Sequence[Carry] | None,
    *,
    seq_lengths: jax.Array | None,
    dropout_masks: Sequence[tuple[jax.Array | None, jax.Array | None]] | None,
):
    """A stack's forward pass (`ConvLSTM.__call__`) around its layers' time loops.

    Args:
      stack: the stack's options.
      frontend: its cells, time loop and randomness (`StackFrontend`).
      x, hidden_state, seq_lengths, dropout_masks: as `ConvLSTM.__call__` takes them.
    """
    specs = check_input(stack, x, frontend.input_channels())
    time_axis = 1 if stack.batch_first else 0
    batch = x.shape[1 - time_axis]
    frame = x.shape[2:-1] if stack.channels_last else x.shape[3:]
    sizes = state_sizes(specs, frame)
    if hidden_state is not None:
        check_hidden_state(stack, hidden_state, specs, batch, sizes)
    if stack.check_finite:
        _check_finite_inputs(x, hidden_state)
    if not stack.channels_last:
        x, hidden_state = _inputs_to_channels_last(x, hidden_state)
    dtype = stack.dtype if stack.dtype is not None else jnp.promote_types(x.dtype, stack.param_dtype)

    steps = x.shape[time_axis]
    lengths = check_lengths(seq_lengths, batch, steps)
    masks = _layer_masks(stack, frontend, dropout_masks, specs, batch, frame, sizes, dtype)
    if stack.reverse:
        x = flip_sequences(x, lengths, time_axis)

    times = jnp.arange(steps, dtype=jnp.int32)
    layer_outputs, last_states = [], []
    layer_input = x
    for index, (spec, size) in enumerate(zip(specs, sizes)):
        if hidden_state is None:
            zeros = jnp.zeros((batch, *size, spec.hidden_dim), dtype)
            carry = (zeros, zeros)
        else:
            h, c = hidden_state[index]
            carry = (jnp.asarray(h, dtype), jnp.asarray(c, dtype))
        layer_cell = frontend.cell(index, spec, dtype)
        carry, layer_input = _run_layer(
            frontend, layer_cell, spec, carry, layer_input, masks[index], times, lengths, time_axis
        )
        layer_outputs.append(layer_input)
        last_states.append(carry)
    return _stack_outputs(stack, layer_outputs, last_states, lengths, time_axis)


def _check_finite_inputs(x: jax.Array, hidden_state: Sequence[Carry] | None) -> None:
    """`checkify` checks that `x` and every given state hold no NaN or inf (`check_finite=True`)."""
    check_finite("x", x)
    for layer, state in enumerate(hidden_state or []):
        for name, s in zip("hc", state):
            check_finite(f"hidden_state[{layer}] {name}", s)


def _inputs_to_channels_last(
    x: jax.Array, hidden_state: Sequence[Carry] | None
) -> tuple[jax.Array, list[Carry] | None]:
    """`x` (T, B, C, *frame) or (B, T, C, *frame) and its states (B, C, *frame), channels moved last."""
    x = jnp.moveaxis(x, 2, -1)
    if hidden_state is not None:
        hidden_state = [(jnp.moveaxis(h, 1, -1), jnp.moveaxis(c, 1, -1)) for h, c in hidden_state]
    return x, hidden_state


def _layer_masks(stack: JaxStackOptions, frontend, dropout_masks, specs, batch, frame, sizes, dtype) -> list:
    """Each layer's `(input_mask, state_mask)`: the caller's (checked), freshly drawn, or `(None, None)`."""
    if dropout_masks is not None:
        return check_dropout_masks(stack, dropout_masks, specs, batch, frame, sizes, dtype)
    if (stack.dropout or stack.recurrent_dropout) and not frontend.deterministic():
        return draw_dropout_masks(stack, specs, batch, frame, sizes, dtype, frontend.dropout_key)
    return [(None, None)] * len(specs)


def _run_layer(frontend, layer_cell, spec: LayerSpec, carry: Carry, layer_input, masks, times, lengths, time_axis):
    """One layer's time loop over `layer_input` (channels last): its last state and its outputs."""
    mask_x, mask_h = masks
    if mask_x is not None:  # the same mask at every step, in the input's dtype (which the cell casts)
        layer_input = layer_input * jnp.expand_dims(mask_x, time_axis).astype(layer_input.dtype)
    # Unless one convolution over [X, H] computes both paths, the input-to-state convolution
    # runs once over every frame, outside the loop (XLA's own gradients are slow only inside one).
    hoisted = spec.input_dim > 0 and not spec.fused
    if hoisted:
        layer_input = layer_cell.input_projection(layer_input)
    return frontend.scan(layer_cell, carry, (layer_input, times), mask_h, lengths, hoisted)


def _stack_outputs(stack: JaxStackOptions, layer_outputs: list, last_states: list, lengths, time_axis: int):
    """The layers' outputs and last states as the caller gets them: order, layers kept, layout."""
    if stack.reverse and stack.keep_order:
        layer_outputs = [flip_sequences(y, lengths, time_axis) for y in layer_outputs]
    if not stack.return_all_layers:
        layer_outputs, last_states = layer_outputs[-1:], last_states[-1:]
    if time_axis == 0:
        layer_outputs = [jnp.swapaxes(y, 0, 1) for y in layer_outputs]
    if not stack.channels_last:
        layer_outputs = [jnp.moveaxis(y, -1, 2) for y in layer_outputs]
        last_states = jax.tree.map(lambda s: jnp.moveaxis(s, -1, 1), last_states)
    return layer_outputs, last_states


def check_lengths(seq_lengths: Any, batch: int, steps: int) -> jax.Array | None:
    """`seq_lengths` checked (an int array (B,) in [0, T]) and as int32, or None."""
    if seq_lengths is None:
        return None
    lengths = jnp.asarray(seq_lengths) if isinstance(seq_lengths, (list, tuple)) else seq_lengths
    if not hasattr(lengths, "dtype") or not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"seq_lengths must be an int array of shape ({batch},), got {_describe(seq_lengths)}.")
    if lengths.shape != (batch,):
        raise ValueError(f"seq_lengths must have shape (B,) = ({batch},), got {tuple(lengths.shape)}.")
    if not isinstance(lengths, jax.core.Tracer):  # Values are only known outside jit.
        values = np.asarray(lengths)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > steps:
            raise ValueError(f"seq_lengths must lie in [0, T] = [0, {steps}], got values in [{low}, {high}].")
    return lengths.astype(jnp.int32)


def draw_dropout_masks(
    stack: JaxStackOptions, specs, batch, frame, sizes, dtype, dropout_key: Callable[[], jax.Array]
) -> list:
    """One `(input_mask, state_mask)` per layer, each drawn once for the whole sequence."""

    def draw(rate: float, frame: tuple[int, int], depth: int) -> jax.Array | None:
        if not rate or not depth:
            return None
        keep = jax.random.bernoulli(dropout_key(), 1.0 - rate, (batch, *frame, depth))
        return keep.astype(dtype) / jnp.asarray(1.0 - rate, dtype)

    return [
        (draw(stack.dropout, frame, spec.input_dim), draw(stack.recurrent_dropout, size, spec.hidden_dim))
        for spec, frame, size in zip(specs, input_frames(frame, sizes), sizes)
    ]


def check_dropout_masks(stack: JaxStackOptions, masks, specs, batch, frame, sizes, dtype) -> list:
    """Explicit `dropout_masks` checked, channels-last and in `dtype`."""
    if not isinstance(masks, (list, tuple)) or len(masks) != len(specs):
        raise ValueError(
            f"dropout_masks must be a list of {len(specs)} (input_mask, state_mask) pairs, one per layer; "
            f"got {_describe(masks)}."
        )
    checked = []
    frames = input_frames(frame, sizes)
    for layer, (pair, spec, frame, size) in enumerate(zip(masks, specs, frames, sizes)):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"dropout_masks[{layer}] must be a pair (input_mask, state_mask), got {_describe(pair)}.")
        checked_pair = []
        for name, mask, where, depth in zip(
            ("input_mask", "state_mask"), pair, (frame, size), (spec.input_dim, spec.hidden_dim)
        ):
            if mask is None:
                checked_pair.append(None)
                continue
            check_floating(f"dropout_masks[{layer}] {name}", mask)
            expected = state_shape(batch, where, depth, stack.channels_last)
            if tuple(mask.shape) != expected:
                raise ValueError(f"dropout_masks[{layer}] {name} must have shape {expected}, got {tuple(mask.shape)}.")
            checked_pair.append(jnp.asarray(mask if stack.channels_last else jnp.moveaxis(mask, 1, -1), dtype))
        checked.append(tuple(checked_pair))
    return checked


def layout(stack: JaxStackOptions) -> str:
    """The input's layout, such as "(B, T, H, W, C)"."""
    axes = spatial_axes(stack.spatial_dims)
    frame = f"{axes}, C" if stack.channels_last else f"C, {axes}"
    return f"(B, T, {frame})" if stack.batch_first else f"(T, B, {frame})"


def check_input(stack: JaxStackOptions, x: Any, made_for: int | None = None) -> tuple[LayerSpec, ...]:
    """Checks the input sequence; returns the layers' specs, the first with x's channels.

    `made_for` is the channels the params were made for where `input_dim` is None (read from x at
    init), or None before there are params.
    """
    check_floating("x", x)
    if x.ndim != stack.spatial_dims + 3:
        raise ValueError(
            f"x must be {stack.spatial_dims + 3}-D {layout(stack)}, got shape {tuple(x.shape)} "
            f"(spatial_dims={stack.spatial_dims})."
        )
    channels = x.shape[-1] if stack.channels_last else x.shape[2]
    if 0 in x.shape[:2] + (x.shape[2:-1] if stack.channels_last else x.shape[3:]):
        raise ValueError(f"x must not have an empty dimension but channels, got shape {tuple(x.shape)}.")
    if stack.input_dim is not None and channels != stack.input_dim:
        raise ValueError(
            f"x has {channels} channels ({layout(stack)} {tuple(x.shape)}); input_dim is {stack.input_dim}."
        )
    if stack.input_dim is None and made_for is not None and channels != made_for:
        raise ValueError(
            f"x has {channels} channels ({layout(stack)} {tuple(x.shape)}); the params were made for "
            f"{made_for} (input_dim None: read from x at init)."
        )
    specs = layer_specs(stack)
    check_frame(specs[0], tuple(x.shape[2:-1] if stack.channels_last else x.shape[3:]))
    return (dataclasses.replace(specs[0], input_dim=channels), *specs[1:])


def state_sizes(specs: tuple[LayerSpec, ...], frame: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The spatial size of each layer's state: each layer's input-to-state convolution sets its size."""
    sizes = []
    for spec in specs:
        frame = spec.state_size(tuple(frame))
        sizes.append(frame)
    return sizes


def input_frames(frame: tuple[int, ...], sizes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The spatial size each layer reads: layer 0 the input's frames, layer l > 0 layer l - 1's states."""
    return [tuple(frame), *sizes[:-1]]


def state_shape(batch: int, frame: tuple[int, ...], hidden_dim: int, channels_last: bool) -> tuple[int, ...]:
    """The shape of one layer's h or c in the stack's layout."""
    return (batch, *frame, hidden_dim) if channels_last else (batch, hidden_dim, *frame)


def check_hidden_state(
    stack: JaxStackOptions, hidden_state: Any, specs, batch: int, sizes: list[tuple[int, int]]
) -> None:
    """Checks the initial states: a list of one `(h, c)` per layer, in the stack's layout."""
    if not isinstance(hidden_state, (list, tuple)) or len(hidden_state) != len(specs):
        got = len(hidden_state) if isinstance(hidden_state, (list, tuple)) else type(hidden_state).__name__
        raise ValueError(f"hidden_state must be a list of {len(specs)} (h, c) pairs, one per layer; got {got}.")
    axes = spatial_axes(stack.spatial_dims)
    layer_layout = f"(B, {axes}, hidden_dim)" if stack.channels_last else f"(B, hidden_dim, {axes})"
    for layer, (spec, state) in enumerate(zip(specs, hidden_state)):
        if not isinstance(state, (list, tuple)) or len(state) != 2:
            raise ValueError(f"hidden_state[{layer}] must be a pair (h, c), got {type(state).__name__}.")
        expected = state_shape(batch, sizes[layer], spec.hidden_dim, stack.channels_last)
        for name, s in zip("hc", state):
            check_floating(f"hidden_state[{layer}] {name}", s)
            if tuple(s.shape) != expected:
                raise ValueError(
                    f"hidden_state[{layer}] {name} must have shape {layer_layout} = {expected}, got {tuple(s.shape)}."
                )


@document("jax", JaxStackOptions)
class ConvLSTM(JaxStackOptions, nn.Module):
    """A stack of `ConvLSTMCell` layers, each run over the whole sequence before the next.

    The hyperparameters, their order and defaults are those of `convlstm_torch.ConvLSTM`; the
    results are the same up to float rounding. Each layer's time loop is one `nn.scan`, so the
    compiled program does not grow with the sequence length.

    Attributes:
      {options}

    Returns from `__call__`:
      `(layer_outputs, last_states)`, the reference's structure. `layer_outputs[l]` is layer l's
      hidden state at every step, stacked **batch-first, (B, T, H, W, hidden_dim), whatever
      `batch_first` says** (as the reference does). `last_states[l]` is `(h, c)`, the layer's final
      state, each (B, H, W, hidden_dim). Both lists hold only the last layer's entry unless
      `return_all_layers`. With `channels_last=False` the frames are (hidden_dim, H, W).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from convlstm_jax import ConvLSTM
      >>> model = ConvLSTM(None, [16, 8], (3, 3), 2, batch_first=True)
      >>> x = jnp.zeros((4, 10, 32, 32, 1))
      >>> variables = model.init(jax.random.key(0), x[:1, :1])  # params do not depend on B, T, H, W
      >>> outputs, states = jax.jit(model.apply)(variables, x)
      >>> outputs[0].shape, states[0][0].shape
      ((4, 10, 32, 32, 8), (4, 32, 32, 8))
    """

    def __post_init__(self) -> None:
        # Flax turns list fields into tuples when it clones a module, and a tuple of two ints reads
        # as one kernel: pin a per-layer list down as a tuple of per-layer values before that happens.
        for name, value in per_layer_tuples(self, check_hyperparameters(self)).items():
            object.__setattr__(self, name, value)
        super().__post_init__()

    @nn.nowrap
    def layer_specs(self) -> tuple[LayerSpec, ...]:
        """One `LayerSpec` (input_dim, hidden_dim, kernel_size) per layer; input_dim 0 if inferred."""
        return layer_specs(self)

    @nn.nowrap
    def state_sizes(self, frame: tuple[int, int], input_dim: int | None = None) -> list[tuple[int, int]]:
        """The (H, W) of each layer's state for input frames of size `frame`.

        Each layer's input-to-state convolution (its padding, stride and dilation) sets the size
        of its state, which is the next layer's input. `input_dim` is the input's channels where
        this module infers them (default: an input with channels; 0 for a stack without input).
        """
        return stack_state_sizes(self, frame, input_dim)

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        hidden_state: Sequence[Carry] | None = None,
        *,
        seq_lengths: jax.Array | None = None,
        deterministic: bool | None = None,
        dropout_masks: Sequence[tuple[jax.Array | None, jax.Array | None]] | None = None,
    ):
        """Runs the stack over the sequence.

        Args:
          x: (B, T, H, W, C) if `batch_first`, else (T, B, H, W, C); (..., C, H, W) if not
            `channels_last`.
          hidden_state: None for zero initial states, or a list with one `(h, c)` per layer, each
            (B, H, W, hidden_dim[l]) (or (B, hidden_dim[l], H, W) if not `channels_last`).
          seq_lengths: None (every sequence has T steps), or an int array (B,) of lengths in
            [0, T]. Steps past a sequence's length leave its state unchanged and output zeros, so
            the returned final state is the state at each sequence's own last step. With
            `reverse`, each sequence is reversed within its own length.
          deterministic: disables dropout when True (evaluation); merged with the field of the
            same name, as `flax.linen.Dropout` does. Needed when `dropout` or `recurrent_dropout`
            is on; masks are then drawn from the `"dropout"` RNG stream.
          dropout_masks: explicit masks instead of drawn ones: a list with one
            `(input_mask, state_mask)` per layer, each None or an array multiplying the layer's
            input (B, H, W, C_l) or its hidden state (B, H, W, hidden_dim[l]) at every step (in
            this module's layout). Values are used as given: a dropout mask is 0 or 1/(1-rate).

        Returns:
          `(layer_outputs, last_states)`; see the class docstring.
        """

        frontend = _LinenFrontend(self, deterministic)
        return run_stack(self, frontend, x, hidden_state, seq_lengths=seq_lengths, dropout_masks=dropout_masks)

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> list[Carry]:
        """Zero initial states for inputs of shape `input_shape`: one `(h, c)` per layer.

        `input_shape` is the shape of the whole sequence, in this module's layout; the states come
        in that layout too. `rng` is unused (the initial state is zero).
        """
        del rng
        return zero_states(self, input_shape)


@dataclasses.dataclass(frozen=True)
class _LinenFrontend:
    """The Linen `ConvLSTM`'s cells (submodules `cell_<l>`), `nn.scan` loops and `"dropout"` RNGs."""

    module: ConvLSTM
    deterministic_argument: bool | None

    def cell(self, index: int, spec: LayerSpec, dtype: Dtype) -> ConvLSTMCell:
        return ConvLSTMCell(**cell_options(self.module, spec, dtype), name=f"cell_{index}")

    def scan(self, cell, carry, xs, mask_h, lengths, hoisted):
        module = self.module
        time_axis = 1 if module.batch_first else 0
        remat = step_remat(module.remat, carry[0].dtype)
        loop = nn.scan(
            layer_step if remat is None else nn.remat(layer_step, static_argnums=(5,), **remat),
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=((time_axis, 0), nn.broadcast, nn.broadcast, nn.broadcast),
            out_axes=time_axis,
            unroll=resolve_unroll(module.unroll),
        )
        return loop(cell, carry, xs, mask_h, lengths, hoisted)

    def deterministic(self) -> bool:
        return nn.merge_param("deterministic", self.module.deterministic, self.deterministic_argument)

    def dropout_key(self) -> jax.Array:
        return self.module.make_rng("dropout")

    def input_channels(self) -> int | None:
        module = self.module
        if module.input_dim is not None or module.is_initializing():
            return None
        first = module.variables.get("params", {}).get("cell_0")
        if first is None:
            return None
        if "input_to_state" not in first:  # made for x without channels
            return 0
        return int(first["input_to_state"]["kernel"].shape[-2])
