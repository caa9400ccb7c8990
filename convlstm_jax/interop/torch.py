"""The reference's weights as files and as a module: `read_state_dict` and `load_checkpoint` read
a torch or safetensors checkpoint, `torch_module` builds the `convlstm_torch` twin of a Linen model.
The layouts themselves are `convlstm_jax`'s conversion table (`torch_to_flax`, `flax_to_torch`)."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Mapping
from typing import Any

from .._convert import flax_to_torch, frames_from_norms, infer_architecture, torch_to_flax

DIRECTIONS = ("forward_layer", "backward_layer")


def read_state_dict(path: str | os.PathLike) -> Mapping[str, Any]:
    """Reads a reference checkpoint file's state_dict (see `load_checkpoint`), unconverted."""
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".safetensors", ".pt", ".pth", ".bin"):
        raise ValueError(
            f"Unknown checkpoint format {extension!r} for {path!r}: expected .safetensors, .pt, .pth or .bin."
        )
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        kind = "safetensors file" if extension == ".safetensors" else "torch checkpoint"
        raise ValueError(f"{path!r} is empty (0 bytes), not a {kind}.")
    if extension == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"Loading {path!r} needs torch; or save the state_dict as .safetensors.") from error
    truncated = f"{path!r} is not a complete torch checkpoint (truncated?)"
    if _is_broken_zip(path):
        raise ValueError(f"{truncated}: its zip archive has no end (no central directory).")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, IndexError, OSError, struct.error) as error:  # torch's unpickler running off the end
        if isinstance(error, OSError) and error.errno != errno.EINVAL:
            raise  # not the file's content: permissions, a directory, ...
        raise ValueError(f"{truncated}: {type(error).__name__} while reading it.") from None
    except RuntimeError as error:
        if "unexpected EOF" not in str(error) and "zip archive" not in str(error):
            raise
        raise ValueError(f"{truncated}: {' '.join(str(error).split('.')[0].split())}.") from None
    for wrapper in ("state_dict", "model_state_dict"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            return loaded[wrapper]
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path!r} holds a {type(loaded).__name__}, not a state_dict.")
    return loaded


def _is_broken_zip(path: str) -> bool:
    """Whether `path` starts as a zip archive (torch's format since 1.6) but does not end as one."""
    import zipfile

    with open(path, "rb") as file:
        return file.read(4) == b"PK\x03\x04" and not zipfile.is_zipfile(path)


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

    Raises:
      ValueError: an unknown extension; an empty file, or a torch checkpoint cut short ("is not a
        complete torch checkpoint (truncated?)"); or what `torch_to_flax` raises.
    """
    return torch_to_flax(read_state_dict(path), model, prefix=prefix, dtype=dtype)


def torch_module(model: Any, variables: Mapping[str, Any]) -> Any:
    """The torch twin of a Linen `ConvLSTM` or `Bidirectional`, holding `variables`' weights.

    The twin is `convlstm_torch.ConvLSTM` (or `convlstm_torch.Bidirectional`) with every shared
    option of `model` (`convlstm_common.options.StackOptions`), `input_dim` (and with `layer_norm`
    `frame_size`) read from the weights where the model leaves it None, and the weights converted
    by `flax_to_torch`. It is in eval mode and has the variables' float dtype; `channels_last` is
    JAX's only: the twin takes (B, T, C, H, W).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from convlstm_jax import ConvLSTM, torch_module
      >>> model = ConvLSTM(None, 4, 3, 1, batch_first=True)
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 2, 8, 8, 3)))
      >>> twin = torch_module(model, variables)
      >>> twin.cell_list[0]
      ConvLSTMCell(
        input_dim=3, hidden_dim=4, kernel_size=(3, 3), bias=True, peephole='conv'
        (conv): Conv2d(7, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
        (conv_c): Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
        (conv_cnext): Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
      )
    """
    import torch

    import convlstm_torch
    from convlstm_common.options import StackOptions, declared

    from .._bidirectional import Bidirectional
    from .._convlstm import ConvLSTM

    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a mapping ({{'params': ...}}), got {type(variables).__name__}.")
    params = variables["params"] if "params" in variables else variables
    if isinstance(model, Bidirectional):
        layer = model.layer
        forward = torch_module(layer, {"params": params["forward_layer"]})
        twin = convlstm_torch.Bidirectional(forward, merge=model.merge)
        state_dict = {
            f"{direction}.{key}": torch.from_numpy(value)
            for direction in DIRECTIONS
            for key, value in flax_to_torch({"params": params[direction]}, layer).items()
        }
    elif isinstance(model, ConvLSTM):
        options = {field.name: getattr(model, field.name) for field in declared(StackOptions)}
        inferred = infer_architecture(params, model.spatial_dims)[0]
        if options["input_dim"] is None:
            options["input_dim"] = inferred[0].input_dim
        if model.layer_norm and model.frame_size is None:  # the Linen model took it from its input
            options["frame_size"] = frames_from_norms(model.layer_specs(), inferred[0])[0].frame_size
        twin = convlstm_torch.ConvLSTM(**options)
        state_dict = {key: torch.from_numpy(value) for key, value in flax_to_torch(params, model).items()}
    else:
        raise TypeError(f"model must be a Linen convlstm_jax.ConvLSTM or Bidirectional, got {type(model).__name__}.")
    dtypes = {value.dtype for value in state_dict.values()}
    twin.to(dtypes.pop() if len(dtypes) == 1 else torch.float32)
    twin.load_state_dict(state_dict)
    return twin.eval()
