"""A stack of ConvLSTM layers run over a sequence: the seed's `ConvLSTM`."""

from __future__ import annotations

import torch
from torch import nn

from convlstm_common import check_peephole, resolve_layers

from ._cell import ConvLSTMCell, _check_float


class ConvLSTM(nn.Module):
    """A stack of `ConvLSTMCell` layers, each run over the whole sequence before the next.

    Args:
      input_dim: channels of the input; 0 for a stack without input, which runs on a zero-channel
        input_tensor (B, T, 0, H, W) (the forecaster of Shi et al. 2015).
      hidden_dim: hidden channels, one int for every layer or a list with one per layer.
      kernel_size: (kh, kw) (or an int) for every layer, or a list with one per layer; odd only.
      num_layers: number of stacked layers.
      batch_first: the input is (B, T, C, H, W) if True, else (T, B, C, H, W).
      bias: whether the convolutions have biases.
      return_all_layers: return every layer's outputs and final state, not only the last layer's.
      peephole: `"conv"` (the seed, default), `"hadamard"` (the paper) or `None` (ndrplz); see
        `ConvLSTMCell`.
      check_finite: raise ValueError when the input or initial state holds NaN or inf (one
        device sync per call). Off by default: NaN and inf otherwise propagate.
      input_kernel_size: the input-to-state kernel, in the forms of `kernel_size`; None (default)
        for `kernel_size`. Layers where the two differ have keys `conv_x.*` and `conv_h.weight`
        instead of `conv.*`.

    Returns from `forward`:
      `(layer_output_list, last_state_list)`. `layer_output_list[l]` is layer l's hidden state at
      every step, stacked **batch-first, (B, T, hidden_dim, H, W), whatever `batch_first` says** (as
      the seed does). `last_state_list[l]` is `[h, c]`, the layer's final state, each
      (B, hidden_dim, H, W). Both lists hold only the last layer's entry unless `return_all_layers`.

    Example:
      >>> model = ConvLSTM(1, [16, 8], (3, 3), 2, batch_first=True)
      >>> outputs, states = model(torch.zeros(4, 10, 1, 32, 32))
      >>> tuple(outputs[0].shape), tuple(states[0][0].shape)
      ((4, 10, 8, 32, 32), (4, 8, 32, 32))

    The state_dict keys are the seed's (`cell_list.0.conv.weight`, `cell_list.0.conv_c.bias`, ...):
    checkpoints saved by KL4805/ConvLSTM-Pytorch load into `peephole="conv"`, checkpoints saved by
    ndrplz/ConvLSTM_pytorch into `peephole=None`.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim,
        kernel_size,
        num_layers: int,
        batch_first: bool = False,
        bias: bool = True,
        return_all_layers: bool = False,
        *,
        peephole="conv",
        check_finite: bool = False,
        input_kernel_size=None,
    ):
        super().__init__()
        if input_dim is None:
            raise TypeError("input_dim must be a non-negative int (0: no input), got None.")
        specs = resolve_layers(input_dim, hidden_dim, kernel_size, num_layers, input_kernel_size)
        self.input_dim = specs[0].input_dim
        self.hidden_dim = [s.hidden_dim for s in specs]
        self.kernel_size = [s.kernel_size for s in specs]
        self.input_kernel_size = [s.input_kernel_size for s in specs]
        self.num_layers = len(specs)
        self.batch_first = batch_first
        self.bias = bias
        self.return_all_layers = return_all_layers
        self.peephole = check_peephole(peephole)
        self.check_finite = check_finite
        self.cell_list = nn.ModuleList(
            ConvLSTMCell(
                s.input_dim, s.hidden_dim, s.kernel_size, bias, peephole=peephole, input_kernel_size=s.input_kernel_size
            )
            for s in specs
        )

    def forward(self, input_tensor: torch.Tensor, hidden_state=None):
        """Runs the stack over the sequence.

        Args:
          input_tensor: (B, T, C, H, W) if `batch_first`, else (T, B, C, H, W).
          hidden_state: None for zero initial states, or a list with one `(h, c)` per layer, each
            of shape (B, hidden_dim[l], H, W).

        Returns:
          `(layer_output_list, last_state_list)`; see the class docstring.
        """
        self._check_input(input_tensor)
        if not self.batch_first:
            input_tensor = input_tensor.permute(1, 0, 2, 3, 4)
        b, seq_len, _, height, width = input_tensor.shape
        if hidden_state is None:
            hidden_state = [cell.init_hidden(b, (height, width)) for cell in self.cell_list]
        else:
            self._check_hidden_state(hidden_state, b, height, width)
        if self.check_finite:
            named = [("input_tensor", input_tensor)]
            named += [(f"hidden_state[{i}] {n}", t) for i, pair in enumerate(hidden_state) for n, t in zip("hc", pair)]
            for name, tensor in named:
                bad = int((~torch.isfinite(tensor)).sum())
                if bad:
                    raise ValueError(f"{name} holds {bad} NaN or inf value(s) (check_finite=True).")

        layer_output_list, last_state_list = [], []
        cur_layer_input = input_tensor
        for cell, (h, c) in zip(self.cell_list, hidden_state):
            outputs = []
            for t in range(seq_len):
                h, c = cell._step(cur_layer_input[:, t], h, c)
                outputs.append(h)
            cur_layer_input = torch.stack(outputs, dim=1)
            layer_output_list.append(cur_layer_input)
            last_state_list.append([h, c])

        if not self.return_all_layers:
            layer_output_list = layer_output_list[-1:]
            last_state_list = last_state_list[-1:]
        return layer_output_list, last_state_list

    def _check_input(self, x) -> None:
        _check_float("input_tensor", x)
        layout = "(B, T, C, H, W)" if self.batch_first else "(T, B, C, H, W)"
        if x.dim() != 5:
            raise ValueError(f"input_tensor must be 5-D {layout}, got shape {tuple(x.shape)}.")
        if x.shape[2] != self.input_dim:
            raise ValueError(
                f"input_tensor has {x.shape[2]} channels (dim 2 of {layout} {tuple(x.shape)}); "
                f"input_dim is {self.input_dim}."
            )
        if 0 in x.shape[:2] + x.shape[3:]:
            raise ValueError(f"input_tensor must not have an empty dimension but channels, got shape {tuple(x.shape)}.")

    def _check_hidden_state(self, hidden_state, batch: int, height: int, width: int) -> None:
        if not isinstance(hidden_state, (list, tuple)) or len(hidden_state) != self.num_layers:
            got = len(hidden_state) if isinstance(hidden_state, (list, tuple)) else type(hidden_state).__name__
            raise ValueError(
                f"hidden_state must be a list of {self.num_layers} (h, c) pairs, one per layer; got {got}."
            )
        for layer, (cell, state) in enumerate(zip(self.cell_list, hidden_state)):
            if not isinstance(state, (list, tuple)) or len(state) != 2:
                raise ValueError(f"hidden_state[{layer}] must be a pair (h, c), got {type(state).__name__}.")
            expected = (batch, cell.hidden_dim, height, width)
            for name, tensor in zip("hc", state):
                _check_float(f"hidden_state[{layer}] {name}", tensor)
                if tuple(tensor.shape) != expected:
                    raise ValueError(
                        f"hidden_state[{layer}] {name} must have shape (B, hidden_dim, H, W) = {expected}, "
                        f"got {tuple(tensor.shape)}."
                    )
