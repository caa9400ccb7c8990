"""A smoke run of the benchmark suite: tiny shapes, one repeat; checks the files, never the timings."""

import json

import pytest

from benchmarks import run, unroll

ROW_KEYS = {"system", "label", "notes", "forward", "train", "forward_gflops", "forward_peak_fraction"}
ROW_KEYS |= {"forward_speedup_vs_torch_eager", "train_speedup_vs_torch_eager", "wall_s"}


@pytest.mark.slow
def test_quick_run_writes_json_and_png(tmp_path):
    assert run.main(["--quick", "--out", str(tmp_path), "--skip-slow-baselines"]) == 0

    (json_path,) = tmp_path.glob("*.json")
    (png_path,) = tmp_path.glob("*.png")
    assert png_path.stem == json_path.stem
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads(json_path.read_text())

    expected = {"name", "command", "argv", "machine", "source", "settings", "matmul_peak", "workloads"}
    assert expected | {"port_scaling", "wall_s"} <= set(results)
    assert results["complete"] is True
    assert results["argv"] == ["--quick", "--out", str(tmp_path), "--skip-slow-baselines"]
    assert "benchmarks.run" in results["command"]
    machine = results["machine"]
    assert {"platform", "cpu_count", "versions", "jax_devices"} <= set(machine)
    assert {"jax", "jaxlib", "flax", "torch"} <= set(machine["versions"])
    assert results["settings"]["precision"]["jax_speed"] == "default"
    assert results["matmul_peak"]["gflops"] > 0

    assert set(results["workloads"]) == {"w1", "mmnist"}
    for workload in results["workloads"].values():
        assert workload["config"]["quick"] is True
        assert workload["config"]["forward_flop"] > 0
        rows = {row["system"]: row for row in workload["rows"]}
        backend = machine["jax_backend"]
        assert set(rows) == {s.key for s in run.SYSTEMS if s.measured_on(backend)}
        for row in rows.values():
            assert ROW_KEYS <= set(row)
            for phase in ("forward", "train"):
                assert row[phase]["status"] in {"ok", "skipped", "n/a", "failed"}
                assert row[phase]["status"] == "ok" or row[phase]["reason"]
        for key in ("port", "torch"):  # the port and its reference always run
            assert rows[key]["forward"]["status"] == rows[key]["train"]["status"] == "ok"
        assert rows["torch"]["train_speedup_vs_torch_eager"] == pytest.approx(1.0)
        for key in ("port-xla", "flax", "keras"):  # slow baselines: skipped on CPU, measured elsewhere
            if key in rows:
                expected_status = "skipped" if backend == "cpu" else "ok"
                assert rows[key]["train"]["status"] in {expected_status, "n/a"}
        assert workload["parity"]["max_abs_diff"] < 1e-4

    scaling = results["port_scaling"]
    assert set(scaling["compile_s"]) == {str(t) for t in run.QUICK_COMPILE_STEPS}
    assert scaling["compile_ratio"]["ratio"] > 0
    for key in ("without_remat", "with_remat"):
        assert set(scaling["memory"][key]) == {str(t) for t in run.QUICK_MEMORY_STEPS}
    assert "without_over_with_remat" in scaling["memory_ratio"]


def test_arguments_are_checked():
    with pytest.raises(SystemExit):
        run.parse_args(["--only", "nonesuch"])
    with pytest.raises(SystemExit):
        run.parse_args(["--skip-slow-baselines", "w2"])
    args = run.parse_args(["--only", "port,torch", "--skip-slow-baselines", "mmnist", "--quick"])
    assert args.systems == ["port", "torch"]
    assert args.skip_slow == {"mmnist"}
    assert args.repeats == 1
    assert run.parse_args(["--skip-slow-baselines"]).skip_slow == {"w1", "mmnist"}


@pytest.mark.slow
def test_accelerator_rows_run_when_named(tmp_path):
    systems = ["port-tapwise", "port-bf16", "torch-bf16"]  # measured by default on GPU/TPU only
    argv = ["--quick", "--workload", "w1", "--only", ",".join(systems), "--out", str(tmp_path), "--name", "rows"]
    assert run.main(argv) == 0

    results = json.loads((tmp_path / "rows.json").read_text())
    assert results["complete"] is True and results["port_scaling"] is None  # scaling runs with "port" only
    rows = {row["system"]: row for row in results["workloads"]["w1"]["rows"]}
    assert list(rows) == systems
    for row in rows.values():
        assert row["forward"]["status"] == row["train"]["status"] == "ok", row
    assert any("bfloat16" in note for note in rows["port-bf16"]["notes"])


@pytest.mark.slow
def test_unroll_benchmark_writes_json(tmp_path):
    assert unroll.main(["--quick", "--workload", "w1", "--values", "1,3", "--out", str(tmp_path)]) == 0

    (path,) = tmp_path.glob("unroll-*.json")
    results = json.loads(path.read_text())
    assert results["unroll_none_resolves_to"] == (5 if results["backend"] == "gpu" else 1)
    rows = results["workloads"]["w1"]["rows"]
    assert [row["unroll"] for row in rows] == [1, 3]
    for row in rows:
        assert row["forward_best_ms"] > 0 and row["train_best_ms"] > 0
        assert set(row["compile_s"]) == {"forward", "train"}


def test_unroll_arguments_are_checked():
    for values in ("1,x", "0", ""):
        with pytest.raises(SystemExit):
            unroll.parse_args(["--values", values])
    assert unroll.parse_args(["--values", "2,5", "--quick"]).values == [2, 5]
