"""Other ConvLSTMs in, portable artifacts out: one namespace, one naming scheme.

`from_*` reads another framework's model or weights into this library's Linen modules and their
variables; `to_*` writes this library's modules out. Each is held to the other side in the tests.

| name | from / to |
| ---- | --------- |
| `from_torch`, `to_torch` | the reference's state_dict (`convlstm_torch`, KL4805/ConvLSTM-Pytorch's keys) |
| `load_checkpoint`, `read_state_dict` | a torch or safetensors file of such a state_dict |
| `to_torch_module` | the `convlstm_torch` twin of a Linen model, its weights in it |
| `from_keras` | Keras 3's `ConvLSTM1D/2D/3D` (a model, a `.keras` file or its weights) |
| `from_flax` | Flax's `nn.ConvLSTMCell` params (stacks, `nn.Bidirectional`) |
| `from_openstl` | an OpenSTL ConvLSTM checkpoint (cells, or the whole `FramePredictor`) |
| `to_onnx` | an ONNX file, through the reference's exporter |
| `to_stablehlo` | a serialised StableHLO program for CPU, CUDA, ROCm and TPU (`stablehlo.save`, `stablehlo.load`) |

The command `convlstm-convert SOURCE DEST` (`convert`) goes between the files of all of them.
"""

from .._convert import flax_to_torch as to_torch
from .._convert import torch_to_flax as from_torch
from . import stablehlo as stablehlo
from .flax import from_flax as from_flax
from .keras import from_keras as from_keras
from .onnx import to_onnx as to_onnx
from .openstl import from_openstl as from_openstl
from .stablehlo import export as to_stablehlo
from .torch import load_checkpoint as load_checkpoint
from .torch import read_state_dict as read_state_dict
from .torch import torch_module as to_torch_module

__all__ = [
    "from_flax",
    "from_keras",
    "from_openstl",
    "from_torch",
    "load_checkpoint",
    "read_state_dict",
    "stablehlo",
    "to_onnx",
    "to_stablehlo",
    "to_torch",
    "to_torch_module",
]
