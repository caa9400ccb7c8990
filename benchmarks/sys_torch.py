"""The PyTorch reference, `convlstm_torch.ConvLSTM`, eager and under `torch.compile`."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .systems import Bench, Context
from .timing import Step
from .workloads import Workload


def torch_device() -> str:
    """ "cuda" when torch sees a GPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def reference_model(workload: Workload, device: str, seed: int = 0):
    """`convlstm_torch.ConvLSTM` for `workload` (batch-first), weights drawn by torch from `seed`."""
    import torch

    from convlstm_torch import ConvLSTM

    torch.manual_seed(seed)
    return ConvLSTM(**workload.model_kwargs()).to(device)


def reference_state_dict(workload: Workload, seed: int = 0) -> dict[str, np.ndarray]:
    """The reference's weights for `workload` as NumPy arrays (what every torch row loads)."""
    model = reference_model(workload, "cpu", seed)
    return {key: value.detach().numpy().copy() for key, value in model.state_dict().items()}


def loaded_model(ctx: Context):
    """The reference with the context's weights, on the context's device."""
    import torch

    model = reference_model(ctx.workload, ctx.torch_device)
    model.load_state_dict({key: torch.from_numpy(value) for key, value in ctx.torch_state_dict.items()})
    return model


def torch_input(ctx: Context):
    """The context's input as the reference takes it: (B, T, C, H, W) on the device."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(ctx.x.transpose(0, 1, 4, 2, 3))).to(ctx.torch_device)


def synchronizer(device: str) -> Callable[[], None]:
    """Waits for the device's queued work (`torch.cuda.synchronize`); nothing to wait for on CPU."""
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def torch_bench(forward_fn: Callable, loss_fn: Callable, model: Any, x: Any, device: str) -> Bench:
    """Forward under `torch.no_grad`; train step = zero_grad, loss, backward; each synchronised."""
    import torch

    sync = synchronizer(device)

    def forward() -> Any:
        with torch.no_grad():
            out = forward_fn(x)
        sync()
        return out

    def train() -> Any:
        model.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        sync()
        return loss

    return Bench(forward=Step(forward), train=Step(train))


def build_eager(ctx: Context) -> Bench:
    """The reference in eager mode."""
    model = loaded_model(ctx)

    def forward_fn(x: Any) -> Any:
        return model(x)[0][-1]

    def loss_fn(x: Any) -> Any:
        return model(x)[0][-1].square().mean()

    return torch_bench(forward_fn, loss_fn, model, torch_input(ctx), ctx.torch_device)


def build_eager_bf16(ctx: Context) -> Bench:
    """The reference in eager mode under `torch.autocast(dtype=torch.bfloat16)` (float32 parameters);
    the loss is taken in float32."""
    import torch

    model = loaded_model(ctx)

    def autocast() -> Any:
        return torch.autocast(device_type=ctx.torch_device, dtype=torch.bfloat16)

    def forward_fn(x: Any) -> Any:
        with autocast():
            return model(x)[0][-1]

    def loss_fn(x: Any) -> Any:
        with autocast():
            out = model(x)[0][-1]
        return out.float().square().mean()

    bench = torch_bench(forward_fn, loss_fn, model, torch_input(ctx), ctx.torch_device)
    bench.notes.append("torch.autocast bfloat16, float32 parameters")
    return bench


@contextmanager
def quiet_inductor() -> Iterator[None]:
    """Silences two warnings of torch's own: its inductor import's DeprecationWarning
    (`torch.jit.script_method`) and the note that disabling the caches disables dynamo's PGO."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script_method` is deprecated", category=DeprecationWarning
        )
        warnings.filterwarnings("ignore", message=r"dynamo_pgo force disabled", category=UserWarning)
        yield


def build_compiled(ctx: Context) -> Bench:
    """The reference under `torch.compile` (default mode): the forward, and the loss for the train step.

    Compilation happens in the first (warm-up) call of each; its time is kept as the warm-up time.
    Except in `--quick` runs, inductor's on-disk caches are disabled, so that time is a cold
    compilation in every run.
    """
    import torch

    torch._dynamo.reset()
    model = loaded_model(ctx)
    with quiet_inductor():
        import torch._inductor.config

        torch._inductor.config.force_disable_caches = not ctx.workload.quick
        forward_fn = torch.compile(lambda x: model(x)[0][-1])
        loss_fn = torch.compile(lambda x: model(x)[0][-1].square().mean())
    bench = torch_bench(forward_fn, loss_fn, model, torch_input(ctx), ctx.torch_device)
    bench.forward.run = _quietly(bench.forward.run)
    bench.train.run = _quietly(bench.train.run)
    return bench


def _quietly(run: Callable[[], Any]) -> Callable[[], Any]:
    def wrapped() -> Any:
        with quiet_inductor():
            return run()

    return wrapped
