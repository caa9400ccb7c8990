"""ONNX export of a Linen `ConvLSTM` or `Bidirectional` in one call, through its torch twin."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from .._bidirectional import Bidirectional
from .._convlstm import ConvLSTM


def to_onnx(
    model: ConvLSTM | Bidirectional,
    variables: Mapping[str, Any],
    path: str | os.PathLike,
    example_input: Any,
    *,
    step: bool = False,
    dynamic: bool = True,
    opset: int | None = None,
    initial_state: bool = False,
    seq_lengths: bool = False,
) -> pathlib.Path:
    """Writes a Linen model with its `variables` to an ONNX file that takes what `model.apply` takes.

    The model goes through its torch twin (`torch_module`) and `convlstm_torch.to_onnx`, which
    documents the ONNX inputs and outputs by name and the options. The ONNX model keeps the Linen
    model's layout: with `channels_last` (the default) it takes `x` as (B, T, H, W, C) (or
    (T, B, H, W, C) without `batch_first`) and its states and outputs are channels-last too,
    (B, H, W, hidden_dim) and (B, T, H, W, hidden_dim), as `model.apply` returns them (the graph
    transposes to and from the twin's channels-first layout); with `channels_last=False` it takes
    the torch layout. It computes in the variables' dtype (the Linen `dtype` option is not
    exported) without dropout, as `model.apply(..., deterministic=True)`.

    Args:
      model: a Linen `convlstm_jax.ConvLSTM` or `Bidirectional`, with any options.
      variables: its variables (`{"params": ...}`), as `model.init` or training made them.
      path: the `.onnx` file to write (its directory must exist).
      example_input: an array (JAX or NumPy) with the shape of the ONNX model's `x`: a sequence in
        `model`'s layout, or with `step=True` one frame (B, H, W, C) (a sequence is taken to its
        first frame). Only its shape matters.
      step, dynamic, opset, initial_state, seq_lengths: see `convlstm_torch.to_onnx`.

    Returns:
      The path written, after `onnx.checker.check_model` passed on it.

    Raises:
      TypeError, ValueError: a model of another type, variables that do not fit it, or an example
        that does not fit it, checked before anything is exported.
      RuntimeError: see `convlstm_torch.to_onnx`.

    Needs torch, `onnx` and `onnxscript` (`pip install convlstm-jax[torch,interop]`).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import numpy as np
      >>> from convlstm_jax import ConvLSTM
      >>> from convlstm_jax import to_onnx  # doctest: +SKIP
      >>> import onnxruntime as ort  # doctest: +SKIP
      >>> model = ConvLSTM(None, 8, 3, 1, batch_first=True)
      >>> x = jnp.zeros((2, 5, 16, 16, 1))
      >>> variables = model.init(jax.random.key(0), x)
      >>> to_onnx(model, variables, "convlstm.onnx", x)  # doctest: +SKIP
      PosixPath('convlstm.onnx')
      >>> session = ort.InferenceSession("convlstm.onnx")  # doctest: +SKIP
      >>> output, h, c = session.run(None, {"x": np.zeros((3, 7, 16, 16, 1), np.float32)})  # doctest: +SKIP
      >>> output.shape  # doctest: +SKIP
      (3, 7, 16, 16, 8)
    """
    if not isinstance(model, (ConvLSTM, Bidirectional)):
        raise TypeError(f"model must be a Linen convlstm_jax.ConvLSTM or Bidirectional, got {type(model).__name__}.")
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a mapping ({{'params': ...}}), got {type(variables).__name__}.")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    if not pathlib.Path(path).parent.is_dir():
        raise ValueError(f"path's directory {str(pathlib.Path(path).parent)!r} does not exist.")
    if not hasattr(example_input, "shape") or not hasattr(example_input, "dtype"):
        raise TypeError(f"example_input must be a JAX or NumPy array, got {type(example_input).__name__}.")
    if not jnp.issubdtype(example_input.dtype, jnp.floating):
        raise TypeError(f"example_input must have a floating-point dtype, got {example_input.dtype}.")
    example = np.asarray(example_input).astype(np.float32)  # only its shape matters (bfloat16 has no torch twin)

    from convlstm_torch import export_onnx

    from .torch import torch_module

    layer = model.layer if isinstance(model, Bidirectional) else model
    return export_onnx(
        torch_module(model, variables),
        path,
        example,
        step=step,
        dynamic=dynamic,
        opset=opset,
        initial_state=initial_state,
        seq_lengths=seq_lengths,
        channels_last=layer.channels_last,
    )
