"""A ConvLSTM run forwards and a copy of it run backwards, their outputs merged."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ._cell import CONVOLUTIONS, ConvLSTMCell
from ._convlstm import ConvLSTM

MERGES = ("concat", "sum")


def _draw_fresh_weights(layer: ConvLSTM) -> None:
    """Gives `layer` the weights a new layer of its hyperparameters would have.

    Every convolution (1-D, 2-D or 3-D) is drawn again as torch draws it; the Hadamard peephole
    weights go back to their initial zeros.
    """
    for module in layer.modules():
        if isinstance(module, tuple(CONVOLUTIONS.values())):
            module.reset_parameters()
        elif isinstance(module, ConvLSTMCell) and module.peephole == "hadamard":
            with torch.no_grad():
                for weight in (module.w_ci, module.w_cf, module.w_co):
                    weight.zero_()


class Bidirectional(nn.Module):
    """Runs `layer` forwards and a copy of it (with fresh weights) backwards; merges the outputs.

    The backward copy is `layer` with `reverse=True, keep_order=True`: its outputs are in the
    input's time order, so step t of the merged output sees the whole sequence. With
    `seq_lengths`, each sequence is reversed within its own length.

    Args:
      layer: the `ConvLSTM` to run both ways (its `reverse` and `keep_order` are overridden).
      merge: `"concat"` (default: hidden channels side by side, forward first) or `"sum"`.

    Returns from `forward`:
      `(outputs, (forward_states, backward_states))`: `outputs[l]` merges the two directions'
      `layer_output_list[l]`; the states are each direction's `last_state_list`.

    Example:
      >>> import torch
      >>> from convlstm_torch import Bidirectional, ConvLSTM
      >>> model = Bidirectional(ConvLSTM(3, 8, 3, 1, batch_first=True))
      >>> outputs, (forward, backward) = model(torch.zeros(2, 5, 3, 16, 16))
      >>> tuple(outputs[0].shape)
      (2, 5, 16, 16, 16)
    """

    def __init__(self, layer: ConvLSTM, merge: str = "concat"):
        super().__init__()
        if not isinstance(layer, ConvLSTM):
            raise TypeError(f"layer must be a convlstm_torch.ConvLSTM, got {type(layer).__name__}.")
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {merge!r}.")
        self.merge = merge
        backward = copy.deepcopy(layer)
        _draw_fresh_weights(backward)
        layer.reverse, backward.reverse, backward.keep_order = False, True, True
        self.forward_layer, self.backward_layer = layer, backward

    def forward(self, input_tensor: torch.Tensor, hidden_state=None, seq_lengths=None):
        """Runs both directions.

        Args:
          input_tensor: the input, in `layer`'s layout.
          hidden_state: None, or `(forward_initial, backward_initial)`, each None or a list of
            `(h, c)` per layer as `ConvLSTM` takes it.
          seq_lengths: None, or an int tensor (B,) of lengths; see `ConvLSTM`.
        """
        if hidden_state is None:
            hidden_state = (None, None)
        if not isinstance(hidden_state, (tuple, list)) or len(hidden_state) != 2:
            raise ValueError("hidden_state must be None or a pair (forward_initial, backward_initial).")
        outputs_f, states_f = self.forward_layer(input_tensor, hidden_state[0], seq_lengths)
        outputs_b, states_b = self.backward_layer(input_tensor, hidden_state[1], seq_lengths)
        if self.merge == "sum":
            outputs = [f + b for f, b in zip(outputs_f, outputs_b)]
        else:
            outputs = [torch.cat([f, b], dim=2) for f, b in zip(outputs_f, outputs_b)]
        return outputs, (states_f, states_b)
