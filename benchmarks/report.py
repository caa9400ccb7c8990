"""The results as a fixed-width table, a JSON file and a PNG plot."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

COLUMNS = (
    ("system", 30, "<"),
    ("fwd ms", 10, ">"),
    ("fwd GFLOP/s", 11, ">"),
    ("fwd/peak", 8, ">"),
    ("train ms", 10, ">"),
    ("train vs torch", 14, ">"),
    ("fwd vs torch", 12, ">"),
    ("notes", 0, "<"),
)


def fmt_ms(value: float | None) -> str:
    """3 significant figures for small values, whole milliseconds from 100 up."""
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def _phase_note(name: str, phase: dict, first_call: bool) -> str | None:
    if phase["status"] != "ok":
        return f"{name} {phase['status']}: {phase['reason']}"
    if phase["repeats"] == 1 and phase["warmup_calls"] == 0:
        return f"{name}: 1 call, no warm-up"
    if first_call and phase["warmup_ms"]:
        return f"{name} first call {phase['warmup_ms'][0] / 1e3:.0f} s"
    return None


def row_cells(row: dict) -> list[str]:
    """One table row: the figures of `row`, n/a where a phase was not measured, and its notes."""
    notes = list(row["notes"])
    fwd, train = row["forward"], row["train"]
    if fwd["status"] != "ok" and fwd == train:
        notes.append(f"{fwd['status']}: {fwd['reason']}")
    else:
        first_call = row["system"] == "torch-compile"  # the warm-up call compiles
        notes += [
            note for note in (_phase_note("fwd", fwd, first_call), _phase_note("train", train, first_call)) if note
        ]
    return [
        row["label"],
        fmt_ms(fwd.get("best_ms")),
        _fmt(row.get("forward_gflops"), ".1f"),
        _fmt(row.get("forward_peak_fraction"), ".2f"),
        fmt_ms(train.get("best_ms")),
        _fmt(row.get("train_speedup_vs_torch_eager"), ".2f", "x"),
        _fmt(row.get("forward_speedup_vs_torch_eager"), ".2f", "x"),
        "; ".join(notes),
    ]


def format_table(rows: list[dict]) -> str:
    """A fixed-width table of `rows` with a header line."""

    def line(cells: list[str]) -> str:
        parts = [f"{cell:{align}{width}}" if width else cell for cell, (_, width, align) in zip(cells, COLUMNS)]
        return "  ".join(parts).rstrip()

    header = line([name for name, _, _ in COLUMNS])
    return "\n".join([header, "-" * len(header), *(line(row_cells(row)) for row in rows)])


def format_scaling(scaling: dict) -> str:
    """The compile-time and memory figures of the port's train step against T."""
    compile_s = scaling["compile_s"]
    ratio = scaling["compile_ratio"]
    lines = [
        f"convlstm_jax train step on {scaling['workload']} shapes, conv_gradient={scaling['conv_gradient']}:",
        f"  {'compile s, best of ' + str(len(next(iter(scaling['compile_s_all'].values())))):22}"
        + "  ".join(f"T={t}: {s:.2f}" for t, s in compile_s.items())
        + f"   (T={ratio['numerator_T']} / T={ratio['denominator_T']}: {ratio['ratio']:.2f})",
    ]
    for key, label in (("without_remat", "peak MB, remat=False"), ("with_remat", "peak MB, remat=True")):
        cells = []
        for t, stats in scaling["memory"][key].items():
            cells.append(f"T={t}: {'n/a' if stats is None else format(stats['peak_bytes'] / 1e6, '.1f')}")
        lines.append(f"  {label:22}" + "  ".join(cells))
    memory_ratio = scaling["memory_ratio"]
    value = memory_ratio["without_over_with_remat"]
    lines.append(
        f"  peak without / with remat at T={memory_ratio['T']}: {'n/a' if value is None else f'{value:.2f}'}"
        "   (peak = temp + argument + output bytes of the compiled executable)"
    )
    return "\n".join(lines)


def write_json(results: dict, path: Path) -> None:
    """Writes `results` as indented JSON (non-finite numbers as null)."""

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    path.write_text(json.dumps(clean(results), indent=2) + "\n")


def write_plot(results: dict, path: Path) -> None:
    """Bars of forward and train-step ms per system per workload (log scale); compile s and MB against T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(results["workloads"].values())
    scaling = results.get("port_scaling")
    columns = max(len(workloads), 2 if scaling else 1)
    rows = 2 if scaling else 1
    fig, grid = plt.subplots(rows, columns, figsize=(7 * columns, 5.5 * rows), squeeze=False)
    for ax in grid.flat:
        ax.set_visible(False)
    axes = list(grid[0][: len(workloads)]) + (list(grid[1][:2]) if scaling else [])
    for ax in axes:
        ax.set_visible(True)
    for ax, workload in zip(axes, workloads):
        rows = workload["rows"]
        positions = range(len(rows))
        for offset, (phase, color) in zip((-0.2, 0.2), (("forward", "tab:blue"), ("train", "tab:orange"))):
            values = [row[phase].get("best_ms") for row in rows]
            xs = [p + offset for p, v in zip(positions, values) if v is not None]
            ax.bar(xs, [v for v in values if v is not None], width=0.4, color=color, label=f"{phase} ms")
            for p, v in zip(positions, values):
                if v is None:
                    ax.annotate("n/a", (p + offset, 0), xycoords=("data", "axes fraction"), ha="center", va="bottom")
        ax.set_yscale("log")
        shown = [row[p]["best_ms"] for row in rows for p in ("forward", "train") if row[p].get("best_ms")]
        if shown:  # bars start at a power of ten, so their heights compare
            ax.set_ylim(bottom=10 ** math.floor(math.log10(min(shown))))
        ax.set_xticks(list(positions), [row["label"] for row in rows], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("ms (best of repeats, log scale)")
        ax.set_title("\n".join(textwrap.wrap(workload["config"]["title"], 80)), fontsize=9)
        ax.legend(fontsize=8)
    if scaling:
        ax = axes[len(workloads)]
        steps = [int(t) for t in scaling["compile_s"]]
        ax.plot(steps, list(scaling["compile_s"].values()), marker="o")
        ax.set_xlabel("T (time steps)")
        ax.set_ylabel("train-step compile time (s)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"convlstm_jax compile time vs T ({scaling['workload']} shapes)", fontsize=9)
        ax = axes[len(workloads) + 1]
        for key, label in (("without_remat", "remat=False"), ("with_remat", "remat=True")):
            points = [(int(t), s["peak_bytes"] / 1e6) for t, s in scaling["memory"][key].items() if s]
            if points:
                ax.plot(*zip(*points), marker="o", label=label)
        ax.set_xlabel("T (time steps)")
        ax.set_ylabel("compiled train-step peak (MB)")
        ax.set_ylim(bottom=0)
        ax.set_title("convlstm_jax train-step memory vs T", fontsize=9)
        ax.legend(fontsize=8)
    machine = results["machine"]
    versions = machine["versions"]
    fig.suptitle(
        f"{results['name']}: {machine['device']}, {machine['cpu_count']} CPUs; "
        f"JAX {versions['jax']}, torch {versions['torch']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
