"""Reference checkpoints as the commands read them: the state_dict of a file (`read_checkpoint`),
its ConvLSTM stacks (`checkpoint_stacks`), and the keywords of the model they hold (`checkpoint_options`),
held to a configuration (`weights_contradiction`)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np

from convlstm_common import SPATIAL_DIMS, LayerSpec

from . import config as configs

DIRECTIONS = ("forward_layer", "backward_layer")
"""The two stacks of a `convlstm_torch.Bidirectional`, as its state_dict names them."""

_GEOMETRY = ("padding", "stride", "dilation")


def parse_shape(text: str) -> tuple[int, ...]:
    """An example input's shape from the command line: "B,T,H,W" (or B,T then L or D,H,W)."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not 3 <= len(shape) <= 5 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected positive ints B,T then the frame's size: L, H,W or D,H,W; got {text!r}"
        )
    return shape


def read_checkpoint(path: Path, prefix: str) -> dict[str, Any]:
    """A checkpoint's state_dict with `prefix` stripped; one-line ValueErrors for what cannot be read."""
    from convlstm_jax import read_state_dict

    if not path.is_file():
        raise ValueError(f"--checkpoint {path}: no such file.")
    try:
        state_dict = read_state_dict(path)
    except ValueError:
        raise
    except Exception as error:  # torch.load's and safetensors' own errors on a damaged file
        detail = str(error)
        if "WeightsUnpickler error:" in detail:  # torch's advice on weights_only around the cause: the cause
            detail = detail.split("WeightsUnpickler error:", 1)[1].strip().split("\n\n", 1)[0]
        raise ValueError(
            f"--checkpoint {path} cannot be read: {type(error).__name__}: {' '.join(detail.split())}"
        ) from None
    stripped = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    if not stripped:
        keys = sorted(state_dict)
        raise ValueError(
            f"No key of {path} starts with --prefix {prefix!r}; its keys: {keys[:5]}{keys[5:] and ' ...'}."
        )
    return stripped


def checkpoint_stacks(state_dict: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    """The checkpoint's ConvLSTM stacks by key prefix: `""` alone, or a Bidirectional's two."""
    if any(key.startswith(("encoder.cell_list.", "forecaster.cell_list.")) for key in state_dict):
        raise ValueError(
            f"{path} holds a convlstm_torch.models.EncoderForecaster (keys encoder.*, forecaster.*, "
            "output.*); convlstm-parity runs a ConvLSTM (keys cell_list.*) or a Bidirectional "
            "(forward_layer.*, backward_layer.*): check its stacks one at a time with --prefix encoder. "
            "and --prefix forecaster. (parity_tests/tests/test_models.py holds the whole model to the reference)."
        )
    if not any(key.split(".", 1)[0] in DIRECTIONS for key in state_dict):
        return {"": state_dict}
    others = sorted(key for key in state_dict if key.split(".", 1)[0] not in DIRECTIONS)
    if others:
        raise ValueError(
            f"{path} has a Bidirectional's keys (forward_layer.*, backward_layer.*) and {len(others)} other(s): "
            f"{others[:5]}{others[5:] and ' ...'}; --prefix strips a parent's prefix."
        )
    return {
        f"{d}.": {key[len(d) + 1 :]: value for key, value in state_dict.items() if key.startswith(f"{d}.")}
        for d in DIRECTIONS
    }


def checkpoint_options(
    stacks: dict[str, dict[str, Any]], user: dict[str, Any], source: str, checkpoint: Path
) -> tuple[dict[str, Any], str | None, list[str]]:
    """The constructor keywords of the model a checkpoint's stacks (`checkpoint_stacks`) hold.

    What the weights hold (sizes, kernels, peephole, bias, layer norm) is read from them; `user`
    (a --config, `config.read_config`) gives the rest and overrides. The keywords return every layer's
    results, batch first.

    Returns:
      (keywords, merge, notes): the `convlstm_torch.ConvLSTM` keywords, a Bidirectional's merge
      (None for a ConvLSTM), and lines on what was assumed where the weights are silent.

    Raises:
      ValueError, TypeError: the weights and `user` do not make a model; the message says why.
    """
    from convlstm_jax import infer_architecture

    merge = _checkpoint_merge(stacks, user, source, checkpoint)
    _check_stack_weights(stacks)
    specs, peephole, bias = infer_architecture(next(iter(stacks.values())))
    user = _fit_user(user, specs, source)
    kwargs, notes = _weights_keywords(specs, peephole, bias, user)
    kwargs |= {key: value for key, value in user.items() if key != "bidirectional"}
    model = _checked_model(kwargs, source)
    contradiction = weights_contradiction(specs, peephole, bias, model.layer_specs(), kwargs)
    if contradiction:
        raise ValueError(f"{source}: {contradiction}.")
    return kwargs, merge, notes


def _checkpoint_merge(
    stacks: dict[str, dict[str, Any]], user: dict[str, Any], source: str, checkpoint: Path
) -> str | None:
    """A Bidirectional's merge (None for a ConvLSTM); raises a ValueError where `user` and the
    checkpoint's stacks disagree on what the model is."""
    merge = user["bidirectional"].get("merge", "concat") if "bidirectional" in user else None
    if len(stacks) == 2:
        merge = merge or "concat"
        if user.keys() & {"reverse", "keep_order"}:
            raise ValueError(
                f"{source}: a Bidirectional runs its layer both ways: reverse and keep_order do not apply."
            )
    elif merge:
        raise ValueError(
            f"{source} says bidirectional, but {checkpoint} holds a ConvLSTM's keys (cell_list.*), not a "
            "Bidirectional's (forward_layer.*, backward_layer.*)."
        )
    return merge


def _check_stack_weights(stacks: dict[str, dict[str, Any]]) -> None:
    """Raises a ValueError listing every problem of the weights alone, the prefix option named."""
    import convlstm_jax

    for prefix, stack in stacks.items():
        try:  # the weights alone: every problem listed
            convlstm_jax.torch_to_flax(stack, dtype=np.float32)
        except ValueError as error:
            # The library's hint names its keyword; here it is the option.
            message = re.sub(
                r"The keys start with '([^']*)': pass prefix=",
                r"The keys start with '\1': pass --prefix \1",
                str(error),
            )
            raise ValueError(f"{prefix}*: {message}" if prefix else message) from None


def _fit_user(user: dict[str, Any], specs: tuple[LayerSpec, ...], source: str) -> dict[str, Any]:
    """`user` checked against the weights' rank and depth, its per-layer sizes fitted to the layers."""
    rank = specs[0].spatial_dims
    # Said first and plainly: with another rank or depth, every kernel or per-layer list would be wrong.
    # Values of the wrong type are left to the constructors' own messages.
    dims, layers = user.get("spatial_dims", rank), user.get("num_layers", len(specs))
    if dims in SPATIAL_DIMS and not isinstance(dims, bool) and dims != rank:
        raise ValueError(f"{source} says spatial_dims={dims}; the checkpoint's convolutions are {rank}-D.")
    if isinstance(layers, int) and not isinstance(layers, bool) and layers != len(specs):
        raise ValueError(f"{source} says num_layers={layers}; the checkpoint has {len(specs)} layer(s).")
    user = configs.fit_sizes(user, len(specs), rank, source)
    return user


def _weights_keywords(
    specs: tuple[LayerSpec, ...], peephole: str | None, bias: bool, user: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The constructor keywords the weights hold, and notes on what was assumed where they are silent."""
    rank = specs[0].spatial_dims
    kwargs: dict[str, Any] = {
        "input_dim": specs[0].input_dim,
        "hidden_dim": [s.hidden_dim for s in specs],
        "kernel_size": [s.kernel_size for s in specs],
        "num_layers": len(specs),
        "batch_first": True,
        "bias": bias,
        "return_all_layers": True,
        "peephole": peephole,
        "input_kernel_size": [s.input_kernel_size for s in specs],
        "spatial_dims": rank,
    }
    if specs[0].layer_norm:  # the norms hold the first layer's state size, taken as its frames'
        kwargs |= {"layer_norm": True, "frame_size": specs[0].frame_size}
    notes = []
    if not user.keys() & set(_GEOMETRY):
        kwargs["padding"] = [s.padding for s in specs]  # the weights reader's stand-in: "valid"
        notes = [
            f"note: layer {index} has conv_x and conv_h of equal kernels, so its input-to-state convolution "
            "changes the frame size by a padding, stride or dilation the weights do not hold: checked with "
            'padding "valid", stride 1, dilation 1 (--config gives them).'
            for index, spec in enumerate(specs)
            if spec.padding == "valid"
        ]
    return kwargs, notes


def _checked_model(kwargs: dict[str, Any], source: str):
    """The Linen model `kwargs` make, after the reference's own checks of every keyword; an error
    names `source`."""
    import convlstm_jax
    import convlstm_torch

    try:
        convlstm_torch.ConvLSTM(**kwargs)  # the reference's own checks of every keyword
        model = convlstm_jax.ConvLSTM(**kwargs)
    except (TypeError, ValueError) as error:
        hint = ""
        if str(error).startswith(configs.SIZES):
            hint = " (in --config, a list gives one value per layer; one size per axis is a list inside it: [[1, 2]])"
        raise type(error)(f"{source}: {error}{hint}") from None
    return model


def weights_contradiction(
    weights: tuple[LayerSpec, ...],
    peephole: str | None,
    bias: bool,
    model: tuple[LayerSpec, ...],
    kwargs: dict[str, Any],
) -> str | None:
    """What a model's options say that the shapes in the weights do not, first found; None where they fit.

    Args:
      weights: the layers read from the weights (`convlstm_jax.infer_architecture`), with its
        peephole variant and bias.
      model: the layers of the model the options make; kwargs: those options.

    Returns:
      The option, its value and the weights' (such as "kernel_size (5, 5) does not fit the weights'
      (5, 3)"), or None.
    """
    if kwargs["peephole"] != peephole:
        return f"peephole {kwargs['peephole']!r} does not fit the weights' {peephole!r}"
    if kwargs["bias"] != bias:
        return f"bias {kwargs['bias']} does not fit the weights' {bias}"
    for index, (mine, theirs) in enumerate(zip(model, weights)):
        where = f"layer {index}'s " if len(weights) > 1 else ""
        for name in ("input_dim", "hidden_dim", "kernel_size", "input_kernel_size", "layer_norm"):
            if getattr(mine, name) != getattr(theirs, name):
                return f"{where}{name} {getattr(mine, name)} does not fit the weights' {getattr(theirs, name)}"
        if theirs.fused and not mine.fused:
            option = next(
                f"{name} {value!r}"
                for name, value, plain in (
                    ("padding", mine.padding, "same"),
                    ("stride", mine.stride, (1,) * mine.spatial_dims),
                    ("dilation", mine.dilation, (1,) * mine.spatial_dims),
                )
                if value != plain
            )
            return (
                f"{where}{option} needs separate input and state convolutions (conv_x, conv_h); the weights have one "
                "(conv)"
            )
        if mine.fused and not theirs.fused and theirs.input_dim:
            return (
                f"{where}padding 'same', stride 1 and dilation 1 make one convolution (conv); the weights have "
                "separate input and state convolutions (conv_x, conv_h) of equal kernels: give the padding, stride "
                "or dilation they were made with"
            )
    return None
