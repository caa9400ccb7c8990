import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from convlstm_jax.nowcasting import balanced_loss, rain_to_pixels, skill_table, synthetic_radar
from convlstm_jax.training import (
    ConfigError,
    TrainConfig,
    build_model,
    build_parser,
    create_train_state,
    load_data,
    main,
    make_optimizer,
    split_sequences,
    to_unit,
    train,
    train_step,
)
from convlstm_jax.training.cli import parse_options
from convlstm_jax.training.config import PRESETS

# One layer of 4 hidden states with 1 x 1 kernels, on 4 x 4 patches of 16 x 16 frames, 2 frames in
# and 2 out. Every test uses these shapes, so `train_step` and `eval_step` compile once for the file.
TINY = {
    "spec": "ConvLSTM(1x1)-1x1-4",
    "size": 16,
    "input_frames": 2,
    "output_frames": 2,
    "train_sequences": 16,
    "val_sequences": 4,
    "batch_size": 4,
    "progress": False,
}
TINY_ARGS = [f"--{name.replace('_', '-')}={value}" for name, value in TINY.items() if name != "progress"]
TINY_ARGS.append("--no-progress")
PNG = b"\x89PNG\r\n\x1a\n"


def _assert_trees_equal(actual, expected):
    """Same tree structure, then every leaf equal bit for bit."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e), strict=True)


def _records(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_the_parser_mirrors_the_config():
    defaults = vars(build_parser().parse_args([]))
    assert defaults.pop("preset") is None
    assert defaults == dataclasses.asdict(TrainConfig())
    args = build_parser().parse_args(["--clip-norm", "1.5", "--no-progress", "--peephole", "none"])
    assert (args.clip_norm, args.progress, args.peephole) == (1.5, False, "none")


def test_the_loss_decreases_on_a_fixed_batch():
    config = TrainConfig(**TINY)
    train_set, _ = load_data(config)
    inputs, targets = (to_unit(x[:4]) for x in split_sequences(train_set, config.input_frames))
    state = create_train_state(build_model(config), make_optimizer(config), inputs)
    losses = []
    for _ in range(6):
        state, loss = train_step(state, inputs, targets)
        losses.append(float(loss))
    assert int(state.step) == 6
    assert all(later < earlier for earlier, later in itertools.pairwise(losses)), losses


def test_adam_with_clipping_builds_and_steps():
    config = TrainConfig(**TINY, optimizer="adam", clip_norm=1.0)
    optimizer = make_optimizer(config)
    train_set, _ = load_data(config)
    inputs, targets = (to_unit(x[:4]) for x in split_sequences(train_set, config.input_frames))
    state = create_train_state(build_model(config), optimizer, inputs)
    assert any(isinstance(s, optax.ScaleByAdamState) for s in state.opt_state[1])  # after the clipping
    first, _ = train_step(state, inputs, targets)
    second, loss = train_step(first, inputs, targets)
    assert int(second.step) == 2 and np.isfinite(float(loss))
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), state.params, second.params)
    assert all(jax.tree.leaves(changed))


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    config = TrainConfig(**TINY, steps=4, eval_every=2, checkpoint_every=2)
    straight = train(dataclasses.replace(config, workdir=str(tmp_path / "straight")))
    stopped = train(dataclasses.replace(config, steps=2, workdir=str(tmp_path / "resumed")))
    assert stopped.checkpoint_steps == (2,)
    compiled = train_step._cache_size()
    resumed = train(dataclasses.replace(config, workdir=str(tmp_path / "resumed")))
    assert train_step._cache_size() == compiled  # a restored state reuses the compiled step
    assert (straight.steps_run, stopped.steps_run, resumed.steps_run) == (4, 2, 2)
    # Bit for bit on CPU: the same batches, and the same compiled step from a restored state.
    _assert_trees_equal(resumed.state, straight.state)
    assert resumed.metrics == straight.metrics
    assert _records(tmp_path / "resumed") == _records(tmp_path / "straight")


def test_the_command_line_end_to_end(tmp_path, capsys):
    workdir = tmp_path / "run"
    assert main([*TINY_ARGS, "--steps=4", "--eval-every=2", "--checkpoint-every=2", f"--workdir={workdir}"]) == 0
    out = capsys.readouterr().out
    assert "copy the last frame: cross-entropy" in out
    assert "step      4  validation:" in out
    assert "model  " in out and "copy last frame  " in out and "Wall time" in out
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["2", "4"]
    records = _records(workdir)
    assert [(r["step"], r["kind"]) for r in records if r["kind"] != "train"] == [
        (0, "baseline"),
        (2, "val"),
        (4, "val"),
    ]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    assert json.loads((workdir / "config.json").read_text())["spec"] == TINY["spec"]
    for figure in ("forecasts.png", "learning_curve.png"):
        data = (workdir / figure).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000

    # The same command again finds the run complete; another spec is refused.
    assert main([*TINY_ARGS, "--steps=4", f"--workdir={workdir}"]) == 0
    assert "resumed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY_ARGS, "--spec=ConvLSTM(3x3)-3x3-4", f"--workdir={workdir}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "spec: 'ConvLSTM(1x1)-1x1-4' in the checkpoint, 'ConvLSTM(3x3)-3x3-4' now" in err


def test_resuming_with_another_model_is_refused(tmp_path):
    config = TrainConfig(**TINY, steps=1, workdir=str(tmp_path))
    train(config)
    with pytest.raises(ConfigError, match=r"peephole: 'hadamard' in the checkpoint, 'conv' now"):
        train(dataclasses.replace(config, peephole="conv", steps=2))
    train(dataclasses.replace(config, steps=2, eval_every=1))  # the schedule may change


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--spec=LSTM(3x3)-3x3-8"], "notation of Shi et al. 2015"),
        (["--spec=ConvLSTM(3x3)-4x4-8"], "odd"),
        (["--size=18"], "18x18 frames do not cut into 4x4 patches"),
        (["--steps=0"], "steps must be at least 1"),
        (["--batch-size=32"], r"batch_size \(32\) must be at most train_sequences \(16\)"),
        (["--optimizer=sgd"], "invalid choice: 'sgd'"),
        (["--learning-rate=fast"], "invalid float value: 'fast'"),
        (["--data={tmp}/absent.npy"], "No Moving MNIST file at .*absent.npy"),
    ],
)
def test_bad_arguments_exit_with_status_2(tmp_path, capsys, args, message):
    args = [arg.format(tmp=tmp_path) for arg in args]
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY_ARGS, *args, f"--workdir={tmp_path / 'run'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: convlstm-train")
    assert re.search(message, err), err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_data_file_is_split_into_training_and_validation(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, size=(5, 12, 16, 16), dtype=np.uint8)  # (T, N, H, W)
    np.save(tmp_path / "seq.npy", frames)
    config = TrainConfig(**{**TINY, "train_sequences": 8, "val_sequences": 3}, data=str(tmp_path / "seq.npy"))
    train_set, val_set = load_data(config)
    assert train_set.shape == (8, 4, 16, 16, 1) and val_set.shape == (3, 4, 16, 16, 1)
    np.testing.assert_array_equal(train_set[..., 0], frames[:4, :8].transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(val_set[..., 0], frames[:4, 9:].transpose(1, 0, 2, 3))
    with pytest.raises(ConfigError, match="has 12 sequences, fewer than train_sequences \\+ val_sequences = 20"):
        load_data(dataclasses.replace(config, train_sequences=16, val_sequences=4))
    with pytest.raises(ConfigError, match="are 16x16; pass --size 16"):
        load_data(dataclasses.replace(config, size=32))


@pytest.mark.slow
def test_sharded_training_matches_one_device(tmp_path):
    # Two CPU devices in fresh processes; 3 x 3 kernels, so the spatial split exchanges halos.
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    args = [*TINY_ARGS, "--spec=ConvLSTM(3x3)-3x3-4", "--steps=3", "--eval-every=3"]
    runs = {}
    for sharding in ("none", "data", "spatial"):
        workdir = tmp_path / sharding
        command = [
            sys.executable,
            "-m",
            "convlstm_jax.training",
            *args,
            f"--sharding={sharding}",
            f"--workdir={workdir}",
        ]
        subprocess.run(command, env=env, check=True, capture_output=True)
        runs[sharding] = _records(workdir)
    for mode in ("data", "spatial"):
        assert [(r["step"], r["kind"]) for r in runs[mode]] == [(r["step"], r["kind"]) for r in runs["none"]]
        for one, sharded in zip(runs["none"], runs[mode]):
            for key in one.keys() - {"step", "kind"}:
                assert sharded[key] == pytest.approx(one[key], rel=1e-5), (mode, one, sharded)


@pytest.mark.slow
def test_data_sharding_needs_a_batch_that_divides_by_the_devices(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    command = [sys.executable, "-m", "convlstm_jax.training", *TINY_ARGS, "--batch-size=3", "--sharding=data"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "batch_size (3) must be a multiple of 2" in result.stderr


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_sets_its_options_and_those_given_win(name):
    options = parse_options(build_parser(), ["--preset", name, "--steps=7", "--seed=3"])
    config = TrainConfig(**options)
    assert config == TrainConfig.from_preset(name, steps=7, seed=3)
    for option, value in PRESETS[name].items():
        assert getattr(config, option) == (7 if option == "steps" else value)
    assert (config.steps, config.seed) == (7, 3)
    assert parse_options(build_parser(), []) == dataclasses.asdict(TrainConfig())


def test_data_radar_alone_starts_from_the_radar_preset():
    options = parse_options(build_parser(), ["--data", "radar"])
    assert TrainConfig(**options) == TrainConfig.from_preset("radar")
    assert (options["loss"], options["input_frames"]) == ("balanced", 5)
    # Options given win, and another preset is not replaced by it.
    assert parse_options(build_parser(), ["--data", "radar", "--loss", "cross_entropy"])["loss"] == "cross_entropy"
    assert parse_options(build_parser(), ["--data", "radar", "--preset", "paper-radar"])["input_frames"] == 5
    assert parse_options(build_parser(), ["--preset", "paper-radar", "--data", "radar"])["output_frames"] == 15


def test_the_balanced_loss_trains(tmp_path):
    config = TrainConfig(**TINY, data="radar", loss="balanced")
    train_set, _ = load_data(config)
    inputs, targets = split_sequences(train_set[:4], config.input_frames)
    state = create_train_state(build_model(config), make_optimizer(config), inputs, loss="balanced")
    losses = []
    for _ in range(5):
        state, loss = train_step(state, to_unit(inputs), to_unit(targets))
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert losses[0] == pytest.approx(
        float(
            balanced_loss(
                state.model.apply(
                    {
                        "params": create_train_state(
                            build_model(config), make_optimizer(config), inputs, loss="balanced"
                        ).params
                    },
                    to_unit(inputs),
                ),
                to_unit(targets),
            )
        ),
        rel=1e-6,
    )
    with pytest.raises(ValueError, match="loss must be one of"):
        create_train_state(build_model(config), make_optimizer(config), inputs, loss="mse")


def test_the_paper_radar_preset_is_the_papers_configuration():
    config = TrainConfig.from_preset("paper-radar")
    # Shi et al. 2015, Sec. 4.2: 5 frames in, 15 out, 100 x 100 frames as 2 x 2 patches, 2 x 64 hidden states.
    assert (config.input_frames, config.output_frames, config.size, config.patch_size) == (5, 15, 100, 2)
    assert config.spec == "ConvLSTM(3x3)-3x3-64-3x3-64" and config.radar
    with pytest.raises(ConfigError, match="preset must be one of"):
        TrainConfig.from_preset("paper")


RADAR_ARGS = [*TINY_ARGS, "--data=radar", "--size=32", "--input-frames=3", "--steps=2", "--eval-every=0"]


def test_a_radar_run_scores_the_model_against_pysteps(tmp_path, capsys):
    pytest.importorskip("pysteps", reason="the nowcasting scores need pysteps (the nowcast extra)")
    pytest.importorskip("cv2", reason="the optical-flow baseline needs OpenCV (the nowcast extra)")
    workdir = tmp_path / "radar"
    assert main([*RADAR_ARGS, f"--workdir={workdir}"]) == 0
    out = capsys.readouterr().out
    skill = json.loads((workdir / "skill.json").read_text())
    assert list(skill) == ["regions", "differences", "bootstrap"]
    assert list(skill["regions"]) == ["frame", "reachable"]
    assert list(skill["regions"]["frame"]) == ["model", "persistence", "optical_flow"]
    for result in (*skill["regions"]["frame"].values(), *skill["regions"]["reachable"].values()):
        assert result["lead_times"] == [1, 2] and result["num_sequences"] == TINY["val_sequences"]
        assert len(result["CSI"]["0.5"]) == 2
        assert set(result) >= {"CSI", "POD", "FAR", "HSS", "FSS", "MSE", "corr"}
    # The table printed is the one of the scores saved, row for row.
    assert "Nowcasting skill on the validation sequences" in out
    for line in skill_table(skill).splitlines():
        assert line in out
    for figure in ("forecasts.png", "learning_curve.png", "skill_csi.png", "radar_forecasts.png"):
        data = (workdir / figure).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000
    # Resuming the finished run scores it again, to the same figures.
    assert main([*RADAR_ARGS, f"--workdir={workdir}"]) == 0
    assert json.loads((workdir / "skill.json").read_text()) == skill


def test_the_radar_frames_are_synthetic_radar_in_hko7_pixels():
    config = TrainConfig(**{**TINY, "train_sequences": 4, "val_sequences": 2}, data="radar", seed=5)
    train_set, val_set = load_data(config)
    rain = synthetic_radar(6, config.frames, size=config.size, seed=5)
    np.testing.assert_array_equal(np.concatenate([train_set, val_set])[..., 0], rain_to_pixels(rain))
    assert train_set.shape == (4, 4, 16, 16, 1) and val_set.shape == (2, 4, 16, 16, 1)


@pytest.mark.slow
def test_a_radar_run_split_over_two_devices_scores_as_on_one(tmp_path):
    pytest.importorskip("pysteps", reason="the nowcasting scores need pysteps (the nowcast extra)")
    pytest.importorskip("cv2", reason="the optical-flow baseline needs OpenCV (the nowcast extra)")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    skills = {}
    for sharding in ("none", "data"):
        workdir = tmp_path / sharding
        command = [
            sys.executable,
            "-m",
            "convlstm_jax.training",
            *RADAR_ARGS,
            f"--sharding={sharding}",
            f"--workdir={workdir}",
        ]
        subprocess.run(command, env=env, check=True, capture_output=True)
        skills[sharding] = json.loads((workdir / "skill.json").read_text())["regions"]["frame"]
    for baseline in ("persistence", "optical_flow"):
        assert skills["data"][baseline] == skills["none"][baseline]
    assert skills["data"]["model"]["MSE"] == pytest.approx(skills["none"]["model"]["MSE"], rel=1e-5)
    assert skills["data"]["model"]["contingency"] == skills["none"]["model"]["contingency"]


def test_nowcast_skill_scores_every_baseline_on_both_regions_with_intervals(monkeypatch):
    pytest.importorskip("pysteps", reason="the nowcasting scores need pysteps (the nowcast extra)")
    pytest.importorskip("cv2", reason="the optical-flow baseline needs OpenCV (the nowcast extra)")
    from convlstm_jax import nowcasting
    from convlstm_jax.nowcasting import verification
    from convlstm_jax.training import evaluation

    rain = synthetic_radar(5, 6, size=24, seed=3)
    pixels = rain_to_pixels(rain)[..., np.newaxis]
    inputs, targets = pixels[:, :4], pixels[:, 4:]
    real = nowcasting.baselines

    def more_baselines(observed, lead_times):  # whatever baselines() returns is scored, an ensemble by its mean
        forecasts = real(observed, lead_times)
        members = np.stack([forecasts["persistence"], forecasts["optical_flow"]], axis=1)
        return {**forecasts, "ensemble": members}

    monkeypatch.setattr(evaluation.nowcasting, "baselines", more_baselines)
    monkeypatch.setattr(evaluation, "_model_rain", lambda state, x, place: nowcasting.pixels_to_rain(x[:, 2:, ..., 0]))
    skill = evaluation.nowcast_skill(None, inputs, targets, batch_size=2, resamples=50)
    names = ["model", "persistence", "optical_flow", "ensemble_mean"]
    assert list(skill["regions"]) == ["frame", "reachable"]
    observed, truth = nowcasting.pixels_to_rain(inputs[..., 0]), nowcasting.pixels_to_rain(targets[..., 0])
    mask = verification.reachable(observed, 2)
    expected = {
        "model": observed[:, 2:],
        "persistence": nowcasting.persistence(observed, 2),
        "optical_flow": nowcasting.optical_flow(observed, 2),
    }
    expected["ensemble_mean"] = (expected["persistence"] + expected["optical_flow"]) / 2
    for region, region_mask in (("frame", None), ("reachable", mask)):
        assert list(skill["regions"][region]) == names
        for name, forecast in expected.items():
            v = nowcasting.Verification(2)
            v.accumulate(forecast, truth, mask=region_mask)
            assert skill["regions"][region][name]["contingency"] == v.result()["contingency"], (region, name)
        differences = verification.bootstrap_differences(skill["regions"][region], resamples=50)
        assert skill["differences"][region] == differences and list(differences) == names[1:]
    pixels = {region: skill["regions"][region]["model"]["observed_pixels"] for region in ("frame", "reachable")}
    assert all(r < f for r, f in zip(pixels["reachable"], pixels["frame"], strict=True)), pixels
    assert skill["bootstrap"] == {"reference": "model", "resamples": 50, "seed": 0, "confidence": 0.95}
    assert "reachable:" in skill_table(skill) and "30" in skill["regions"]["frame"]["model"]["CSI"]


def test_a_radar_archive_with_missing_pixels_trains_end_to_end(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pysteps", reason="radar archives are read through pysteps (the nowcast extra)")
    pytest.importorskip("cv2", reason="the optical-flow baseline needs OpenCV (the nowcast extra)")
    from pysteps.io import interface as pysteps_interface

    from convlstm_jax.tests.nowcasting.test_sources import fake_importer, settings, write_archive

    monkeypatch.setitem(pysteps_interface._importer_methods, "fake_npy", fake_importer)
    write_archive(tmp_path / "archive", range(40), height=32, width=32)  # pixel (0, 0) missing in every frame
    (tmp_path / "source.json").write_text(json.dumps(settings(tmp_path / "archive")))
    options = {**TINY, "input_frames": 3, "train_sequences": 4, "val_sequences": 4, "batch_size": 2, "steps": 2}
    config = TrainConfig(**options, data="source", data_source=str(tmp_path / "source.json"))
    train_set, val_set = load_data(config)
    assert np.isnan(train_set).any() and np.isnan(val_set).any()
    workdir = tmp_path / "run"
    args = [f"--{name.replace('_', '-')}={value}" for name, value in options.items() if name != "progress"]
    assert (
        main(
            [
                *args,
                "--no-progress",
                "--data=source",
                f"--data-source={tmp_path / 'source.json'}",
                f"--workdir={workdir}",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "as pysteps' importer 'fake_npy'" in out and "200 R^1.6" not in out
    records = _records(workdir)
    for record in records:
        assert all(np.isfinite(value) for key, value in record.items() if key not in ("step", "kind")), record
    assert {record["kind"] for record in records} == {"baseline", "train", "val"}
    skill = json.loads((workdir / "skill.json").read_text())
    assert list(skill) == ["regions", "differences", "bootstrap"]
    for result in skill["regions"]["frame"].values():
        assert result["num_sequences"] == 4 and all(np.isfinite(result["MSE"]))
