"""What every measured system provides, and the inputs they share for one workload."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .timing import Step
from .workloads import Workload


class Unavailable(Exception):
    """The system cannot be measured here (not installed, an option missing); the row says why."""


@dataclass
class Context:
    """The inputs shared by every system measured on one workload.

    Attributes:
      workload: the shapes.
      x: the input, (B, T, H, W, C) float32, the same for every system.
      torch_state_dict: the reference's weights (NumPy), or None without torch.
      jax_variables: the same weights converted with `convlstm_jax.torch_to_flax` (or freshly
        initialised without torch).
      torch_device: "cuda" or "cpu".
    """

    workload: Workload
    x: np.ndarray
    torch_state_dict: dict[str, np.ndarray] | None
    jax_variables: Any
    torch_device: str


@dataclass
class Bench:
    """A system built for one workload: its forward pass and its train step, and notes for the row."""

    forward: Step
    train: Step
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class System:
    """A measured implementation.

    Attributes:
      key: the name `--only` takes.
      label: the name in tables and plots.
      build: makes a `Bench` for a `Context`; raises `Unavailable` when it cannot.
      slow_train_on: JAX backends on which its train step is pathologically slow: measured with
        one call and no warm-up call (after compiling ahead of time), skipped by
        `--skip-slow-baselines`.
      warmup: untimed calls before the timed ones (torch.compile compiles in the first).
      backends: JAX backends on which it is measured when `--only` does not name it, or None for
        all (a row that equals another one there, or that only pays off on an accelerator, is left
        out elsewhere).
    """

    key: str
    label: str
    build: Callable[[Context], Bench]
    slow_train_on: tuple[str, ...] = ()
    warmup: int = 1
    backends: tuple[str, ...] | None = None

    def measured_on(self, backend: str) -> bool:
        """Whether the suite measures this system on JAX `backend` when `--only` does not name it."""
        return self.backends is None or backend in self.backends
