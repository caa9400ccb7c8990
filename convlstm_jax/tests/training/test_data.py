"""`convlstm_jax.training`'s digits and batches: Moving MNIST, bouncing digits, the input/target split,
reproducible batches and the copy-the-last-frame baseline."""

import numpy as np
import pytest

from convlstm_jax.training import (
    batch_indices,
    bouncing_digits,
    copy_last_frame,
    load_moving_mnist,
    split_sequences,
    to_unit,
)


@pytest.fixture(scope="module")
def digits():
    """Twelve sequences of ten 64 x 64 frames: the default frame and digit sizes, kept short."""
    return bouncing_digits(12, 10, seed=3)


def test_the_loader_reads_the_standard_layout(tmp_path):
    # (T, N, H, W) with distinct values everywhere, as mnist_test_seq.npy stores (20, 10000, 64, 64).
    frames = np.random.default_rng(0).integers(0, 256, size=(5, 3, 6, 7), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", frames)
    sequences = load_moving_mnist(tmp_path / "mnist_test_seq.npy")
    assert sequences.shape == (3, 5, 6, 7, 1)
    assert sequences.dtype == np.uint8
    assert sequences.flags.c_contiguous
    np.testing.assert_array_equal(sequences[..., 0], frames.transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(sequences[2, 4, :, :, 0], frames[4, 2])


@pytest.mark.parametrize(
    ("array", "error", "match"),
    [
        (np.zeros((5, 3, 6), np.uint8), ValueError, r"must be 4-D \(T, N, H, W\), got shape \(5, 3, 6\)"),
        (np.zeros((2, 5, 3, 6, 6), np.uint8), ValueError, r"got shape \(2, 5, 3, 6, 6\)"),
        (np.zeros((5, 3, 6, 6), np.float32), TypeError, "must be uint8, got float32"),
    ],
)
def test_the_loader_rejects_other_arrays(tmp_path, array, error, match):
    np.save(tmp_path / "frames.npy", array)
    with pytest.raises(error, match=match):
        load_moving_mnist(tmp_path / "frames.npy")


def test_the_loader_rejects_a_missing_file_and_other_formats(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No Moving MNIST file at .*absent\.npy"):
        load_moving_mnist(tmp_path / "absent.npy")
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(ValueError, match=r"is not a \.npy array file"):
        load_moving_mnist(tmp_path / "text.npy")
    np.savez(tmp_path / "arrays.npz", frames=np.zeros((2, 2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"holds a NpzFile, expected one \.npy array"):
        load_moving_mnist(tmp_path / "arrays.npz")


def test_bouncing_digits_shape_and_range(digits):
    assert digits.shape == (12, 10, 64, 64, 1)
    assert digits.dtype == np.uint8
    assert digits.max() > 200  # the digits' strokes reach near white
    # Each frame shows its digits: about as much ink as two digit images, never an empty frame.
    ink = digits.astype(np.int64).sum(axis=(2, 3, 4))
    assert ink.min() > 0
    assert ink.max() < 2 * 28 * 28 * 255


def test_bouncing_digits_conserve_the_ink_of_each_digit():
    # One digit alone is only moved, never cropped or blended: every frame has the same pixels.
    sequences = bouncing_digits(3, 12, num_digits=1, seed=5)
    ink = sequences.astype(np.int64).sum(axis=(2, 3, 4))
    np.testing.assert_array_equal(ink, ink[:, :1].repeat(12, axis=1))


def test_bouncing_digits_move(digits):
    changed = (digits[:, 1:] != digits[:, :-1]).any(axis=(2, 3, 4))
    assert changed.all()


def test_a_bouncing_digit_turns_back_at_the_edges():
    # A 1-digit 20 x 20 frame with a 16 x 16 digit has 5 positions a side; 40 frames bounce many times.
    sequences = bouncing_digits(4, 40, size=20, digit_size=16, num_digits=1, seed=2)
    top = sequences.any(axis=(3, 4)).argmax(axis=2)  # (N, T): the first row with ink
    steps = np.diff(top, axis=1)
    assert (steps > 0).any() and (steps < 0).any()  # goes down and comes back up


def test_bouncing_digits_are_deterministic_by_seed():
    first = bouncing_digits(3, 4, size=32, digit_size=12, seed=7)
    np.testing.assert_array_equal(first, bouncing_digits(3, 4, size=32, digit_size=12, seed=7))
    assert (first != bouncing_digits(3, 4, size=32, digit_size=12, seed=8)).any()


def test_bouncing_digits_with_the_digit_as_large_as_the_frame():
    sequences = bouncing_digits(2, 3, size=8, digit_size=8)
    np.testing.assert_array_equal(sequences[:, 1:], sequences[:, :1].repeat(2, axis=1))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_sequences": 0}, ValueError, "num_sequences must be a positive int, got 0"),
        ({"num_frames": -1}, ValueError, "num_frames must be a positive int, got -1"),
        ({"size": 2.0}, TypeError, "size must be an int, got float"),
        ({"num_digits": True}, TypeError, "num_digits must be an int, got bool"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0, got -1"),
        ({"size": 16, "digit_size": 17}, ValueError, "digit_size must be at most size"),
    ],
)
def test_bouncing_digits_reject_bad_arguments(kwargs, error, match):
    arguments = {"num_sequences": 1, **kwargs}
    with pytest.raises(error, match=match):
        bouncing_digits(**arguments)


def test_split_sequences(digits):
    inputs, targets = split_sequences(digits, 4)
    np.testing.assert_array_equal(inputs, digits[:, :4])
    np.testing.assert_array_equal(targets, digits[:, 4:])
    with pytest.raises(ValueError, match=r"more frames than input_frames=10 .* got shape \(12, 10, 64, 64, 1\)"):
        split_sequences(digits)
    with pytest.raises(ValueError, match="input_frames must be a positive int"):
        split_sequences(digits, 0)
    with pytest.raises(TypeError, match="sequences must be a NumPy array, got list"):
        split_sequences([[1, 2]], 1)


def test_to_unit():
    x = np.array([[0, 1], [128, 255]], np.uint8)
    unit = to_unit(x)
    assert unit.dtype == np.float32
    np.testing.assert_array_equal(unit, x.astype(np.float32) / np.float32(255))
    assert unit.min() == 0 and unit.max() == 1
    with pytest.raises(TypeError, match=r"uint8 or floating-point NumPy array of pixels 0\.\.255, got int32"):
        to_unit(x.astype(np.int32))


def test_to_unit_keeps_missing_float_pixels_missing():
    x = np.array([[0.0, np.nan], [127.5, 255.0]], np.float32)
    unit = to_unit(x)
    assert unit.dtype == np.float32
    np.testing.assert_array_equal(unit, [[0.0, np.nan], [0.5, 1.0]])


def test_batch_indices_are_a_pure_function_of_the_step():
    steps = [batch_indices(103, 10, step, seed=4) for step in range(25)]
    again = [batch_indices(103, 10, step, seed=4) for step in reversed(range(25))][::-1]
    for batch, repeat in zip(steps, again):
        np.testing.assert_array_equal(batch, repeat)
        assert batch.shape == (10,)
    assert not np.array_equal(steps[0], batch_indices(103, 10, 0, seed=5))


def test_batch_indices_cover_each_epoch_once_without_the_remainder():
    # 103 examples in batches of 10: 10 steps an epoch, 3 examples left out of each.
    epochs = [np.concatenate([batch_indices(103, 10, 10 * epoch + k, seed=0) for k in range(10)]) for epoch in range(3)]
    for seen in epochs:
        assert len(np.unique(seen)) == 100
        assert seen.min() >= 0 and seen.max() < 103
    assert not np.array_equal(epochs[0], epochs[1])  # each epoch reshuffles


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((10, 11, 0), {"seed": 0}, ValueError, "batch_size must be at most num_examples, got 11 > 10"),
        ((10, 0, 0), {"seed": 0}, ValueError, "batch_size must be a positive int"),
        ((10, 2, -1), {"seed": 0}, ValueError, "step must be an int >= 0"),
        ((10, 2, 0), {"seed": 0.5}, TypeError, "seed must be an int, got float"),
    ],
)
def test_batch_indices_reject_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        batch_indices(*args, **kwargs)


def test_copy_last_frame(digits):
    inputs, _ = split_sequences(digits, 6)
    forecast = copy_last_frame(inputs, 4)
    assert forecast.shape == (12, 4, 64, 64, 1)
    assert forecast.dtype == np.uint8
    for t in range(4):
        np.testing.assert_array_equal(forecast[:, t], inputs[:, 5])
    with pytest.raises(ValueError, match=r"at least one frame, got shape \(12, 0, 64, 64, 1\)"):
        copy_last_frame(digits[:, :0], 4)


# Radar archives through pysteps (`--data pysteps:NAME`, `--data source`) and HKO-7's PNGs.


@pytest.fixture
def fake_archive(tmp_path, monkeypatch):
    """A 5-minute archive of 24 x 24 frames (3 runs: 6, 4 and 2 frames) read by a registered fake importer."""
    pytest.importorskip("pysteps")
    from pysteps.io import interface

    from convlstm_jax.tests.nowcasting.test_sources import fake_importer, settings, write_archive

    monkeypatch.setitem(interface._importer_methods, "fake_npy", fake_importer)
    write_archive(tmp_path / "archive", [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13], height=24, width=24)
    path = tmp_path / "fake.json"
    path.write_text(__import__("json").dumps(settings(tmp_path / "archive")))
    return path


def test_a_radar_archive_as_training_data(fake_archive, tmp_path):
    from convlstm_jax.nowcasting.sources import RadarSource, load_source
    from convlstm_jax.nowcasting.units import rain_to_pixel_values
    from convlstm_jax.training import TrainConfig, load_data

    config = TrainConfig(
        data="source", data_source=str(fake_archive), size=4, patch_size=2, input_frames=2, output_frames=2,
        train_sequences=4, val_sequences=2, batch_size=2, workdir=str(tmp_path / "run"),
    )  # fmt: skip
    assert config.radar and config.interval_minutes == 5.0
    train, val = load_data(config)
    rain = load_source(RadarSource.from_json(fake_archive), frames_per_sequence=4, size=4).rain
    # 24 x 24 pixels of 1 km -> 12 x 12 of 2 km -> 9 tiles; runs of 6 and 4 frames: 2 windows of 4 frames.
    assert rain.shape == (18, 4, 4, 4)
    assert train.dtype == np.float32 and train.shape == (4, 4, 4, 4, 1) and val.shape == (2, 4, 4, 4, 1)
    np.testing.assert_array_equal(train[..., 0], rain_to_pixel_values(rain[:4]))
    np.testing.assert_array_equal(val[..., 0], rain_to_pixel_values(rain[-2:]))
    assert np.isnan(train[0, :, 0, 0, 0]).all()  # the missing corner stays missing


def test_hko7_pngs_as_training_data_by_hko7_z_r(tmp_path):
    pytest.importorskip("cv2")
    import datetime

    from convlstm_jax.nowcasting.readers import save_radar_pngs
    from convlstm_jax.nowcasting.units import HKO7_ZR_A, HKO7_ZR_B, pixels_to_rain
    from convlstm_jax.training import TrainConfig, load_data

    frames = np.random.default_rng(5).integers(0, 256, size=(8, 8, 8), dtype=np.uint8)
    save_radar_pngs(frames, tmp_path / "radarPNG", datetime.datetime(2015, 6, 1))
    config = TrainConfig(
        data=str(tmp_path / "radarPNG"), size=8, input_frames=2, output_frames=2, train_sequences=1,
        val_sequences=1, batch_size=1,
    )  # fmt: skip
    train, val = load_data(config)
    assert train.dtype == np.uint8  # nothing missing
    # Inside, pixels are rain rates by Marshall-Palmer; the PNG's are by HKO-7's Z = 58.53 R^1.56.
    hko7 = pixels_to_rain(frames.reshape(2, 4, 8, 8), HKO7_ZR_A, HKO7_ZR_B)
    inside = pixels_to_rain(np.concatenate([train, val])[..., 0])
    # Within a pixel's 0.27 dBZ, from 0.05 mm/h up to Marshall-Palmer's top pixel, 205 mm/h, where they clip.
    wet = (hko7 > 0.05) & (hko7 < 200)
    np.testing.assert_allclose(inside[wet], hko7[wet], rtol=0.04)
    assert np.isclose(inside[hko7 >= 206], 205.05, rtol=1e-3).all()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"data": "pysteps:nowhere", "data_root": "."}, "pysteps has no data source 'nowhere'"),
        ({"data": "pysteps:knmi", "data_root": "absent"}, "'absent', is not a folder"),
        ({"data": "pysteps:knmi"}, "needs data_root"),
        ({"data": "source"}, "reads the radar source of data_source"),
        ({"data_source": "x.json"}, "data_source is read with data='source'"),
        ({"data": "source", "data_source": "absent.json"}, "No radar source file at 'absent.json'"),
        ({"data": "embedded", "data_root": "."}, "data_root is the root of a radar archive"),
        ({"grid": "mosaic"}, "grid must be one of"),
        ({"pixel_km": 0.0}, "pixel_km must be positive"),
    ],
)
def test_a_radar_archive_refused_on_construction(options, message, tmp_path, monkeypatch):
    pytest.importorskip("pysteps")
    from convlstm_jax.training import ConfigError, TrainConfig

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options)


def test_cli_refuses_a_gap_with_one_line_and_writes_nothing(fake_archive, tmp_path, capsys):
    from convlstm_jax.training.cli import main

    workdir = tmp_path / "run"
    argv = [
        "--data", "source", "--data-source", str(fake_archive), "--size", "4", "--patch-size", "2",
        "--input-frames", "4", "--output-frames", "3", "--train-sequences", "2", "--val-sequences", "1",
        "--batch-size", "1", "--workdir", str(workdir),
    ]  # fmt: skip
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no 7 consecutive frames 5 minutes apart" in error and "the longest 6 frames" in error
    assert not workdir.exists()


def test_cli_refuses_a_timestep_that_does_not_fit(fake_archive, tmp_path, capsys):
    import json

    from convlstm_jax.training.cli import main

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**json.loads(fake_archive.read_text()), "timestep": 10}))
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        main(["--data", "source", "--data-source", str(wrong), "--size", "4", "--workdir", str(workdir)])
    assert stop.value.code == 2
    assert "not a multiple of its timestep of 10 minutes" in capsys.readouterr().err
    assert not workdir.exists()
