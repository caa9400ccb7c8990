"""ConvLSTM as Flax NNX modules: the Linen modules' hyperparameters, math and param tree.

`ConvLSTMCell` and `ConvLSTM` take the hyperparameters of their Linen twins (same names, same
defaults) and compute with the same functions (`convlstm_jax._cell.fused_step`, `state_step`,
`input_projection`, `gates`; the stack's logic in `convlstm_jax._convlstm`), so on the same weights
they give the same results. NNX modules create their params at construction: `input_dim` is
required, and `rngs` draws the weights (stream `"params"`) and the dropout masks (`"dropout"`).
Each layer's time loop is one `nnx.scan`: the compiled program does not grow with the sequence.

The param state mirrors the Linen params (`cell_0/input_to_state/kernel`, ...): `from_linen` and
`to_linen` move weights between the two, `from_torch` and `to_torch` to and from a
`convlstm_torch.ConvLSTM` state_dict, all bit for bit.

This module is imported on its own (`from convlstm_jax import nnx as cnnx`); `convlstm_jax`
itself exports the Linen modules.

Example:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> from convlstm_jax.nnx import ConvLSTM, to_linen
  >>> model = ConvLSTM(1, [8, 4], 3, 2, batch_first=True, rngs=nnx.Rngs(0))
  >>> x = jnp.zeros((2, 5, 16, 16, 1))
  >>> outputs, states = nnx.jit(lambda model, x: model(x))(model, x)
  >>> outputs[0].shape, states[0][0].shape
  ((2, 5, 16, 16, 4), (2, 16, 16, 4))
  >>> sorted(to_linen(model)["params"]["cell_0"])
  ['input_to_state', 'peephole_conv_if', 'peephole_conv_o', 'state_to_state']
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Dtype

from convlstm_common import LayerSpec, check_peephole
from convlstm_common.options import cell_spec, document

from . import _cell
from ._bidirectional import check_merge, merge_outputs, split_initial_state
from ._cell import Carry, check_step, compute_dtype, fan_in, torch_default_init, zero_carry
from ._conv import check_conv_gradient, resolve_unroll, step_remat
from ._convert import flax_to_torch, param_shapes, torch_to_flax
from ._convlstm import (
    cell_options,
    check_hyperparameters,
    layer_specs,
    layer_step,
    per_layer_tuples,
    run_stack,
    stack_state_sizes,
    zero_states,
)
from .options import JaxCellOptions, JaxStackOptions

__all__ = ["Bidirectional", "ConvLSTM", "ConvLSTMCell", "from_linen", "from_torch", "to_linen", "to_torch"]


class _ConvWeights(nnx.Module):
    """A convolution's kernel (HWIO) and optional bias, drawn as torch.nn.Conv2d draws them."""

    def __init__(
        self,
        kernel_size: tuple[int, int],
        in_channels: int,
        features: int,
        *,
        fan_in: int,
        use_bias: bool,
        param_dtype: Dtype,
        rngs: nnx.Rngs,
    ):
        init = torch_default_init(fan_in)
        self.kernel = nnx.Param(init(rngs.params(), (*kernel_size, in_channels, features), param_dtype))
        if use_bias:
            self.bias = nnx.Param(init(rngs.params(), (features,), param_dtype))


class _NormWeights(nnx.Module):
    """A layer norm's scale (ones) and shift (zeros), one per channel and position: (*state, 4·hidden)."""

    def __init__(self, shape: tuple[int, ...], param_dtype: Dtype):
        self.scale = nnx.Param(jnp.ones(shape, param_dtype))
        self.bias = nnx.Param(jnp.zeros(shape, param_dtype))


@document("jax", JaxCellOptions)
@dataclasses.dataclass(eq=False, repr=False)
class ConvLSTMCell(nnx.RNNCellBase, JaxCellOptions):
    """One ConvLSTM step on channels-last (B, H, W, C) arrays; the carry is `(h, c)`.

    The NNX twin of `convlstm_jax.ConvLSTMCell`, whose docstring writes out the math: the same
    hyperparameters (with `input_dim` first and required), the same params, the same functions of
    them. It works with `flax.nnx.RNN` as well as inside `ConvLSTM`.

    Args:
      input_dim: channels of X; 0 for a cell without input (it runs on a zero-channel X).
      hidden_dim: channels of H and C.
      kernel_size: the state-to-state kernel (and the peephole convolutions'), an int or one size
        per spatial axis ((kh, kw) for images); odd sizes only. Also the input-to-state one unless
        `input_kernel_size` is given.
      bias: whether the convolutions have biases.
      {options}
      rngs: draws the weights, from its `"params"` stream.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from convlstm_jax.nnx import ConvLSTMCell
      >>> cell = ConvLSTMCell(3, 8, 3, rngs=nnx.Rngs(0))
      >>> x = jnp.zeros((2, 16, 16, 3))
      >>> (h, c), out = cell(cell.initialize_carry(x.shape), x)
      >>> h.shape
      (2, 16, 16, 8)
    """

    input_dim: int
    hidden_dim: int
    kernel_size: int | tuple[int, ...] = 3
    _: dataclasses.KW_ONLY
    bias: bool = True
    rngs: dataclasses.InitVar[nnx.Rngs]

    def __post_init__(self, rngs: nnx.Rngs) -> None:
        _require_input_dim(self.input_dim)
        spec = cell_spec(self)
        check_peephole(self.peephole)
        check_conv_gradient(self.conv_gradient)
        names = ("input_dim", "hidden_dim", "kernel_size", "input_kernel_size", "padding", "stride", "dilation")
        for name in (*names, "frame_size"):
            setattr(self, name, getattr(spec, name))

        hid, kernel = spec.hidden_dim, spec.kernel_size

        def conv_weights(name: str, size: tuple[int, int], in_channels: int, features: int, use_bias: bool):
            return _ConvWeights(
                size,
                in_channels,
                features,
                fan_in=fan_in(spec, name),
                use_bias=use_bias,
                param_dtype=self.param_dtype,
                rngs=rngs,
            )

        if spec.input_dim:
            self.input_to_state = conv_weights(
                "input_to_state", spec.input_kernel_size, spec.input_dim, 4 * hid, self.bias
            )
        # Without input, the bias moves to the state-to-state convolution.
        self.state_to_state = conv_weights("state_to_state", kernel, hid, 4 * hid, self.bias and not spec.input_dim)
        if spec.layer_norm:
            if spec.frame_size is None:
                raise ValueError(
                    "layer_norm=True needs frame_size in NNX (its parameters, made with the module, hold "
                    "every position of the state), got frame_size=None."
                )
            if spec.input_dim:
                self.input_norm = _NormWeights((*spec.state_frame, 4 * hid), self.param_dtype)
            self.state_norm = _NormWeights((*spec.state_frame, 4 * hid), self.param_dtype)
        if self.peephole == "conv":
            self.peephole_conv_if = conv_weights("peephole_conv_if", kernel, hid, 2 * hid, self.bias)
            self.peephole_conv_o = conv_weights("peephole_conv_o", kernel, hid, hid, self.bias)
        elif self.peephole == "hadamard":
            self.peephole_i = nnx.Param(jnp.zeros((hid,), self.param_dtype))
            self.peephole_f = nnx.Param(jnp.zeros((hid,), self.param_dtype))
            self.peephole_o = nnx.Param(jnp.zeros((hid,), self.param_dtype))

    def spec(self) -> LayerSpec:
        """The cell's resolved hyperparameters."""
        return cell_spec(self)

    def weights(self) -> _cell.Weights:
        """The cell's params as a nested dict of arrays (`convlstm_jax._cell.Weights`)."""
        return nnx.to_pure_dict(nnx.state(self, nnx.Param))

    def __call__(self, carry: Carry, inputs: jax.Array) -> tuple[Carry, jax.Array]:
        """Runs one step.

        Args:
          carry: `(h, c)`, each of shape (B, H', W', hidden_dim), (H', W') the state's size
            (`spec().state_size((H, W))`: (H, W) unless padding, stride or dilation change it).
          inputs: X, of shape (B, H, W, input_dim).

        Returns:
          `((h_next, c_next), h_next)`.
        """
        spec = check_step(carry, inputs, self.spec(), self.input_dim)
        if not spec.fused:
            return self.state_step(carry, self.input_projection(inputs) if inputs.shape[-1] else None)
        dtype = compute_dtype(self.dtype, inputs, self.param_dtype)
        return _cell.fused_step(self.weights(), carry, inputs, dtype=dtype, **self._options())

    def input_projection(self, inputs: jax.Array) -> jax.Array:
        """W_x * X + b for inputs of shape (..., H, W, input_dim): any number of leading axes."""
        dtype = compute_dtype(self.dtype, inputs, self.param_dtype)
        return _cell.input_projection(self.weights(), inputs, self.spec(), dtype=dtype, precision=self.precision)

    def state_step(self, carry: Carry, projected_inputs: jax.Array | None) -> tuple[Carry, jax.Array]:
        """One step from the input's projection `input_projection(X)` (None for a cell without input)."""
        dtype = compute_dtype(self.dtype, carry[0] if projected_inputs is None else projected_inputs, self.param_dtype)
        return _cell.state_step(self.weights(), carry, projected_inputs, dtype=dtype, **self._options())

    def initialize_carry(self, input_shape: tuple[int, ...], rngs: Any = None) -> Carry:
        """Zero `(h, c)` for inputs of shape (B, H, W, C): each (B, H', W', hidden_dim).

        `rngs` is unused (the initial state is zero); it is there for `flax.nnx.RNN`.
        """
        del rngs
        return zero_carry(self.spec(), input_shape, self.dtype if self.dtype is not None else self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return self.spatial_dims + 1

    def _options(self) -> dict[str, Any]:
        return _cell.step_options(self)


@document("jax", JaxStackOptions)
@dataclasses.dataclass(eq=False, repr=False)
class ConvLSTM(nnx.Module, JaxStackOptions):
    """A stack of `ConvLSTMCell` layers, each run over the whole sequence before the next.

    The NNX twin of `convlstm_jax.ConvLSTM`: the same options (`JaxStackOptions`), the same call and
    the same results. `input_dim` is required (0 for a stack without input), and `rngs` comes last.

    Dropout (`dropout`, `recurrent_dropout`) is on in training and off in evaluation, as in
    `flax.nnx.Dropout`: `model.train()` and `model.eval()` set the `deterministic` attribute (or
    `nnx.view(model, deterministic=...)` makes a view with it set); a `deterministic` argument to
    the call takes precedence. Masks, one per sequence, come from the `"dropout"` stream of the
    `rngs` given at construction, or of those given to the call.

    Args:
      {options}
      rngs: draws the weights (`"params"` stream) and, when dropout is on, the masks (`"dropout"`,
        or the default stream where there is none).

    The params are those of the Linen twin (`cell_0/input_to_state/kernel`, ...); `from_linen`,
    `to_linen`, `from_torch` and `to_torch` move them.

    Returns from `__call__`:
      `(layer_outputs, last_states)`, as `convlstm_jax.ConvLSTM` returns them: `layer_outputs[l]`
      is (B, T, H, W, hidden_dim[l]) whatever `batch_first` says, `last_states[l]` is `(h, c)`.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from convlstm_jax.nnx import ConvLSTM
      >>> model = ConvLSTM(2, 8, 3, 1, dropout=0.2, rngs=nnx.Rngs(0))
      >>> x = jnp.ones((5, 3, 16, 16, 2))  # (T, B, H, W, C)
      >>> model.train()
      >>> outputs, _ = model(x)
      >>> model.eval()
      >>> outputs, [(h, c)] = model(x)
      >>> outputs[0].shape, h.shape
      ((3, 5, 16, 16, 8), (3, 16, 16, 8))
    """

    _: dataclasses.KW_ONLY
    rngs: dataclasses.InitVar[nnx.Rngs]

    def __post_init__(self, rngs: nnx.Rngs) -> None:
        _require_input_dim(self.input_dim)
        specs = check_hyperparameters(self)
        for name, value in per_layer_tuples(self, specs).items():
            setattr(self, name, value)
        for index, spec in enumerate(specs):
            setattr(self, f"cell_{index}", ConvLSTMCell(**cell_options(self, spec, self.dtype), rngs=rngs))
        self.rngs = rngs["dropout"].fork() if self.dropout or self.recurrent_dropout else nnx.data(None)

    def layer_specs(self) -> tuple[LayerSpec, ...]:
        """One `LayerSpec` (input_dim, hidden_dim, kernel_size, ...) per layer."""
        return layer_specs(self)

    def state_sizes(self, frame: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The spatial size of each layer's state for input frames of size `frame`."""
        return stack_state_sizes(self, frame)

    def initialize_carry(self, input_shape: tuple[int, ...], rngs: Any = None) -> list[Carry]:
        """Zero initial states for a sequence of shape `input_shape`: one `(h, c)` per layer.

        `input_shape` and the states are in this module's layout. `rngs` is unused (the initial
        state is zero).
        """
        del rngs
        return zero_states(self, input_shape)

    def set_view(self, deterministic: bool | None = None) -> None:
        """Used by `nnx.view`.

        Args:
          deterministic: if True, disables dropout.
        """
        if deterministic is not None:
            self.deterministic = deterministic

    def __call__(
        self,
        x: jax.Array,
        hidden_state: Sequence[Carry] | None = None,
        *,
        seq_lengths: jax.Array | None = None,
        deterministic: bool | None = None,
        dropout_masks: Sequence[tuple[jax.Array | None, jax.Array | None]] | None = None,
        rngs: nnx.Rngs | nnx.RngStream | None = None,
    ):
        """Runs the stack over the sequence.

        Args:
          x, hidden_state, seq_lengths, dropout_masks: as `convlstm_jax.ConvLSTM.__call__` takes them.
          deterministic: disables dropout when True; takes precedence over the attribute.
          rngs: draws the dropout masks instead of the `rngs` given at construction.

        Returns:
          `(layer_outputs, last_states)`; see the class docstring.
        """

        stream = self.rngs if rngs is None else rngs
        if isinstance(stream, nnx.Rngs):
            stream = stream["dropout"]
        frontend = _NNXFrontend(self, deterministic, stream)
        return run_stack(self, frontend, x, hidden_state, seq_lengths=seq_lengths, dropout_masks=dropout_masks)


# NNX's metaclass hides the dataclass signature from `inspect.signature(cls)` (and `help`).
for _module in (ConvLSTMCell, ConvLSTM):
    _module.__signature__ = inspect.Signature(list(inspect.signature(_module.__init__).parameters.values())[1:])


@dataclasses.dataclass(frozen=True)
class _NNXFrontend:
    """The NNX `ConvLSTM`'s cells (built with it), `nnx.scan` loops and dropout stream."""

    module: ConvLSTM
    deterministic_argument: bool | None
    stream: Any

    def cell(self, index: int, spec: LayerSpec, dtype: Dtype) -> ConvLSTMCell:
        cell = getattr(self.module, f"cell_{index}")
        # Built with the stack's `dtype`: that, or (None) the dtype of its inputs and params, which is `dtype`.
        if cell.dtype is not None and jnp.dtype(cell.dtype) != jnp.dtype(dtype):
            raise ValueError(f"cell_{index} computes in {cell.dtype}, the stack in {dtype}: set both alike.")
        return cell

    def scan(self, cell, carry, xs, mask_h, lengths, hoisted):
        module = self.module
        time_axis = 1 if module.batch_first else 0

        def step(cell, carry, xs):
            return layer_step(cell, carry, xs, mask_h, lengths, hoisted)

        remat = step_remat(module.remat, carry[0].dtype)
        loop = nnx.scan(
            step if remat is None else nnx.remat(step, **remat),
            in_axes=(None, nnx.Carry, (time_axis, 0)),
            out_axes=(nnx.Carry, time_axis),
            unroll=resolve_unroll(module.unroll),
        )
        return loop(cell, carry, xs)

    def deterministic(self) -> bool:
        for value in (self.deterministic_argument, self.module.deterministic):
            if value is not None:
                return value
        raise ValueError(
            f'dropout is on ({self.module.dropout}, recurrent {self.module.recurrent_dropout}): "deterministic" '
            "must be passed to the constructor or at call time, or set with model.train() or model.eval()."
        )

    def dropout_key(self) -> jax.Array:
        return self.stream()

    def input_channels(self) -> None:
        return None  # input_dim is required: x is held to it


class Bidirectional(nnx.Module):
    """Runs `layer` forwards and a copy of it (with its own weights) backwards; merges the outputs.

    The NNX twin of `convlstm_jax.Bidirectional`: the backward copy is a `ConvLSTM` with `layer`'s
    hyperparameters and `reverse=True, keep_order=True`, its weights drawn from `rngs`, so step t
    of the merged output sees the whole sequence. With `seq_lengths`, each sequence is reversed
    within its own length.

    Args:
      layer: the `ConvLSTM` to run forwards (its `reverse` is overridden to False).
      merge: `"concat"` (default: hidden channels side by side, forward first) or `"sum"`.
      rngs: draws the backward copy's weights (and its dropout masks, when dropout is on).

    Returns from `__call__`:
      `(outputs, (forward_states, backward_states))`, as the Linen twin returns them.

    The param state is `forward_layer/...` and `backward_layer/...`, as in the Linen twin;
    `from_torch` and `to_torch` use the torch twin's keys `forward_layer.*`, `backward_layer.*`.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from convlstm_jax.nnx import Bidirectional, ConvLSTM
      >>> model = Bidirectional(ConvLSTM(3, 8, 3, 1, batch_first=True, rngs=nnx.Rngs(0)), rngs=nnx.Rngs(1))
      >>> outputs, (forward, backward) = model(jnp.zeros((2, 5, 16, 16, 3)))
      >>> outputs[0].shape
      (2, 5, 16, 16, 16)
    """

    def __init__(self, layer: ConvLSTM, merge: str = "concat", *, rngs: nnx.Rngs):
        if not isinstance(layer, ConvLSTM):
            raise TypeError(f"layer must be a convlstm_jax.nnx.ConvLSTM, got {type(layer).__name__}.")
        check_merge(merge)
        names = [name for name in inspect.signature(ConvLSTM.__init__).parameters if name not in ("self", "rngs")]
        hyperparameters = {name: getattr(layer, name) for name in names}
        layer.reverse = False
        self.forward_layer = layer
        self.backward_layer = ConvLSTM(**(hyperparameters | {"reverse": True, "keep_order": True}), rngs=rngs)
        self.merge = merge

    def __call__(
        self,
        x: jax.Array,
        hidden_state: tuple[Sequence[Carry] | None, Sequence[Carry] | None] | None = None,
        *,
        seq_lengths: jax.Array | None = None,
        deterministic: bool | None = None,
    ):
        """Runs both directions.

        Args:
          x: the input, in `layer`'s layout.
          hidden_state: None, or `(forward_initial, backward_initial)`, each None or a list of
            `(h, c)` per layer as `ConvLSTM` takes it.
          seq_lengths: None, or an int array (B,) of lengths; see `ConvLSTM`.
          deterministic: see `ConvLSTM`.
        """
        initial_f, initial_b = split_initial_state(hidden_state)
        options = {"seq_lengths": seq_lengths, "deterministic": deterministic}
        outputs_f, states_f = self.forward_layer(x, initial_f, **options)
        outputs_b, states_b = self.backward_layer(x, initial_b, **options)
        outputs = merge_outputs(outputs_f, outputs_b, self.merge, self.forward_layer.channels_last)
        return outputs, (states_f, states_b)


def _require_input_dim(input_dim: Any) -> None:
    if input_dim is None:
        raise TypeError(
            "input_dim must be given (an int; 0 for no input): an NNX module creates its params at construction."
        )


# Conversions: Linen variables and reference state_dicts to and from these modules.

_DIRECTIONS = ("forward_layer", "backward_layer")


def to_linen(model: Any) -> dict[str, Any]:
    """The weights of `model` (an NNX `ConvLSTM` or `ConvLSTMCell`) as Linen variables.

    Returns:
      `{"params": ...}`, for the Linen twin's `apply` (`convlstm_jax.ConvLSTM` with the same
      hyperparameters) or `convlstm_jax.flax_to_torch`. The arrays are the model's own.
    """
    return {"params": nnx.to_pure_dict(nnx.state(model, nnx.Param))}


def from_linen(model: Any, variables: Mapping[str, Any]) -> Any:
    """Puts the weights of Linen variables into `model` (an NNX `ConvLSTM` or `ConvLSTMCell`).

    Args:
      model: the module to update, in place.
      variables: `{"params": ...}` of the Linen twin (as its `init` or `convlstm_jax.torch_to_flax`
        return them), or the params mapping itself. Values are taken as they are (arrays of any
        dtype; NumPy arrays become JAX arrays).

    Returns:
      `model`.

    Raises:
      ValueError: the params' names or shapes are not the model's; the message lists every
        difference.
    """
    import jax
    import jax.numpy as jnp

    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a mapping ({{'params': ...}}), got {type(variables).__name__}.")
    params = variables["params"] if "params" in variables else variables
    state = nnx.state(model, nnx.Param)
    expected = param_shapes(nnx.to_pure_dict(state))
    given = param_shapes(params)
    problems = [f"missing {path} (shape {expected[path]})" for path in sorted(expected.keys() - given.keys())]
    problems += [f"unexpected {path} (shape {given[path]})" for path in sorted(given.keys() - expected.keys())]
    problems += [
        f"{path} has shape {given[path]}, expected {expected[path]}"
        for path in sorted(expected.keys() & given.keys())
        if given[path] != expected[path]
    ]
    if problems:
        raise ValueError(
            f"These params do not fit this {type(model).__name__} ({len(problems)} problem(s)):\n  - "
            + "\n  - ".join(problems)
        )
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
    nnx.update(model, state)
    return model


def from_torch(model: Any, state_dict: Mapping[str, Any], *, prefix: str = "", dtype: Any = None) -> Any:
    """Puts the weights of a `convlstm_torch.ConvLSTM` state_dict into `model`, an NNX `ConvLSTM`.

    `convlstm_jax.torch_to_flax(state_dict, model, prefix=prefix, dtype=dtype)`, then `from_linen`:
    the state_dict must fit the model's hyperparameters; see `torch_to_flax` for the arguments. A
    `Bidirectional` takes a `convlstm_torch.Bidirectional`'s (keys `forward_layer.*`,
    `backward_layer.*`).

    Returns:
      `model`, updated in place.
    """
    if isinstance(model, Bidirectional):
        for direction in _DIRECTIONS:
            from_torch(getattr(model, direction), state_dict, prefix=f"{prefix}{direction}.", dtype=dtype)
        return model
    return from_linen(model, torch_to_flax(state_dict, model, prefix=prefix, dtype=dtype))


def to_torch(model: Any) -> dict[str, Any]:
    """The weights of `model`, an NNX `ConvLSTM`, as a `convlstm_torch.ConvLSTM` state_dict of NumPy
    arrays (`convlstm_jax.flax_to_torch(to_linen(model), model)`); of a `Bidirectional`, as a
    `convlstm_torch.Bidirectional`'s."""
    if isinstance(model, Bidirectional):
        return {
            f"{direction}.{key}": value
            for direction in _DIRECTIONS
            for key, value in to_torch(getattr(model, direction)).items()
        }
    return flax_to_torch(to_linen(model), model)
