"""The options of a ConvLSTM, declared once for every front.

`CellOptions` holds what every cell takes by keyword and `StackOptions` what every stack takes
(KL4805/ConvLSTM-Pytorch's seven positional arguments, then keywords). Each front is a dataclass
that inherits these fields: `convlstm_torch.ConvLSTM`, `convlstm_jax.ConvLSTM` (Linen) and
`convlstm_jax.nnx.ConvLSTM` inherit `StackOptions`, the cells `CellOptions`; `convlstm_jax` adds
its JAX-only options the same way (`convlstm_jax.options`). A front's signature, its defaults and
the "Args" of its docstring (`document`) all come from here, and a stack hands the cell options to
its cells by name (`cell_kwargs`). A new option is one `option(...)` field below, plus its math in the cells; the
tests (`parity_tests/tests/test_options.py`) then say which front or shared vector still lacks it.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from collections.abc import Sequence
from typing import Any

from ._hparams import LayerSpec, check_real, resolve_cell, resolve_layers

FRAMEWORKS = ("torch", "jax")
"""The frameworks a front belongs to; an option's doc may carry a note for each."""


def option(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    from_spec: bool = False,
    kw_only: Any = dataclasses.MISSING,
    torch: str = "",
    jax: str = "",
) -> Any:
    """A declared option: a dataclass field with its default and its documentation.

    Args:
      default: the default value; none for a required (positional) option.
      doc: what the option does, for every front (one or more sentences).
      from_spec: a stack hands its cells this option as resolved for each layer, from the layer's
        `LayerSpec` (a kernel, a padding, a stride: one value for every layer, or one per layer).
      kw_only: True for keyword-only in every front's signature (default: as its class says).
      torch, jax: a sentence added to `doc` in that framework's fronts only.
    """
    return dataclasses.field(
        default=default,
        kw_only=kw_only,
        metadata={"doc": doc, "from_spec": from_spec, "notes": {"torch": torch, "jax": jax}},
    )


def declared(cls: type) -> tuple[dataclasses.Field, ...]:
    """The declared options of a front or an options class, in signature order (positional first).

    Example:
      >>> from convlstm_common.options import StackOptions, declared
      >>> [f.name for f in declared(StackOptions)][:7]  # KL4805/ConvLSTM-Pytorch's positional arguments
      ['input_dim', 'hidden_dim', 'kernel_size', 'num_layers', 'batch_first', 'bias', 'return_all_layers']
    """
    fields = [f for f in dataclasses.fields(cls) if "doc" in f.metadata]
    return tuple(sorted(fields, key=lambda f: f.kw_only))


def describe(field: dataclasses.Field, framework: str) -> str:
    """One option's documentation in `framework`'s fronts."""
    note = field.metadata["notes"].get(framework, "")
    return f"{field.metadata['doc']} {note}".strip()


def document(framework: str, *bases: type) -> Any:
    """A class decorator that writes the "Args" of `bases`' options into the class's docstring.

    The docstring holds a line `{options}` where they go, indented as the other Args entries. The
    options of `bases` come in signature order; a front documents its own extra arguments (an NNX
    module's `rngs`) by hand around the line.
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}.")

    def decorate(cls: type) -> type:
        doc = inspect.cleandoc(cls.__doc__ or "")
        marker = next((line for line in doc.splitlines() if line.strip() == "{options}"), None)
        if marker is None:
            raise ValueError(f"{cls.__name__}'s docstring has no '{{options}}' line for its options.")
        indent = marker[: len(marker) - len(marker.lstrip())]
        seen, lines = set(), []
        for base in bases:
            for field in declared(base):
                if field.name in seen:
                    continue
                seen.add(field.name)
                text = f"{field.name}: {describe(field, framework)}"
                lines.append(
                    textwrap.fill(
                        text, 100, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
                    )
                )
        cls.__doc__ = doc.replace(marker, "\n".join(lines))
        return cls

    return decorate


def cell_kwargs(options: Any, spec: LayerSpec, cls: type) -> dict[str, Any]:
    """The keyword options of `cls` (a cell's options class) for one layer of a stack.

    Per-layer options come from the layer's `spec`, the others from the stack's `options`.
    """
    return {f.name: getattr(spec if f.metadata["from_spec"] else options, f.name) for f in declared(cls)}


def cell_spec(cell: Any) -> LayerSpec:
    """A cell's sizes and cell options (`input_dim`, `hidden_dim`, `kernel_size`, `input_kernel_size`,
    `padding`, `stride`, `dilation`, `spatial_dims`, `layer_norm`, `frame_size`) checked and
    resolved into its `LayerSpec` (`input_dim` 0 where it is None, to be inferred); `forget_bias`
    is checked too."""
    check_real("forget_bias", cell.forget_bias)
    return resolve_cell(
        cell.input_dim,
        cell.hidden_dim,
        cell.kernel_size,
        cell.input_kernel_size,
        cell.padding,
        cell.stride,
        cell.dilation,
        cell.spatial_dims,
        cell.layer_norm,
        cell.frame_size,
    )


def stack_specs(stack: Any) -> tuple[LayerSpec, ...]:
    """A stack's options checked and resolved into one `LayerSpec` per layer (`input_dim` 0 where
    it is None, to be inferred); `forget_bias` is checked too."""
    check_real("forget_bias", stack.forget_bias)
    return resolve_layers(
        stack.input_dim,
        stack.hidden_dim,
        stack.kernel_size,
        stack.num_layers,
        stack.input_kernel_size,
        stack.padding,
        stack.stride,
        stack.dilation,
        stack.spatial_dims,
        stack.layer_norm,
        stack.frame_size,
    )


Kernel = Any
"""A kernel, stride or dilation: an int for every axis or a tuple with one per spatial axis."""


@dataclasses.dataclass(eq=False, kw_only=True)
class CellOptions:
    """The keyword options of every ConvLSTM cell, and of every stack (one value per layer there)."""

    peephole: str | None = option(
        "conv",
        doc='the peephole terms: `"conv"` (as in KL4805/ConvLSTM-Pytorch, default: convolutions of the cell '
        "state), "
        '`"hadamard"` (the paper: one weight per channel) or `None` (ndrplz: none).',
    )
    input_kernel_size: Kernel | Sequence[Kernel] | None = option(
        None,
        from_spec=True,
        doc="the input-to-state kernel, in the forms of `kernel_size`; None (default) for `kernel_size`, "
        "which is then the state-to-state kernel only.",
        torch="Layers where the two differ have keys `conv_x.*` and `conv_h.weight` instead of `conv.*`.",
    )
    padding: str | Sequence[str] = option(
        "same",
        from_spec=True,
        doc='the input-to-state convolution\'s padding: `"same"` (default: zero padding dilation·(k // 2)) '
        'or `"valid"` (none). The state-to-state convolution is always "same": a layer\'s state, and so '
        "its output, has the size of its input-to-state convolution's output.",
    )
    stride: Kernel | Sequence[Kernel] = option(
        1, from_spec=True, doc="the input-to-state convolution's stride: an int, or one per spatial axis."
    )
    dilation: Kernel | Sequence[Kernel] = option(
        1, from_spec=True, doc="the input-to-state convolution's dilation, in the forms of `stride`."
    )
    spatial_dims: int = option(
        2,
        doc="the frames' spatial axes: 1 (sequences of signals, frames (L,)), 2 (images, default, "
        "(H, W)) or 3 (volumes, (D, H, W)). Kernels, strides and dilations then have one entry per axis, "
        "and every shape given as (H, W) has these axes instead.",
    )
    forget_bias: float = option(
        0.0,
        doc="a constant added to the forget gate's pre-activation, f = σ(z_f + P_f(C) + forget_bias): "
        "1.0 is Flax's `nn.ConvLSTMCell` (and Jozefowicz et al. 2015's advice); 0.0 (default) "
        "KL4805/ConvLSTM-Pytorch's.",
    )
    layer_norm: bool = option(
        False,
        doc="normalise the outputs of the input-to-state and the state-to-state convolutions, each on "
        "its own over its 4·hidden channels and every position (a layer norm with eps 1e-5 and a learned "
        "scale and shift per channel and position), as OpenSTL's ConvLSTM does. The layer then keeps two "
        "convolutions and its norm parameters hold every position of its state: it runs on frames of "
        "one size only, `frame_size`, and refuses others.",
        torch="Layers with it have keys `norm_x.*` (with input) and `norm_h.*`, shaped (4·hidden, H', W').",
    )
    frame_size: Kernel | None = option(
        None,
        from_spec=True,
        doc="the input frames' spatial size ((H, W) for images, an int for every axis), for "
        "`layer_norm`; a stack's is its input's, and each layer's the state size of the layer below.",
        torch="Needed with `layer_norm` (its parameters are made with the layer).",
        jax="None takes it from the input when the parameters are made (Linen); NNX needs it with `layer_norm`.",
    )


@dataclasses.dataclass(eq=False)
class StackOptions(CellOptions):
    """The options of every ConvLSTM stack: KL4805/ConvLSTM-Pytorch's seven positional ones, then keywords.

    A stack also takes every `CellOptions` option, for every layer or (`padding`, `stride`,
    `dilation`, `input_kernel_size`) as a list with one entry per layer.
    """

    input_dim: int | None = option(
        doc="channels of the input; 0 for a stack without input, which runs on a zero-channel input "
        "(the forecaster of Shi et al. 2015).",
        jax="None takes them from the input (an input with another channel count is an error where they are given).",
    )
    hidden_dim: int | Sequence[int] = option(
        doc="hidden channels: one int for every layer, or a list with one per layer."
    )
    kernel_size: Kernel | Sequence[Kernel] = option(
        doc="the state-to-state kernel (and the peephole convolutions'): an int, a tuple with one size "
        "per spatial axis ((kh, kw) for images), or a list with one of those per layer; odd sizes only."
    )
    num_layers: int = option(doc="the number of stacked layers.")
    batch_first: bool = option(False, doc="the input is (B, T, ...) if True, else (T, B, ...).")
    bias: bool = option(True, doc="whether the convolutions have biases.")
    return_all_layers: bool = option(
        False, doc="return every layer's outputs and final state, not only the last layer's."
    )
    check_finite: bool = option(
        False,
        kw_only=True,
        doc="check that the input and initial state hold no NaN or inf. Off by default: NaN and inf "
        "otherwise propagate as IEEE arithmetic makes them.",
        torch="A failure raises ValueError (one device sync per call).",
        jax="The check is `jax.experimental.checkify`'s: outside `jit` a failure raises at once; under "
        "`jit`, wrap the function in `checkify.checkify` and call `.throw()` on the error it returns.",
    )
    reverse: bool = option(
        False, kw_only=True, doc="process time backwards, each sequence within its own length (`seq_lengths`)."
    )
    keep_order: bool = option(
        True,
        kw_only=True,
        doc="with `reverse`, return outputs in the input's time order (default), else in the order they were computed.",
    )
    dropout: float = option(
        0.0,
        kw_only=True,
        doc="the rate of dropout on each layer's input (the input-to-state path), with one mask per "
        "sequence, the same at every step (Gal and Ghahramani 2016, as in Keras `ConvLSTM2D`).",
        torch="Only in training mode (`model.train()`); masks are drawn from torch's global generator.",
        jax='Only when not `deterministic`; masks are drawn from the `"dropout"` RNG stream.',
    )
    recurrent_dropout: float = option(
        0.0, kw_only=True, doc="the same as `dropout`, on the hidden state read by the state-to-state convolution."
    )
