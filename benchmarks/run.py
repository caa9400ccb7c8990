"""The benchmark suite, one command: `python -m benchmarks.run [--workload all] [--quick] ...`.

Measures, side by side in one process and on the same input, the forward pass and the train step
(forward + backward of the mean square of the last layer's outputs) of:

- `port`: `convlstm_jax.ConvLSTM` in its default configuration, channels-last (`conv_gradient="auto"`),
  compiled with `convlstm_jax.compiler_options()` (on CPU: Eigen's convolutions, not YNNPACK's);
- `port-defaults` (CPU): the same compiled with XLA's default options;
- `port-xla` (CPU): the same with `conv_gradient="xla"` (plain autodiff; what "auto" is elsewhere);
- `port-tapwise` (GPU, TPU): the same with `conv_gradient="tapwise"` (what "auto" is on CPU);
- `port-bf16` (GPU, TPU): the port computing in bfloat16 with float32 parameters;
- `torch`: the reference `convlstm_torch.ConvLSTM`, eager, with the same weights;
- `torch-bf16` (GPU): the reference under `torch.autocast(dtype=torch.bfloat16)`;
- `torch-compile`: the reference under `torch.compile`;
- `flax`: Flax's `nn.RNN(nn.ConvLSTMCell)`, one per layer;
- `keras`: Keras 3 `ConvLSTM2D` on the JAX backend (if installed).

Rows marked with backends are measured there unless `--only` names them (elsewhere they equal
another row or do not pay off).

Every figure is the best of `--repeats` calls after one warm-up call; JAX functions are compiled
ahead of time and every call is synchronised (`jax.block_until_ready`, `torch.cuda.synchronize`).
Train steps that are pathologically slow on XLA:CPU (`port-xla`, `flax`, `keras`) get one call
and no warm-up there, and `--skip-slow-baselines` skips them. For the port alone it also compiles
(never runs) the train step at several sequence lengths, for compile time (best of `--repeats`,
at most 3, compilations) and memory against T.

Prints a table per workload and writes `<out>/<name>.json` and `<out>/<name>.png`; the JSON is
written after each workload too (marked incomplete), so a run stopped half-way keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import report
from .machine import cpu_times, describe_machine, describe_source, steal_fraction
from .scaling import port_scaling
from .sys_jax import build_flax, build_port, port_apply, port_model
from .sys_keras import build_keras
from .sys_torch import (
    build_compiled,
    build_eager,
    build_eager_bf16,
    loaded_model,
    reference_state_dict,
    torch_device,
    torch_input,
)
from .systems import Context, System, Unavailable
from .timing import matmul_peak, measure
from .workloads import QUICK, W1, Workload, select

ACCELERATORS = ("gpu", "tpu")
SYSTEMS = (
    System("port", "convlstm_jax (auto)", lambda ctx: build_port(ctx, "auto")),
    System(
        "port-defaults",
        "convlstm_jax (auto, XLA defaults)",
        lambda ctx: build_port(ctx, "auto", xla_defaults=True),
        backends=("cpu",),
    ),
    System(
        "port-xla", "convlstm_jax (xla)", lambda ctx: build_port(ctx, "xla"), slow_train_on=("cpu",), backends=("cpu",)
    ),
    System("port-tapwise", "convlstm_jax (tapwise)", lambda ctx: build_port(ctx, "tapwise"), backends=ACCELERATORS),
    System(
        "port-bf16",
        "convlstm_jax (auto, bf16)",
        lambda ctx: build_port(ctx, "auto", dtype="bfloat16"),
        backends=ACCELERATORS,
    ),
    System("torch", "convlstm_torch eager", build_eager),
    System("torch-bf16", "convlstm_torch eager (bf16)", build_eager_bf16, backends=("gpu",)),
    System("torch-compile", "convlstm_torch torch.compile", build_compiled),
    System("flax", "flax nn.RNN(ConvLSTMCell)", build_flax, slow_train_on=("cpu",)),
    System("keras", "keras ConvLSTM2D (jax)", build_keras, slow_train_on=("cpu",)),
)
REFERENCE = "torch"
SPEED_PRECISION = "default"  # JAX float32 matmul/conv precision of every timed call
PARITY_PRECISION = "highest"  # ... and of the port's output compared with the reference's
COMPILE_STEPS, MEMORY_STEPS = (10, 50, 200), (10, 50, 100)
QUICK_COMPILE_STEPS, QUICK_MEMORY_STEPS = (2, 8), (2, 8)
SCALING_REPEATS = 3  # compilations per T at most, whatever --repeats
MATMUL_N = {"cpu": 2048, "accelerator": 8192}  # the peak's square matmul: big enough to fill the device
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("--workload", choices=("w1", "mmnist", "all"), default="all", help="default: all")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 repeat: a smoke run")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="where the JSON and PNG go (default: %(default)s)"
    )
    parser.add_argument("--name", help="file name stem (default: the JAX backend, '-quick' added for --quick)")
    parser.add_argument(
        "--only",
        metavar="SYSTEM[,SYSTEM]",
        help=f"measure only these systems, from {', '.join(s.key for s in SYSTEMS)}",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up; the best counts")
    parser.add_argument(
        "--skip-slow-baselines",
        nargs="?",
        const="all",
        metavar="WORKLOAD[,WORKLOAD]",
        help="skip the train steps that are pathologically slow on XLA:CPU (port-xla, flax, keras), "
        "on every workload or on those named; no effect on other backends",
    )
    args = parser.parse_args(argv)
    keys = [s.key for s in SYSTEMS]
    args.systems = None if args.only is None else [k.strip() for k in args.only.split(",") if k.strip()]
    if args.systems is not None and (not args.systems or any(k not in keys for k in args.systems)):
        parser.error(f"--only takes systems from {', '.join(keys)}; got {args.only!r}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    skip = args.skip_slow_baselines
    args.skip_slow = set() if skip is None else {"w1", "mmnist"} if skip == "all" else set(skip.split(","))
    if not args.skip_slow <= {"w1", "mmnist"}:
        parser.error(f"--skip-slow-baselines takes all, w1 or mmnist; got {skip!r}")
    if args.quick:
        args.repeats = 1
    return args


def make_context(workload: Workload) -> Context:
    """The input and the reference's weights, converted for the port (fresh ones without torch)."""
    from convlstm_jax import torch_to_flax

    x = workload.make_input()
    try:
        state_dict = reference_state_dict(workload)
        device = torch_device()
    except ImportError:
        state_dict, device = None, "cpu"
    if state_dict is not None:
        variables = jax.tree.map(jnp.asarray, torch_to_flax(state_dict))
    else:
        model = port_model(workload)
        variables = model.init(jax.random.key(0), jnp.asarray(x[:1, :1]))
    return Context(workload, x, state_dict, variables, device)


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _failure(error: BaseException) -> dict:
    traceback.print_exception(error, file=sys.stderr)
    reason = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    return {"status": "failed", "reason": reason[:300]}


def measure_system(system: System, ctx: Context, args: argparse.Namespace, backend: str) -> dict:
    """One row: the system's forward and train-step timings, or why either is missing."""
    row: dict[str, Any] = {"system": system.key, "label": system.label, "notes": []}
    start, load_before = time.perf_counter(), _load()
    try:
        return _measure_row(row, system, ctx, args, backend)
    finally:
        row["wall_s"] = time.perf_counter() - start
        row["load_average_1min_before_after"] = [load_before, _load()]  # other work on the machine shows here
        print(f"  {system.label:30} {'':8} {row['wall_s']:>10.1f} s in all", flush=True)


def _measure_row(row: dict, system: System, ctx: Context, args: argparse.Namespace, backend: str) -> dict:
    try:
        bench = system.build(ctx)
    except Unavailable as error:
        row["forward"] = row["train"] = {"status": "n/a", "reason": str(error)}
        return row
    except Exception as error:
        row["forward"] = row["train"] = _failure(error)
        return row
    row["notes"] = bench.notes
    slow = backend in system.slow_train_on
    for phase in ("forward", "train"):
        if phase == "train" and slow and ctx.workload.name in args.skip_slow:
            row[phase] = {"status": "skipped", "reason": f"slow on XLA:{backend.upper()}, --skip-slow-baselines"}
            continue
        repeats, warmup = (1, 0) if phase == "train" and slow else (args.repeats, system.warmup)
        try:
            timing = measure(getattr(bench, phase), repeats, warmup)
        except Exception as error:
            row[phase] = _failure(error)
            continue
        row[phase] = {"status": "ok", **timing.as_dict()}
        print(f"  {system.label:30} {phase:8} {report.fmt_ms(timing.best_ms):>10} ms", flush=True)
    return row


def derive(rows: list[dict], flop: int, peak_gflops: float) -> None:
    """Adds GFLOP/s, the fraction of the matmul peak and the speed-ups over the reference to `rows`."""
    reference = next((r for r in rows if r["system"] == REFERENCE), None)
    for row in rows:
        fwd_ms, train_ms = row["forward"].get("best_ms"), row["train"].get("best_ms")
        gflops = flop / (fwd_ms * 1e6) if fwd_ms else None
        row["forward_gflops"] = gflops
        row["forward_peak_fraction"] = gflops / peak_gflops if gflops else None
        for phase, ms in (("forward", fwd_ms), ("train", train_ms)):
            ref_ms = reference[phase].get("best_ms") if reference else None
            row[f"{phase}_speedup_vs_torch_eager"] = ref_ms / ms if ref_ms and ms else None


def parity(ctx: Context) -> dict:
    """The port's output (at `PARITY_PRECISION`) against the reference's, float32, same weights and input."""
    import torch

    with jax.default_matmul_precision(PARITY_PRECISION):
        model = port_model(ctx.workload, conv_gradient="auto")
        ours = np.asarray(jax.jit(port_apply(model))(ctx.jax_variables, jnp.asarray(ctx.x)))
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            theirs = loaded_model(ctx)(torch_input(ctx))[0][-1].cpu().numpy().transpose(0, 1, 3, 4, 2)
    finally:
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
    result = {
        "jax_precision": PARITY_PRECISION,
        "torch_tf32": False,
        "max_abs_diff": float(np.max(np.abs(ours - theirs))),
        "max_abs_reference": float(np.max(np.abs(theirs))),
    }
    try:
        from convlstm_common.tolerance import tolerance_for
    except ImportError:
        return result
    result["float32_tolerance_score"] = tolerance_for("float32").score(ours, theirs)
    return result


def measure_workload(workload: Workload, systems: list[System], args: argparse.Namespace) -> dict:
    backend = jax.default_backend()
    print(f"\n{workload.title}: forward {workload.forward_flops() / 1e9:.3g} GFLOP", flush=True)
    ctx = make_context(workload)
    rows = [measure_system(system, ctx, args, backend) for system in systems]
    result = {"config": workload.config(), "rows": rows, "parity": None}
    keys = {s.key for s in systems}
    if {"port", REFERENCE} <= keys and ctx.torch_state_dict is not None:
        try:
            result["parity"] = parity(ctx)
        except Exception as error:
            result["parity"] = _failure(error)
    return result


def precision_settings() -> dict:
    """The float32 precision of the timed calls and of the parity check, JAX's and torch's."""
    settings: dict[str, Any] = {
        "jax_speed": SPEED_PRECISION,
        "jax_parity": PARITY_PRECISION,
        "jax_process_default_matmul_precision": jax.config.jax_default_matmul_precision,
    }
    try:
        import torch
    except ImportError:
        return settings
    settings["torch_float32_matmul_precision"] = torch.get_float32_matmul_precision()
    settings["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
    settings["torch_cuda_matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return settings


def print_results(results: dict) -> None:
    peak = results["matmul_peak"]
    print(
        f"\n{results['name']}: {results['machine']['device']}, JAX {SPEED_PRECISION} precision; "
        f"matmul peak {peak['gflops']:.1f} GFLOP/s (jit float32 {peak['n']}^3, best of start and end of run)"
    )
    print("ms: best of repeats; 'vs torch': speed-up over convlstm_torch eager (>1 is faster)")
    for workload in results["workloads"].values():
        print(f"\n{workload['config']['title']}  ({workload['config']['forward_flop'] / 1e9:.3g} GFLOP forward)")
        print(report.format_table(workload["rows"]))
        check = workload["parity"]
        if check and "max_abs_diff" in check:
            print(
                f"parity (JAX {check['jax_precision']} vs torch eager, float32 outputs): "
                f"max |diff| {check['max_abs_diff']:.2e} (max |output| {check['max_abs_reference']:.2f})"
            )
    if results["port_scaling"]:
        print()
        print(report.format_scaling(results["port_scaling"]))
    machine = results["machine"]
    loads = machine["load_average_1_5_15"], machine["load_average_1_5_15_at_end"]
    if all(loads):
        print(
            f"\nload average (1 min) at start {loads[0][0]:.2f}, at end {loads[1][0]:.2f}; {machine['cpu_count']} CPUs"
        )
    print(f"wrote {results['files']['json']} and {results['files']['png']}  ({results['wall_s']:.0f} s)")


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that ran `python -m module`: the process's own, or `argv` given to `main`."""
    return shlex.join(sys.orig_argv if argv is None else [sys.executable, "-m", module, *argv])


def main(argv: list[str] | None = None) -> int:
    """Runs the suite; returns 1 if the port itself failed anywhere, else 0."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX and torch share one GPU
    command = command_line("benchmarks.run", argv)
    args = parse_args(argv)
    started, start, cpu_start = datetime.now(timezone.utc), time.perf_counter(), cpu_times()
    backend = jax.default_backend()
    name = args.name or (f"{backend}-quick" if args.quick else backend)
    if args.systems is None:
        args.systems = [s.key for s in SYSTEMS if s.measured_on(backend)]
    systems = [s for s in SYSTEMS if s.key in args.systems]
    machine, source = describe_machine(), describe_source()
    machine["device"] = machine["cpu_model"] if backend == "cpu" else machine["jax_device_kind"]
    print(f"{name}: {len(systems)} systems on {machine['device']} ({os.cpu_count()} CPUs)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(args.out / f"{name}.json"), "png": str(args.out / f"{name}.png")}
    workloads: dict[str, dict] = {}
    results = {
        "name": name,
        "command": command,
        "argv": sys.argv[1:] if argv is None else list(argv),
        "started_utc": started.isoformat(timespec="seconds"),
        "complete": False,
        "wall_s": None,
        "machine": machine,
        "source": source,
        "settings": {
            "quick": args.quick,
            "repeats": args.repeats,
            "warmup_calls": 1,
            "slow_train_steps": "one call, no warm-up, after compiling ahead of time; on XLA:CPU only",
            "skip_slow_baselines": sorted(args.skip_slow),
            "systems": args.systems,
            "precision": precision_settings(),
            "loss": "mean of squares (in float32) of the last layer's outputs at every step",
        },
        "matmul_peak": None,
        "workloads": workloads,
        "port_scaling": None,
        "files": files,
    }

    def finish_peak(peaks: list[dict]) -> None:
        peak = max(peaks, key=lambda p: p["gflops"])
        results["matmul_peak"] = {**peak, "start": peaks[0], "end": peaks[-1]}
        for workload in workloads.values():
            derive(workload["rows"], workload["config"]["forward_flop"], peak["gflops"])
        results["wall_s"] = time.perf_counter() - start

    n = MATMUL_N.get(backend, MATMUL_N["accelerator"])
    with jax.default_matmul_precision(SPEED_PRECISION):
        peaks = [matmul_peak(args.repeats, n)]
        for workload in select(args.workload, args.quick):
            workloads[workload.name] = measure_workload(workload, systems, args)
            finish_peak(peaks)
            report.write_json(results, Path(files["json"]))  # incomplete: kept if the run stops later
        if "port" in args.systems:
            base = QUICK["w1"] if args.quick else W1
            print(f"\nconvlstm_jax train step: compile time and memory against T ({base.name} shapes)", flush=True)
            try:
                variables = make_context(base.with_steps(1)).jax_variables
                steps = (QUICK_COMPILE_STEPS, QUICK_MEMORY_STEPS) if args.quick else (COMPILE_STEPS, MEMORY_STEPS)
                repeats = min(args.repeats, SCALING_REPEATS)
                results["port_scaling"] = port_scaling(base, variables, *steps, repeats=repeats)
            except Exception as error:
                _failure(error)
        peaks.append(matmul_peak(args.repeats, n))
    finish_peak(peaks)
    results["complete"] = True
    machine["cpu_steal_fraction_during_run"] = steal_fraction(cpu_start, cpu_times())
    machine["load_average_1_5_15_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if describe_source() != source:
        source["changed_during_run"] = describe_source()
    report.write_plot(results, Path(files["png"]))
    report.write_json(results, Path(files["json"]))
    print_results(results)
    port_failed = any(
        row[phase]["status"] == "failed"
        for workload in workloads.values()
        for row in workload["rows"]
        if row["system"] == "port"
        for phase in ("forward", "train")
    )
    return 1 if port_failed else 0


if __name__ == "__main__":
    sys.exit(main())
