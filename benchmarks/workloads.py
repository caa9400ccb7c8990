"""The measured shapes: W1 (ndrplz-style) and Moving MNIST (the paper's), with tiny smoke variants."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Workload:
    """A ConvLSTM stack and its input, float32, batch-first, frames (H, W, C).

    Attributes:
      name: the key used in results ("w1", "mmnist").
      title: a one-line description for tables and plots.
      batch, steps, channels, height, width: the input's (B, T, C, H, W).
      hidden: hidden channels per layer.
      kernel: (kh, kw) of every convolution.
      peephole: the `peephole` variant (`None`, `"hadamard"` or `"conv"`).
      quick: whether this is a tiny smoke-test variant.
    """

    name: str
    title: str
    batch: int
    steps: int
    channels: int
    height: int
    width: int
    hidden: tuple[int, ...]
    kernel: tuple[int, int]
    peephole: str | None
    quick: bool = False

    @property
    def layers(self) -> list[tuple[int, int]]:
        """(input channels, hidden channels) of each layer."""
        inputs = (self.channels, *self.hidden[:-1])
        return list(zip(inputs, self.hidden))

    @property
    def input_shape(self) -> tuple[int, int, int, int, int]:
        """The channels-last input shape (B, T, H, W, C)."""
        return (self.batch, self.steps, self.height, self.width, self.channels)

    def forward_flops(self) -> int:
        """Multiply-adds x 2 of every convolution in one forward pass over the sequence.

        Per layer, the convolution over [X, H] to the four gates is
        2·B·T·H·W·kh·kw·(in + hid)·4·hid; `peephole="conv"` adds convolutions of C to two gates
        and of C' to one (hid -> 3·hid). Elementwise work (gates, Hadamard peepholes) is not counted.
        """
        kh, kw = self.kernel
        positions = self.batch * self.steps * self.height * self.width * kh * kw
        total = 0
        for cin, hid in self.layers:
            total += 2 * positions * (cin + hid) * 4 * hid
            if self.peephole == "conv":
                total += 2 * positions * hid * 3 * hid
        return total

    def model_kwargs(self) -> dict[str, Any]:
        """The hyperparameters shared by `convlstm_torch.ConvLSTM` and `convlstm_jax.ConvLSTM` (batch-first)."""
        return {
            "input_dim": self.channels,
            "hidden_dim": list(self.hidden),
            "kernel_size": self.kernel,
            "num_layers": len(self.hidden),
            "batch_first": True,
            "peephole": self.peephole,
        }

    def with_steps(self, steps: int) -> Workload:
        """The same workload over `steps` time steps."""
        return dataclasses.replace(self, steps=steps)

    def make_input(self, seed: int = 0) -> np.ndarray:
        """A standard-normal float32 input of `input_shape`, the same for every system."""
        return np.random.default_rng(seed).standard_normal(self.input_shape, dtype=np.float32)

    def config(self) -> dict:
        """The configuration as plain JSON values, with the forward FLOP count."""
        config = dataclasses.asdict(self)
        config["hidden"] = list(self.hidden)
        config["kernel"] = list(self.kernel)
        config["input_shape_bthwc"] = list(self.input_shape)
        config["forward_flop"] = self.forward_flops()
        return config


W1 = Workload(
    name="w1",
    title="W1: B=4, T=10, 1 channel 64x64, 2 layers of 32, 3x3, no peephole (ndrplz-style)",
    batch=4,
    steps=10,
    channels=1,
    height=64,
    width=64,
    hidden=(32, 32),
    kernel=(3, 3),
    peephole=None,
)

MMNIST = Workload(
    name="mmnist",
    title="Moving MNIST: B=16, T=20, 16 channels 16x16 (4x4 patches of 64x64), 128/64/64, 5x5, Hadamard peepholes",
    batch=16,
    steps=20,
    channels=16,
    height=16,
    width=16,
    hidden=(128, 64, 64),
    kernel=(5, 5),
    peephole="hadamard",
)

# Tiny variants with the same structure (layer count, kernel, peephole) for `--quick` smoke runs.
QUICK = {
    "w1": dataclasses.replace(
        W1,
        title="W1 (quick): B=1, T=3, 1 channel 8x8, 2 layers of 4, 3x3",
        batch=1,
        steps=3,
        height=8,
        width=8,
        hidden=(4, 4),
        quick=True,
    ),
    "mmnist": dataclasses.replace(
        MMNIST,
        title="Moving MNIST (quick): B=1, T=2, 2 channels 4x4, 8/4/4, 5x5, Hadamard",
        batch=1,
        steps=2,
        channels=2,
        height=4,
        width=4,
        hidden=(8, 4, 4),
        quick=True,
    ),
}

WORKLOADS = {"w1": W1, "mmnist": MMNIST}


def select(which: str, quick: bool) -> list[Workload]:
    """The workloads named by `--workload` ("w1", "mmnist" or "all"), quick variants if `quick`."""
    names = list(WORKLOADS) if which == "all" else [which]
    table = QUICK if quick else WORKLOADS
    return [table[name] for name in names]
