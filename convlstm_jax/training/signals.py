"""Stopping a run between steps on SIGINT, SIGTERM or a preemption notice: `TrainingInterrupted`."""

from __future__ import annotations

import pathlib
import signal
import threading
from typing import Any

import jax


class TrainingInterrupted(Exception):
    """`train` stopped on SIGINT or SIGTERM (or a preemption notice) after checkpointing its last step.

    Attributes:
      signal: the signal that stopped it (`signal.SIGTERM` for a preemption notice).
      step: the last step completed, the checkpoint's.
      checkpoint: the checkpoint's folder.
    """

    def __init__(self, signum: signal.Signals, step: int, checkpoint: pathlib.Path) -> None:
        super().__init__(f"stopped by {signum.name} after step {step}; checkpoint in {checkpoint}")
        self.signal, self.step, self.checkpoint = signum, step, checkpoint


class _StopSignals:
    """Turns SIGINT and SIGTERM into a request to stop between steps (a context manager).

    The handlers only record the signal and put the previous handlers back: the training loop asks
    `requested` between steps, checkpoints and stops, and a second signal acts as it would without
    them (Ctrl-C raises `KeyboardInterrupt` at once, SIGTERM ends the process). They are installed
    only in the main thread of a single-process run, and not for a signal the process ignores. In a
    run of several processes
    (`jax.distributed`), SIGTERM is JAX's preemption notice, which `requested` reads through
    `CheckpointManager.reached_preemption`: every process then stops at the same step.

    Attributes:
      received: the signal that asked to stop, or None.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread() and jax.process_count() == 1:
            for signum in self.SIGNALS:
                # None: a handler Python did not install; SIG_IGN: the signal is to be ignored (as a
                # shell has background jobs ignore SIGINT).
                if signal.getsignal(signum) not in (None, signal.SIG_IGN):
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._restore()

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum)
        self._restore()

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def requested(self, manager: Any, step: int) -> bool:
        """Whether to stop before the step after `step` (SIGTERM stands for a preemption notice)."""
        if self.received is None and manager.reached_preemption(step):
            self.received = signal.SIGTERM
        return self.received is not None
