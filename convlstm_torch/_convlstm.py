"""A stack of ConvLSTM layers run over a sequence: KL4805/ConvLSTM-Pytorch's `ConvLSTM`."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from convlstm_common import check_frame, check_peephole, check_rate, spatial_axes
from convlstm_common.options import CellOptions, StackOptions, cell_kwargs, document, stack_specs

from ._cell import ConvLSTMCell, _check_float


def _describe(value) -> str:
    if torch.is_tensor(value) or hasattr(value, "shape"):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"{len(value)} entries" if isinstance(value, (list, tuple)) else type(value).__name__


def flip_sequences(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverses each sequence of a batch-first `x` (B, T, ...) along time within its own length.

    Steps past a sequence's length stay where they are; with `lengths` None, the whole time axis
    is reversed. Applying it twice gives `x` back.
    """
    if lengths is None:
        return torch.flip(x, dims=(1,))
    t = torch.arange(x.shape[1], device=x.device)
    index = torch.where(t[None, :] < lengths[:, None], lengths[:, None] - 1 - t[None, :], t[None, :])
    index = index.view(*index.shape, *(1,) * (x.dim() - 2)).expand_as(x)
    return torch.gather(x, 1, index)


@document("torch", StackOptions)
@dataclasses.dataclass(eq=False, repr=False)
class ConvLSTM(nn.Module, StackOptions):
    """A stack of `ConvLSTMCell` layers, each run over the whole sequence before the next.

    Args:
      {options}

    Returns from `forward`:
      `(layer_output_list, last_state_list)`. `layer_output_list[l]` is layer l's hidden state at
      every step, stacked **batch-first, (B, T, hidden_dim, H, W), whatever `batch_first` says** (as
      KL4805/ConvLSTM-Pytorch does). `last_state_list[l]` is `[h, c]`, the layer's final state, each
      (B, hidden_dim, H, W). Both lists hold only the last layer's entry unless `return_all_layers`.

    Example:
      >>> import torch
      >>> from convlstm_torch import ConvLSTM
      >>> model = ConvLSTM(1, [16, 8], (3, 3), 2, batch_first=True)
      >>> outputs, states = model(torch.zeros(4, 10, 1, 32, 32))
      >>> tuple(outputs[0].shape), tuple(states[0][0].shape)
      ((4, 10, 8, 32, 32), (4, 8, 32, 32))

    The state_dict keys are KL4805/ConvLSTM-Pytorch's (`cell_list.0.conv.weight`, `cell_list.0.conv_c.bias`, ...):
    checkpoints saved by KL4805/ConvLSTM-Pytorch load into `peephole="conv"`, checkpoints saved by
    ndrplz/ConvLSTM_pytorch into `peephole=None`.
    """

    def __post_init__(self) -> None:
        super().__init__()
        if self.input_dim is None:
            raise TypeError("input_dim must be a non-negative int (0: no input), got None.")
        specs = stack_specs(self)
        self.spatial_dims = specs[0].spatial_dims
        self.input_dim = specs[0].input_dim
        self.hidden_dim = [s.hidden_dim for s in specs]
        self.kernel_size = [s.kernel_size for s in specs]
        self.input_kernel_size = [s.input_kernel_size for s in specs]
        self.num_layers = len(specs)
        self.peephole = check_peephole(self.peephole)
        self.dropout = check_rate("dropout", self.dropout)
        self.recurrent_dropout = check_rate("recurrent_dropout", self.recurrent_dropout)
        self.cell_list = nn.ModuleList(
            ConvLSTMCell(s.input_dim, s.hidden_dim, s.kernel_size, self.bias, **cell_kwargs(self, s, CellOptions))
            for s in specs
        )

    def forward(self, input_tensor: torch.Tensor, hidden_state=None, seq_lengths=None, dropout_masks=None):
        """Runs the stack over the sequence.

        Args:
          input_tensor: (B, T, C, H, W) if `batch_first`, else (T, B, C, H, W).
          hidden_state: None for zero initial states, or a list with one `(h, c)` per layer, each
            of shape (B, hidden_dim[l], H, W).
          seq_lengths: None (every sequence has T steps), or an int tensor (B,) of lengths in
            [0, T]. Steps past a sequence's length leave its state unchanged and output zeros, so
            the returned final state is the state at each sequence's own last step. With
            `reverse`, each sequence is reversed within its own length.
          dropout_masks: explicit masks instead of drawn ones (in any mode): a list with one
            `(input_mask, state_mask)` per layer, each None or a tensor multiplying the layer's
            input (B, C_l, H, W) or hidden state (B, hidden_dim[l], H, W) at every step.

        Returns:
          `(layer_output_list, last_state_list)`; see the class docstring.
        """
        self._check_input(input_tensor)
        if not self.batch_first:
            input_tensor = input_tensor.transpose(0, 1)
        b, seq_len, _, *frame = input_tensor.shape
        sizes = self.state_sizes(tuple(frame))
        frames = [tuple(frame), *sizes[:-1]]  # what each layer reads
        if hidden_state is None:
            hidden_state = [cell.init_hidden(b, frame) for cell, frame in zip(self.cell_list, frames)]
        else:
            self._check_hidden_state(hidden_state, b, sizes)
        if self.check_finite:
            named = [("input_tensor", input_tensor)]
            named += [(f"hidden_state[{i}] {n}", t) for i, pair in enumerate(hidden_state) for n, t in zip("hc", pair)]
            for name, tensor in named:
                bad = int((~torch.isfinite(tensor)).sum())
                if bad:
                    raise ValueError(f"{name} holds {bad} NaN or inf value(s) (check_finite=True).")

        lengths = self._check_lengths(seq_lengths, b, seq_len)
        masks = self._dropout_masks(dropout_masks, input_tensor, b, frames, sizes)
        if self.reverse:
            input_tensor = flip_sequences(input_tensor, lengths)

        layer_output_list, last_state_list = [], []
        cur_layer_input = input_tensor
        for cell, (h, c), (mask_x, mask_h) in zip(self.cell_list, hidden_state, masks):
            outputs = []
            for t in range(seq_len):
                x_t = cur_layer_input[:, t]
                h_next, c_next = cell._step(
                    x_t if mask_x is None else x_t * mask_x, h if mask_h is None else h * mask_h, c
                )
                if lengths is not None:  # Past its end, a sequence keeps its state and outputs zeros.
                    valid = (t < lengths).view(-1, *(1,) * (h.dim() - 1))
                    h, c = torch.where(valid, h_next, h), torch.where(valid, c_next, c)
                    outputs.append(torch.where(valid, h_next, torch.zeros_like(h_next)))
                else:
                    h, c = h_next, c_next
                    outputs.append(h)
            cur_layer_input = torch.stack(outputs, dim=1)
            layer_output_list.append(cur_layer_input)
            last_state_list.append([h, c])

        if self.reverse and self.keep_order:
            layer_output_list = [flip_sequences(y, lengths) for y in layer_output_list]
        if not self.return_all_layers:
            layer_output_list = layer_output_list[-1:]
            last_state_list = last_state_list[-1:]
        return layer_output_list, last_state_list

    def state_sizes(self, image_size: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The (H, W) of each layer's state for input frames of size `image_size` (the spatial
        size, in any rank)."""
        sizes = []
        for cell in self.cell_list:
            image_size = cell.state_size(image_size)
            sizes.append(image_size)
        return sizes

    def _check_lengths(self, seq_lengths, batch: int, steps: int):
        if seq_lengths is None:
            return None
        if not torch.is_tensor(seq_lengths) or seq_lengths.is_floating_point() or seq_lengths.is_complex():
            raise TypeError(f"seq_lengths must be an int tensor of shape ({batch},), got {_describe(seq_lengths)}.")
        if tuple(seq_lengths.shape) != (batch,):
            raise ValueError(f"seq_lengths must have shape (B,) = ({batch},), got {tuple(seq_lengths.shape)}.")
        low, high = int(seq_lengths.min()), int(seq_lengths.max())
        if low < 0 or high > steps:
            raise ValueError(f"seq_lengths must lie in [0, T] = [0, {steps}], got values in [{low}, {high}].")
        return seq_lengths.to(device=next(self.parameters()).device, dtype=torch.long)

    def _dropout_masks(self, dropout_masks, x: torch.Tensor, batch: int, frames, sizes) -> list:
        inputs = [self.input_dim, *self.hidden_dim[:-1]]
        if dropout_masks is None:
            if not self.training:
                return [(None, None)] * self.num_layers

            def draw(rate: float, depth: int, frame: tuple[int, int]):
                if not rate or not depth:
                    return None
                keep = torch.full((batch, depth, *frame), 1.0 - rate, dtype=x.dtype, device=x.device)
                return torch.bernoulli(keep) / (1.0 - rate)

            return [
                (draw(self.dropout, d, frame), draw(self.recurrent_dropout, h, size))
                for d, h, frame, size in zip(inputs, self.hidden_dim, frames, sizes)
            ]
        if not isinstance(dropout_masks, (list, tuple)) or len(dropout_masks) != self.num_layers:
            raise ValueError(
                f"dropout_masks must be a list of {self.num_layers} (input_mask, state_mask) pairs, one per layer; "
                f"got {_describe(dropout_masks)}."
            )
        for layer, (pair, depth, hid, frame, size) in enumerate(
            zip(dropout_masks, inputs, self.hidden_dim, frames, sizes)
        ):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(
                    f"dropout_masks[{layer}] must be a pair (input_mask, state_mask), got {_describe(pair)}."
                )
            for name, mask, expected in zip(
                ("input_mask", "state_mask"), pair, ((batch, depth, *frame), (batch, hid, *size))
            ):
                if mask is None:
                    continue
                _check_float(f"dropout_masks[{layer}] {name}", mask, next(self.parameters()))
                if tuple(mask.shape) != expected:
                    raise ValueError(
                        f"dropout_masks[{layer}] {name} must have shape {expected}, got {tuple(mask.shape)}."
                    )
        return [tuple(pair) for pair in dropout_masks]

    def _check_input(self, x) -> None:
        _check_float("input_tensor", x, next(self.parameters()))
        axes = spatial_axes(self.spatial_dims)
        layout = f"(B, T, C, {axes})" if self.batch_first else f"(T, B, C, {axes})"
        if x.dim() != self.spatial_dims + 3:
            raise ValueError(
                f"input_tensor must be {self.spatial_dims + 3}-D {layout}, got shape {tuple(x.shape)} "
                f"(spatial_dims={self.spatial_dims})."
            )
        if x.shape[2] != self.input_dim:
            raise ValueError(
                f"input_tensor has {x.shape[2]} channels (dim 2 of {layout} {tuple(x.shape)}); "
                f"input_dim is {self.input_dim}."
            )
        if 0 in x.shape[:2] + x.shape[3:]:
            raise ValueError(f"input_tensor must not have an empty dimension but channels, got shape {tuple(x.shape)}.")
        check_frame(self.cell_list[0].spec, tuple(x.shape[3:]))

    def _check_hidden_state(self, hidden_state, batch: int, sizes) -> None:
        if not isinstance(hidden_state, (list, tuple)) or len(hidden_state) != self.num_layers:
            got = len(hidden_state) if isinstance(hidden_state, (list, tuple)) else type(hidden_state).__name__
            raise ValueError(
                f"hidden_state must be a list of {self.num_layers} (h, c) pairs, one per layer; got {got}."
            )
        for layer, (cell, state) in enumerate(zip(self.cell_list, hidden_state)):
            if not isinstance(state, (list, tuple)) or len(state) != 2:
                raise ValueError(f"hidden_state[{layer}] must be a pair (h, c), got {type(state).__name__}.")
            expected = (batch, cell.hidden_dim, *sizes[layer])
            for name, tensor in zip("hc", state):
                _check_float(f"hidden_state[{layer}] {name}", tensor, next(self.parameters()))
                if tuple(tensor.shape) != expected:
                    raise ValueError(
                        f"hidden_state[{layer}] {name} must have shape "
                        f"(B, hidden_dim, {spatial_axes(self.spatial_dims)}) = {expected}, "
                        f"got {tuple(tensor.shape)}."
                    )
