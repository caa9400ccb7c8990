"""Exporting a model's forward pass to StableHLO with `jax.export`: one artifact for CPU, GPU and TPU.

`export` lowers `model.apply(variables, x)` in evaluation mode (dropout off) for several platforms
at once, into one `jax.export.Exported`; `save` writes it as bytes (and, if asked, its StableHLO
text) and `load` reads it back as a callable. The artifact runs wherever a jaxlib of a compatible
version runs, without this library, Flax or the model's Python code.

What the artifact fixes (the channels; T where the time loops unroll; the frame with layer norms)
and what it leaves open (the batch, T, the frame size, the weights with `weights="arguments"`): the
StableHLO section ("To StableHLO") of the Interoperability guide, `docs/interop.md`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.core
import jax
import jax.numpy as jnp
from jax import export as jax_export

from .._bidirectional import Bidirectional
from .._cell import check_floating
from .._conv import compiler_options as _default_compiler_options
from .._conv import resolve_unroll
from .._convlstm import ConvLSTM, layout
from ..models import EncoderForecaster, FramePredictor

__all__ = ["PLATFORMS", "WEIGHTS", "ExportedModel", "export", "load", "save"]

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
"""The platforms an artifact can be lowered for (`jax.export`'s names)."""

WEIGHTS = ("constants", "arguments")
"""Where the weights go: constants in the artifact, or its first argument."""

MODELS = (ConvLSTM, Bidirectional, EncoderForecaster, FramePredictor)

BATCH, TIME = "batch", "time"
"""The names of the symbolic dimensions, as the artifact's `in_avals` show them."""

FRAME_AXES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}
"""The names of the symbolic frame axes, by the number of spatial axes."""


def export(
    model: ConvLSTM | Bidirectional | EncoderForecaster | FramePredictor,
    variables: Mapping[str, Any],
    example_input: Any,
    *,
    platforms: Sequence[str] = ("cpu", "cuda", "tpu"),
    symbolic_batch: bool = True,
    symbolic_time: bool | None = None,
    symbolic_frame: bool | None = None,
    weights: str = "constants",
    initial_state: bool = False,
    seq_lengths: bool = False,
) -> jax_export.Exported:
    """Lowers the forward pass `model.apply(variables, x)` for `platforms` into one artifact.

    Dropout is off (`deterministic=True`). The artifact takes the input in the model's own layout
    and returns what `model.apply` returns: `(layer_outputs, last_states)` for a `ConvLSTM`,
    `(outputs, (forward_states, backward_states))` for a `Bidirectional`, the logits for an
    `EncoderForecaster`, the generated frames for a `FramePredictor` (OpenSTL's rollout, reading
    its own predictions after the context: no scheduled-sampling mask).

    Args:
      model: a `convlstm_jax.ConvLSTM`, `convlstm_jax.Bidirectional`,
        `convlstm_jax.models.EncoderForecaster` or `convlstm_jax.FramePredictor`.
      variables: its variables (`model.init(...)`), a mapping with `"params"`.
      example_input: an array or `jax.ShapeDtypeStruct` of the input's shape and dtype; its
        channels are the artifact's, and its batch, T and frame size too where they are not
        symbolic.
      platforms: the platforms to lower for, from `PLATFORMS`; the artifact runs on each.
      symbolic_batch: whether the batch size is symbolic (any B >= 1), or the example's.
      symbolic_time: whether T is symbolic (any T >= 1), or the example's. None (default):
        symbolic unless the model's time loops unroll more than one step per iteration (its
        `unroll`, resolved on this host's default backend), which a symbolic T cannot lower; True
        with such a model is a ValueError. A `FramePredictor`'s T is the example's (its rollout
        has the length its configuration gives).
      symbolic_frame: whether the frame size is symbolic (any size the convolutions take, a
        multiple of the patch size for an `EncoderForecaster` or `FramePredictor`), or the
        example's. None (default): symbolic unless the model has `layer_norm`, whose weights are
        for one frame size; True with such a model is a ValueError.
      weights: `"constants"` (default): the weights are baked into the artifact, called as
        `artifact(x)`; `"arguments"`: they are its first argument, called as
        `artifact(variables, x)` with variables of the same tree (plain dicts), shapes and dtypes.
      initial_state: whether the artifact takes the initial states after the input, as
        `model.apply` does: a list of `(h, c)` per layer, shaped and typed as
        `model.initialize_carry` makes them (for a `Bidirectional`, a pair of such lists). Not for
        an `EncoderForecaster` or `FramePredictor`.
      seq_lengths: whether the artifact takes `seq_lengths=`, an int32 array (B,) of lengths
        (see `ConvLSTM`), by keyword. The artifact does not check that they lie in [0, T]. Not for
        an `EncoderForecaster` or `FramePredictor`.

    Returns:
      The `jax.export.Exported`: `save` writes it; `exported.call(...)` runs it;
      `exported.in_avals` shows the symbolic dimensions ("batch", "time", "height", "width").

    Raises:
      TypeError, ValueError: an argument is of the wrong type or value (the message names it),
        before anything is traced.

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from convlstm_jax import ConvLSTM
      >>> from convlstm_jax.interop import stablehlo
      >>> model = ConvLSTM(2, [4, 3], 3, 2, unroll=1)  # (T, B, H, W, C)
      >>> x = jnp.zeros((3, 2, 8, 8, 2))
      >>> variables = jax.jit(model.init)(jax.random.key(0), x)
      >>> exported = stablehlo.export(model, variables, x, seq_lengths=True)
      >>> exported.platforms, exported.in_avals
      (('cpu', 'cuda', 'tpu'), (ShapedArray(float32[time,batch,height,width,2]), ShapedArray(int32[batch])))
      >>> outputs, states = exported.call(jnp.ones((5, 1, 16, 24, 2)), seq_lengths=jnp.array([4]))
      >>> outputs[0].shape, states[0][0].shape
      ((1, 5, 16, 24, 3), (1, 16, 24, 3))
    """
    stack = _check_model(model)
    _check_variables(variables)
    batch_axis, time_axis = _check_example(model, stack, example_input)
    platforms = _check_platforms(platforms)
    _check_options(model, symbolic_batch, symbolic_time, symbolic_frame, weights, initial_state, seq_lengths)
    frame = tuple(example_input.shape[2:-1] if getattr(stack, "channels_last", True) else example_input.shape[3:])
    symbolic_frame = _resolve_symbolic_frame(stack, symbolic_frame, frame)
    if isinstance(model, FramePredictor):
        symbolic_time = _frame_predictor_time(model, symbolic_time)
    _check_no_checkify(stack)
    symbolic_time = _resolve_symbolic_time(model, stack, symbolic_time)
    args, kwargs = _input_avals(
        model,
        stack,
        example_input,
        frame,
        (batch_axis, time_axis),
        (symbolic_batch, symbolic_time, symbolic_frame),
        initial_state,
        seq_lengths,
    )
    return _lower(model, variables, weights, platforms, args, kwargs)


def _check_options(model, symbolic_batch, symbolic_time, symbolic_frame, weights, initial_state, seq_lengths) -> None:
    """Checks `export`'s flags and `weights`, and that initial states and lengths are inputs of `model`."""
    flags = {"symbolic_batch": symbolic_batch, "initial_state": initial_state, "seq_lengths": seq_lengths}
    for name, value in flags.items():
        _check_bool(name, value)
    for name, value in (("symbolic_time", symbolic_time), ("symbolic_frame", symbolic_frame)):
        if value is not None:
            _check_bool(name, value)
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
    if isinstance(model, (EncoderForecaster, FramePredictor)) and (initial_state or seq_lengths):
        raise ValueError(
            "initial_state and seq_lengths are inputs of a ConvLSTM or Bidirectional; an EncoderForecaster or "
            "FramePredictor takes its frames only."
        )


def _resolve_symbolic_frame(stack: Any, symbolic_frame: bool | None, frame: tuple[int, ...]) -> bool:
    """Whether the frame size is symbolic: as asked, or (None) unless the model has layer norms."""
    if symbolic_frame and _has_layer_norm(stack):
        raise ValueError(
            f"symbolic_frame=True: a model with layer_norm=True takes frames of {'x'.join(map(str, frame))} only "
            "(its norms' weights are for that frame size): export it with symbolic_frame=False (or None)."
        )
    if symbolic_frame is None:
        symbolic_frame = not _has_layer_norm(stack)
    return symbolic_frame


def _frame_predictor_time(model: FramePredictor, symbolic_time: bool | None) -> bool:
    """A `FramePredictor`'s T is the example's (its rollout has the length its configuration gives)."""
    if symbolic_time:
        raise ValueError(
            f"symbolic_time=True: a FramePredictor reads T = {model.pre_seq_length} or "
            f"{model.pre_seq_length + model.aft_seq_length} frames, as its configuration says: export it at "
            "the example's T (symbolic_time=False or None)."
        )
    return False


def _check_no_checkify(stack: Any) -> None:
    """Raises a ValueError for `check_finite=True`, which an artifact cannot raise."""
    if getattr(stack, "check_finite", False):
        raise ValueError(
            "check_finite=True raises through `checkify`, which an exported artifact cannot: export the model "
            "with check_finite=False (`model.clone(check_finite=False)`, or the `layer`'s for a Bidirectional)."
        )


def _resolve_symbolic_time(model: Any, stack: Any, symbolic_time: bool | None) -> bool:
    """Whether T is symbolic: as asked (where the time loops take one step per iteration), or (None)
    where they do."""
    unroll = 1 if isinstance(model, FramePredictor) else resolve_unroll(stack.unroll)
    if symbolic_time and unroll > 1:
        raise ValueError(
            f"symbolic_time=True needs time loops of one step per iteration, but unroll resolves to {unroll} "
            f"(unroll={stack.unroll!r} on the {jax.default_backend()!r} backend): give the model unroll=1, or "
            "export at the example's T with symbolic_time=False."
        )
    if symbolic_time is None:
        symbolic_time = unroll == 1
    return symbolic_time


def _input_avals(model, stack, example_input, frame, axes, symbolic, initial_state, seq_lengths):
    """The artifact's positional and keyword inputs as `jax.ShapeDtypeStruct`s: the input with its
    symbolic dimensions (`symbolic`: batch, time, frame), then the initial states and the lengths
    where asked."""
    (batch_axis, time_axis), (symbolic_batch, symbolic_time, symbolic_frame) = axes, symbolic
    names = FRAME_AXES[len(frame)] if symbolic_frame else ()
    symbols = jax_export.symbolic_shape(
        ", ".join([BATCH, TIME, *_frame_dims(model, stack, frame, names)]),
        constraints=_frame_constraints(model, stack, frame, names),
    )
    batch_symbol, time_symbol = symbols[:2]
    shape = list(example_input.shape)
    if symbolic_batch:
        shape[batch_axis] = batch_symbol
    if symbolic_time:
        shape[time_axis] = time_symbol
    if symbolic_frame:
        first = 2 if getattr(stack, "channels_last", True) else 3
        shape[first : first + len(frame)] = symbols[2:]
    batch = shape[batch_axis]
    args: list[Any] = [jax.ShapeDtypeStruct(tuple(shape), example_input.dtype)]
    kwargs: dict[str, Any] = {}
    if initial_state:
        args.append(_state_avals(model, tuple(shape), batch))
    if seq_lengths:
        kwargs["seq_lengths"] = jax.ShapeDtypeStruct((batch,), jnp.int32)
    return args, kwargs


def _lower(model, variables, weights: str, platforms, args: list, kwargs: dict) -> jax_export.Exported:
    """`model.apply` (dropout off) lowered for `platforms`, the weights baked in or as its first argument."""
    apply_options = {} if isinstance(model, (EncoderForecaster, FramePredictor)) else {"deterministic": True}

    variables = flax.core.unfreeze(variables)  # plain dicts: the trees an artifact can serialize
    if weights == "arguments":
        args.insert(0, jax.tree.map(lambda v: jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v)), variables))

        def forward(variables, *args, **kwargs):
            return model.apply(variables, *args, **kwargs, **apply_options)

    else:
        constants = jax.tree.map(jnp.asarray, variables)

        def forward(*args, **kwargs):
            return model.apply(constants, *args, **kwargs, **apply_options)

    return jax_export.export(jax.jit(forward), platforms=platforms)(*args, **kwargs)


class ExportedModel:
    """A loaded artifact, called as the exported model: `loaded(x)` (or `loaded(variables, x)` for
    `weights="arguments"`, then the initial states and `seq_lengths=` where exported with them).

    The call is `jax.jit`-compiled with `compiler_options`.

    Attributes:
      exported: the `jax.export.Exported`: its `platforms`, `in_avals`, `out_avals`,
        `mlir_module()`.
      compiler_options: the XLA options the call is compiled with; by default
        `convlstm_jax.compiler_options()`, the default backend's.
    """

    def __init__(self, exported: jax_export.Exported, compiler_options: Mapping[str, Any] | None = None) -> None:
        if not isinstance(exported, jax_export.Exported):
            raise TypeError(f"exported must be a jax.export.Exported, got {type(exported).__name__}.")
        if compiler_options is not None and not isinstance(compiler_options, Mapping):
            raise TypeError(f"compiler_options must be a mapping or None, got {type(compiler_options).__name__}.")
        self.exported = exported
        self.compiler_options = dict(_default_compiler_options() if compiler_options is None else compiler_options)
        self._call = jax.jit(exported.call, compiler_options=self.compiler_options)

    @property
    def platforms(self) -> tuple[str, ...]:
        """The platforms the artifact runs on."""
        return tuple(self.exported.platforms)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __repr__(self) -> str:
        inputs = ", ".join(str(a) for a in self.exported.in_avals)
        return f"ExportedModel(platforms={self.platforms}, inputs=({inputs}))"


def save(exported: jax_export.Exported | ExportedModel, path: str | os.PathLike, *, text: bool = False) -> list[Path]:
    """Writes an artifact's serialized bytes to `path`; with `text`, its StableHLO text too.

    The bytes are `exported.serialize()`, read back by `load` (or `jax.export.deserialize`). The
    text (`exported.mlir_module()`, written to `path` with the suffix ".mlir") is for reading and
    for StableHLO tools; with `weights="constants"` it holds the weights, so it is larger than the
    bytes.

    Args:
      exported: what `export` returned, or a loaded `ExportedModel`.
      path: the file to write (its folder must exist).
      text: whether to write the StableHLO text as well.

    Returns:
      The paths written: `[path]`, then the text's.

    Example:
      >>> import tempfile, pathlib
      >>> import jax, jax.numpy as jnp
      >>> from convlstm_jax.interop import stablehlo
      >>> exported = jax.export.export(jax.jit(jnp.tanh))(jnp.zeros(3))  # any artifact: see `export`
      >>> folder = pathlib.Path(tempfile.mkdtemp())
      >>> [p.name for p in stablehlo.save(exported, folder / "model.jax_export", text=True)]
      ['model.jax_export', 'model.mlir']
    """
    if isinstance(exported, ExportedModel):
        exported = exported.exported
    if not isinstance(exported, jax_export.Exported):
        raise TypeError(f"exported must be a jax.export.Exported (from `export`), got {type(exported).__name__}.")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    _check_bool("text", text)
    path = Path(path)
    text_path = path.with_suffix(".mlir")
    if text and text_path == path:
        raise ValueError(f"path {str(path)!r} ends in .mlir, where the StableHLO text would go: give another suffix.")
    path.write_bytes(exported.serialize())
    written = [path]
    if text:
        text_path.write_text(exported.mlir_module())
        written.append(text_path)
    return written


def load(path: str | os.PathLike, *, compiler_options: Mapping[str, Any] | None = None) -> ExportedModel:
    """Reads an artifact written by `save`, as a callable `ExportedModel`.

    Args:
      path: the file `save` wrote (the bytes, not the ".mlir" text).
      compiler_options: the XLA options to compile the call with; None (default):
        `convlstm_jax.compiler_options()`, the default backend's. Give the options of the platform
        the inputs are on where it is not the default backend's (`{}` for none).

    Returns:
      An `ExportedModel`: call it on arrays as the exported model.

    Raises:
      FileNotFoundError: there is no such file.
      ValueError: the file is not a serialized `jax.export` artifact (or is of a version this
        jaxlib does not read).

    Example:
      >>> import tempfile, pathlib
      >>> import jax, jax.numpy as jnp
      >>> from convlstm_jax.interop import stablehlo
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.jax_export"
      >>> _ = stablehlo.save(jax.export.export(jax.jit(jnp.tanh))(jnp.zeros(3)), path)
      >>> stablehlo.load(path)(jnp.zeros(3))
      Array([0., 0., 0.], dtype=float32)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    if compiler_options is not None and not isinstance(compiler_options, Mapping):
        raise TypeError(f"compiler_options must be a mapping or None, got {type(compiler_options).__name__}.")
    data = Path(path).read_bytes()
    try:
        exported = jax_export.deserialize(bytearray(data))
    except Exception as error:  # flatbuffers and version errors come in several types
        raise ValueError(f"{str(path)!r} is not a serialized jax.export artifact: {error}") from error
    return ExportedModel(exported, compiler_options)


def _has_layer_norm(stack: Any) -> bool:
    """Whether the model's cells normalise over their frames (their weights then fix its size)."""
    return bool(getattr(stack, "layer_norm", False))


def _frame_dims(model: Any, stack: Any, frame: tuple[int, ...], names: tuple[str, ...]) -> list[str]:
    """The symbolic frame axes: `names`, times the patch size where the model cuts patches."""
    patch = getattr(model, "patch_size", 1) if isinstance(model, (EncoderForecaster, FramePredictor)) else 1
    return [name if patch == 1 else f"{patch}*{name}" for name in names]


def _frame_constraints(model: Any, stack: Any, frame: tuple[int, ...], names: tuple[str, ...]) -> list[str]:
    """`name >= n` for each axis whose convolutions need at least n > 1 positions (valid padding,
    dilation): the least size each layer's state has a position at, the other axes as the example's."""
    if not names or not isinstance(model, (ConvLSTM, Bidirectional)):
        return []  # patches and "same" convolutions take any frame
    constraints = []
    for axis, name in enumerate(names):
        least = 1
        while least < frame[axis]:
            try:
                stack.state_sizes((*frame[:axis], least, *frame[axis + 1 :]))
                break
            except ValueError:
                least += 1
        if least > 1:
            constraints.append(f"{name} >= {least}")
    return constraints


def _check_model(model: Any) -> ConvLSTM | EncoderForecaster | FramePredictor:
    """Checks the model's type; returns the module whose options (unroll, check_finite) apply."""
    if not isinstance(model, MODELS):
        names = ", ".join(f"{m.__module__.split('.')[0]}.{m.__name__}" for m in MODELS)
        raise TypeError(f"model must be one of {names}, got {type(model).__name__}.")
    return model.layer if isinstance(model, Bidirectional) else model


def _check_variables(variables: Any) -> None:
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a mapping such as model.init returns, got {type(variables).__name__}.")
    if "params" not in variables:
        raise ValueError(f"variables must hold 'params' (model.init's result), got the keys {sorted(variables)}.")


def _check_example(model: Any, stack: Any, x: Any) -> tuple[int, int]:
    """Checks the example input against the model; returns its (batch axis, time axis)."""
    check_floating("example_input", x)
    shape = tuple(x.shape)
    if isinstance(model, (EncoderForecaster, FramePredictor)):
        c = model.in_channels
        if len(shape) != 5 or shape[-1] != c:
            raise ValueError(f"example_input must have shape (B, T, H, W, {c}), got {shape}.")
        if 0 in shape:
            raise ValueError(f"example_input must not have an empty dimension, got shape {shape}.")
        p = model.patch_size
        if shape[2] % p or shape[3] % p:
            raise ValueError(
                f"example_input's frames of {shape[2]}x{shape[3]} do not cut into {p}x{p} patches "
                f"(patch_size={p}): H and W must be multiples of {p}."
            )
        if isinstance(model, FramePredictor) and shape[1] not in (model.pre_seq_length, model.steps + 1):
            raise ValueError(
                f"example_input must have T = pre_seq_length ({model.pre_seq_length}) or pre_seq_length + "
                f"aft_seq_length ({model.steps + 1}) frames, got shape {shape}."
            )
        return 0, 1
    rank = stack.spatial_dims
    if len(shape) != rank + 3:
        raise ValueError(
            f"example_input must be {rank + 3}-D {layout(stack)} (spatial_dims={rank}), got shape {shape}."
        )
    channels = shape[-1] if stack.channels_last else shape[2]
    if stack.input_dim is not None and channels != stack.input_dim:
        raise ValueError(
            f"example_input has {channels} channels ({layout(stack)} {shape}); the model's input_dim is "
            f"{stack.input_dim}."
        )
    frame = shape[2:-1] if stack.channels_last else shape[3:]
    if 0 in shape[:2] + frame:
        raise ValueError(f"example_input must not have an empty dimension but channels, got shape {shape}.")
    stack.state_sizes(frame, channels)  # a ValueError where a layer's frames are too small for its convolution
    return (0, 1) if stack.batch_first else (1, 0)


def _check_platforms(platforms: Any) -> tuple[str, ...]:
    if isinstance(platforms, str) or not isinstance(platforms, Sequence):
        raise TypeError(f"platforms must be a sequence of platform names such as ('cpu', 'cuda'), got {platforms!r}.")
    if not platforms:
        raise ValueError(f"platforms must name at least one platform of {PLATFORMS}, got none.")
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        raise ValueError(f"platforms must be among {PLATFORMS}, got the unknown {unknown}.")
    if len(set(platforms)) != len(platforms):
        raise ValueError(f"platforms must not repeat a platform, got {tuple(platforms)}.")
    return tuple(platforms)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}.")


def _state_avals(model: ConvLSTM | Bidirectional, shape: tuple[int, ...], batch: Any) -> Any:
    """The initial states' shapes and dtypes, as `initialize_carry` makes them, with `batch`."""
    stack = model.layer if isinstance(model, Bidirectional) else model
    states = [
        tuple(jax.ShapeDtypeStruct((batch, *s.shape[1:]), s.dtype) for s in pair)
        for pair in jax.eval_shape(lambda: stack.initialize_carry(None, shape))
    ]
    return (states, states) if isinstance(model, Bidirectional) else states
