"""ConvLSTM in PyTorch: the reference implementation.

The API and state_dict keys of KL4805/ConvLSTM-Pytorch (itself derived from ndrplz/ConvLSTM_pytorch),
plus an initial state and a choice of peephole connections.
"""

from ._bidirectional import Bidirectional as Bidirectional
from ._cell import ConvLSTMCell as ConvLSTMCell
from ._convlstm import ConvLSTM as ConvLSTM
from ._onnx import export_onnx as export_onnx
from ._onnx import to_onnx as to_onnx

__all__ = ["Bidirectional", "ConvLSTM", "ConvLSTMCell", "export_onnx", "to_onnx"]
