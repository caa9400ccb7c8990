"""ConvLSTM in JAX/Flax: a scan-compiled port of `convlstm_torch`, with weight conversion both ways.

The core (cells, stack, convolution, bidirectional wrapper, the conversion table) is re-exported
here; the rooms above it are subpackages: `nnx` (the Flax NNX front), `models` (the
encoder-forecaster, OpenSTL's frame model), `interop` (other frameworks in, artifacts out),
`nowcasting` and `training`.
"""

from . import interop as interop
from ._bidirectional import MERGES as MERGES
from ._bidirectional import Bidirectional as Bidirectional
from ._cell import ConvLSTMCell as ConvLSTMCell
from ._conv import compiler_options as compiler_options
from ._convert import flax_to_torch as flax_to_torch
from ._convert import infer_architecture as infer_architecture
from ._convert import torch_to_flax as torch_to_flax
from ._convlstm import ConvLSTM as ConvLSTM
from .interop import from_flax as from_flax
from .interop import from_keras as from_keras
from .interop import from_openstl as from_openstl
from .interop import load_checkpoint as load_checkpoint
from .interop import read_state_dict as read_state_dict
from .interop import to_onnx as to_onnx
from .interop import to_torch_module as torch_module
from .models import FramePredictor as FramePredictor
from .models import openstl_patches as openstl_patches
from .models import openstl_unpatch as openstl_unpatch

__all__ = [
    "MERGES",
    "Bidirectional",
    "ConvLSTM",
    "ConvLSTMCell",
    "FramePredictor",
    "compiler_options",
    "flax_to_torch",
    "from_flax",
    "from_keras",
    "from_openstl",
    "infer_architecture",
    "interop",
    "load_checkpoint",
    "openstl_patches",
    "openstl_unpatch",
    "read_state_dict",
    "to_onnx",
    "torch_module",
    "torch_to_flax",
]


def __getattr__(name: str):
    # `convlstm_jax.stablehlo` without importing it first, as before it moved to `interop`: the alias
    # module, whose names warn with their new path.
    if name == "stablehlo":
        import importlib

        return importlib.import_module("convlstm_jax.stablehlo")
    raise AttributeError(f"module 'convlstm_jax' has no attribute {name!r}")
