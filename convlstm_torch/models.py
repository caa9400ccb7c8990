"""Models built from ConvLSTM stacks: the encoder-forecaster of Shi et al. 2015 (Sec. 3.2, Fig. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convlstm_common import check_peephole, parse_network, resolve_encoder_forecaster

from ._cell import _check_float
from ._convlstm import ConvLSTM


class EncoderForecaster(nn.Module):
    """The encoding-forecasting network of Shi et al. 2015 (Sec. 3.2, Fig. 3), on (B, T, C, H, W).

    Frames are cut into p x p patches (`pixel_unshuffle`: (B, T, C·p·p, H/p, W/p)); an encoder of
    stacked ConvLSTM layers reads them; a forecaster of the same shape starts from the encoder's
    final states, layer by layer, and runs `output_frames` steps without input (its first layer has
    no input-to-state convolution); every forecaster layer's hidden state is concatenated along
    channels and a 1x1 convolution with bias maps it to C·p·p channels, folded back into frames.

    `forward` returns logits: `torch.sigmoid(logits)` are the predicted frames in [0, 1], and the
    paper's loss is `F.binary_cross_entropy_with_logits(logits, targets)` summed per sequence.
    `convlstm_jax.models.EncoderForecaster` is the same model (on channels-last frames);
    `convlstm_jax.models.torch_to_flax_encoder_forecaster` converts the weights.

    Args:
      hidden_dim: hidden channels of each layer.
      kernel_size: each layer's state-to-state kernel.
      input_kernel_size: the kernel of every input-to-state convolution.
      in_channels: channels of a frame.
      patch_size: p; H and W must be multiples of it.
      output_frames: how many frames the forecaster predicts.
      peephole: `"hadamard"` (the paper, default), `"conv"` or `None`.
      bias: whether the ConvLSTM convolutions have biases.

    Example:
      >>> import torch
      >>> from convlstm_torch.models import EncoderForecaster
      >>> model = EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-8", output_frames=2)
      >>> tuple(model(torch.zeros(2, 3, 1, 16, 16)).shape)
      (2, 2, 1, 16, 16)
    """

    def __init__(
        self,
        hidden_dim,
        kernel_size,
        input_kernel_size,
        in_channels: int = 1,
        patch_size: int = 4,
        output_frames: int = 10,
        *,
        peephole="hadamard",
        bias: bool = True,
    ):
        super().__init__()
        net = resolve_encoder_forecaster(
            hidden_dim, kernel_size, input_kernel_size, in_channels, patch_size, output_frames
        )
        self.network = net
        self.hidden_dim, self.kernel_size = list(net.hidden_dim), list(net.kernel_size)
        self.input_kernel_size = net.input_kernel_size
        self.in_channels, self.patch_size, self.output_frames = in_channels, patch_size, output_frames
        self.peephole = check_peephole(peephole)
        depth = in_channels * patch_size**2

        def stack(input_dim: int) -> ConvLSTM:
            return ConvLSTM(
                input_dim,
                self.hidden_dim,
                self.kernel_size,
                len(self.hidden_dim),
                True,
                bias,
                True,
                peephole=peephole,
                input_kernel_size=self.input_kernel_size,
            )

        self.encoder = stack(depth)
        self.forecaster = stack(0)
        self.output = nn.Conv2d(sum(self.hidden_dim), depth, 1)

    @classmethod
    def from_spec(
        cls, spec: str, *, in_channels: int = 1, patch_size: int = 4, output_frames: int = 10, **kwargs
    ) -> EncoderForecaster:
        """Builds the model from the paper's notation, such as "ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64"."""
        net = parse_network(spec)
        return cls(
            list(net.hidden_dim),
            list(net.kernel_size),
            net.input_kernel_size,
            in_channels,
            patch_size,
            output_frames,
            **kwargs,
        )

    @property
    def spec(self) -> str:
        """The model in the paper's notation."""
        return str(self.network)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Predicts the next `output_frames` frames.

        Args:
          frames: (B, T, C, H, W), H and W multiples of `patch_size`.

        Returns:
          logits of the predicted frames, (B, output_frames, C, H, W).
        """
        self._check_frames(frames)
        b, t, c, height, width = frames.shape
        p = self.patch_size
        patches = F.pixel_unshuffle(frames.reshape(b * t, c, height, width), p)
        patches = patches.reshape(b, t, c * p * p, height // p, width // p)
        _, states = self.encoder(patches)
        no_input = patches.new_zeros(b, self.output_frames, 0, height // p, width // p)
        outputs, _ = self.forecaster(no_input, states)
        hidden = torch.cat(outputs, dim=2).flatten(0, 1)
        logits = F.pixel_shuffle(self.output(hidden), p)
        return logits.reshape(b, self.output_frames, c, height, width)

    def _check_frames(self, frames: torch.Tensor) -> None:
        _check_float("frames", frames)
        p, c = self.patch_size, self.in_channels
        if frames.dim() != 5 or frames.shape[2] != c or 0 in frames.shape:
            raise ValueError(f"frames must have shape (B, T, {c}, H, W), got {tuple(frames.shape)}.")
        height, width = frames.shape[3:]
        if height % p or width % p:
            raise ValueError(
                f"frames of {height}x{width} do not cut into {p}x{p} patches (patch_size={p}): "
                f"H and W must be multiples of {p}."
            )
