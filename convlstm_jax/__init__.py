"""ConvLSTM in JAX/Flax: a scan-compiled port of `convlstm_torch`, with weight conversion both ways."""

from . import stablehlo as stablehlo
from ._bidirectional import Bidirectional as Bidirectional
from ._cell import ConvLSTMCell as ConvLSTMCell
from ._conv import compiler_options as compiler_options
from ._convert import flax_to_torch as flax_to_torch
from ._convert import infer_architecture as infer_architecture
from ._convert import load_checkpoint as load_checkpoint
from ._convert import read_state_dict as read_state_dict
from ._convert import torch_module as torch_module
from ._convert import torch_to_flax as torch_to_flax
from ._convlstm import ConvLSTM as ConvLSTM
from ._from_flax import from_flax as from_flax
from ._keras import from_keras as from_keras
from ._onnx import to_onnx as to_onnx
from ._openstl import FramePredictor as FramePredictor
from ._openstl import from_openstl as from_openstl
from ._openstl import openstl_patches as openstl_patches
from ._openstl import openstl_unpatch as openstl_unpatch

__all__ = [
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
    "load_checkpoint",
    "openstl_patches",
    "openstl_unpatch",
    "read_state_dict",
    "stablehlo",
    "to_onnx",
    "torch_module",
    "torch_to_flax",
]
