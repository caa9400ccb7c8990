"""One ConvLSTM step (Shi et al. 2015, Eq. 3) with KL4805/ConvLSTM-Pytorch's parameter layout."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from convlstm_common import check_frame, check_peephole, spatial_axes
from convlstm_common.options import CellOptions, cell_spec, document

CONVOLUTIONS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
"""The torch convolution of each spatial rank."""


def _check_float(name: str, tensor: torch.Tensor, weights: torch.Tensor | None = None) -> None:
    """Raises TypeError unless `tensor` is a floating-point tensor, of the dtype of `weights` where
    given (outside `torch.autocast`, which casts each operation's inputs itself)."""
    if not torch.is_tensor(tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}.")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {tensor.dtype}.")
    if weights is not None and tensor.dtype != weights.dtype and not torch.is_autocast_enabled(tensor.device.type):
        raise TypeError(
            f"{name} must have the weights' dtype {weights.dtype}, got {tensor.dtype} (cast it with "
            f".to({weights.dtype}), or the model with .to({tensor.dtype}))."
        )


@document("torch", CellOptions)
@dataclasses.dataclass(eq=False, repr=False)
class ConvLSTMCell(nn.Module, CellOptions):
    """One ConvLSTM step on (B, C, H, W) tensors.

    Frames may also be signals (B, C, L) or volumes (B, C, D, H, W): `spatial_dims`. With `*` a
    cross-correlation with zero padding k // 2, `∘` the elementwise product, X the input and (H, C)
    the previous state:

        [z_i, z_f, z_o, z_g] = conv * [X, H] + b          (one convolution, four blocks)

    or, when the input-to-state kernel differs from the state-to-state one, conv_x * X + b + conv_h * H
    (state_dict keys `conv_x.*`, `conv_h.weight`). A cell without input (input_dim=0, X of shape
    (B, 0, H, W)) computes conv_h * H + b.
        i = σ(z_i + P_i(C)),  f = σ(z_f + P_f(C)),  g = tanh(z_g)
        C' = f ∘ C + i ∘ g
        o = σ(z_o + P_o(C')),  H' = o ∘ tanh(C')

    (with `layer_norm`, each of the two convolutions' outputs is layer-normalised first:
    norm_x(conv_x * X + b) + norm_h(conv_h * H)); with `forget_bias` b_f, f = σ(z_f + P_f(C) + b_f);
    where the peephole terms P are, by `peephole`:

    - `"conv"` (KL4805/ConvLSTM-Pytorch): [P_i, P_f] = conv_c * C + b_c and P_o = conv_cnext * C' + b_cn.
    - `"hadamard"` (the paper, Eq. 3): P_i = w_ci ∘ C, P_f = w_cf ∘ C, P_o = w_co ∘ C', one weight per
      channel, initialised to zero.
    - `None` (ndrplz/ConvLSTM_pytorch): no peephole terms.

    Args:
      input_dim: channels of the input X; 0 for a cell without input.
      hidden_dim: channels of H and C.
      kernel_size: (kh, kw) (one size per spatial axis), or an int for every axis; odd sizes
        only. The state-to-state kernel (and the peephole convolutions'); also the input-to-state
        one unless `input_kernel_size` is given.
      bias: whether the convolutions have biases.
      {options}

    Example:
      >>> import torch
      >>> from convlstm_torch import ConvLSTMCell
      >>> cell = ConvLSTMCell(3, 8, (3, 3), True)
      >>> x = torch.zeros(2, 3, 16, 16)
      >>> h, c = cell(x, cell.init_hidden(2, (16, 16)))
      >>> tuple(h.shape)
      (2, 8, 16, 16)
    """

    input_dim: int
    hidden_dim: int
    kernel_size: int | tuple[int, ...]
    bias: bool = True

    def __post_init__(self) -> None:
        super().__init__()
        if self.input_dim is None:
            raise TypeError("input_dim must be a non-negative int (0: no input), got None.")
        spec = cell_spec(self)
        self.spec = spec
        self.spatial_dims = spec.spatial_dims
        convolution = CONVOLUTIONS[spec.spatial_dims]
        self.input_dim = spec.input_dim
        self.hidden_dim = spec.hidden_dim
        self.kernel_size = spec.kernel_size
        self.input_kernel_size = spec.input_kernel_size
        self.input_padding, self.stride, self.dilation = spec.padding, spec.stride, spec.dilation
        self.padding = tuple(k // 2 for k in self.kernel_size)
        self.peephole = check_peephole(self.peephole)
        self.layer_norm, self.frame_size = spec.layer_norm, spec.frame_size
        if self.layer_norm and self.frame_size is None:
            raise ValueError(
                "layer_norm=True needs frame_size, the input frames' spatial size (its parameters hold "
                "every position of the state), got frame_size=None."
            )
        bias = self.bias

        def conv(in_channels: int, out_channels: int, kernel=self.kernel_size, use_bias=bias) -> nn.Module:
            padding = tuple(k // 2 for k in kernel)
            return convolution(in_channels, out_channels, kernel, padding=padding, bias=use_bias)

        self.fused = spec.fused
        if self.fused:  # KL4805/ConvLSTM-Pytorch's single convolution over [X, H].
            self.conv = conv(self.input_dim + self.hidden_dim, 4 * self.hidden_dim)
        else:  # Two: X (if any) with the input kernel, H with the state kernel; one bias.
            if self.input_dim:
                self.conv_x = convolution(
                    self.input_dim,
                    4 * self.hidden_dim,
                    self.input_kernel_size,
                    stride=spec.stride,
                    padding=spec.input_padding,
                    dilation=spec.dilation,
                    bias=bias,
                )
            self.conv_h = conv(self.hidden_dim, 4 * self.hidden_dim, use_bias=bias and not self.input_dim)
        if self.layer_norm:  # each convolution's output, over its channels and positions
            shape = [4 * self.hidden_dim, *spec.state_frame]
            if self.input_dim:
                self.norm_x = nn.LayerNorm(shape)
            self.norm_h = nn.LayerNorm(shape)
        if self.peephole == "conv":
            self.conv_c = conv(self.hidden_dim, 2 * self.hidden_dim)
            self.conv_cnext = conv(self.hidden_dim, self.hidden_dim)
        elif self.peephole == "hadamard":
            shape = (self.hidden_dim, *(1,) * spec.spatial_dims)
            self.w_ci = nn.Parameter(torch.zeros(shape))
            self.w_cf = nn.Parameter(torch.zeros(shape))
            self.w_co = nn.Parameter(torch.zeros(shape))

    def forward(self, input_tensor: torch.Tensor, cur_state) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs one step.

        Args:
          input_tensor: X, of shape (B, input_dim, H, W).
          cur_state: (h, c), each of shape (B, hidden_dim, H, W).

        Returns:
          (h_next, c_next), each of shape (B, hidden_dim, H, W).
        """
        self._check_step(input_tensor, cur_state)
        return self._step(input_tensor, *cur_state)

    def _step(self, input_tensor: torch.Tensor, h_cur: torch.Tensor, c_cur: torch.Tensor):
        # The gate math, on checked arguments.
        if self.fused:
            combined = self.conv(torch.cat([input_tensor, h_cur], dim=1))
        else:
            combined = self.conv_h(h_cur)
            if self.layer_norm:
                combined = self.norm_h(combined)
            if self.input_dim:
                projected = self.conv_x(input_tensor)
                combined = (self.norm_x(projected) if self.layer_norm else projected) + combined
        z_i, z_f, z_o, z_g = torch.split(combined, self.hidden_dim, dim=1)
        if self.peephole == "conv":
            p_i, p_f = torch.split(self.conv_c(c_cur), self.hidden_dim, dim=1)
            z_i, z_f = z_i + p_i, z_f + p_f
        elif self.peephole == "hadamard":
            z_i, z_f = z_i + self.w_ci * c_cur, z_f + self.w_cf * c_cur
        if self.forget_bias:
            z_f = z_f + self.forget_bias
        c_next = torch.sigmoid(z_f) * c_cur + torch.sigmoid(z_i) * torch.tanh(z_g)
        if self.peephole == "conv":
            z_o = z_o + self.conv_cnext(c_next)
        elif self.peephole == "hadamard":
            z_o = z_o + self.w_co * c_next
        h_next = torch.sigmoid(z_o) * torch.tanh(c_next)
        return h_next, c_next

    def state_size(self, image_size: tuple[int, ...]) -> tuple[int, ...]:
        """The (H, W) of the state for inputs of size `image_size` (or the state's spatial size in
        any rank): the same unless the padding, stride or dilation of the input-to-state convolution
        change it."""
        return self.spec.state_size(tuple(image_size))

    def init_hidden(self, batch_size: int, image_size: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (h, c) of shape (batch_size, hidden_dim, *state_size(image_size)) on the weights'
        device and dtype."""
        weight = next(self.parameters())
        shape = (batch_size, self.hidden_dim, *self.state_size(image_size))
        return (
            torch.zeros(shape, device=weight.device, dtype=weight.dtype),
            torch.zeros(shape, device=weight.device, dtype=weight.dtype),
        )

    def _check_step(self, x: torch.Tensor, state) -> None:
        weights = next(self.parameters())
        _check_float("input_tensor", x, weights)
        if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.input_dim:
            raise ValueError(
                f"input_tensor must have shape (B, {self.input_dim}, {spatial_axes(self.spatial_dims)}), got "
                f"{tuple(x.shape)} (spatial_dims={self.spatial_dims})."
            )
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"cur_state must be a pair (h, c), got {type(state).__name__}.")
        check_frame(self.spec, tuple(x.shape[2:]))
        expected = (x.shape[0], self.hidden_dim, *self.state_size(x.shape[2:]))
        for name, s in zip(("h", "c"), state):
            _check_float(f"cur_state {name}", s, weights)
            if tuple(s.shape) != expected:
                raise ValueError(f"cur_state {name} must have shape {expected}, got {tuple(s.shape)}.")

    def extra_repr(self) -> str:
        extra = "" if self.input_kernel_size == self.kernel_size else f", input_kernel_size={self.input_kernel_size}"
        if not self.fused and self.input_dim:
            extra += f", padding={self.input_padding!r}, stride={self.stride}, dilation={self.dilation}"
        if self.spatial_dims != 2:
            extra += f", spatial_dims={self.spatial_dims}"
        if self.forget_bias:
            extra += f", forget_bias={self.forget_bias}"
        if self.layer_norm:
            extra += f", layer_norm=True, frame_size={self.frame_size}"
        return (
            f"input_dim={self.input_dim}, hidden_dim={self.hidden_dim}, kernel_size={self.kernel_size}, "
            f"bias={self.bias}, peephole={self.peephole!r}{extra}"
        )
