"""`convlstm-nowcast`: a trained run's nowcast from a radar archive, its files and its refusals."""

import datetime
import json

import numpy as np
import pytest

pysteps = pytest.importorskip("pysteps", reason="convlstm-nowcast reads and writes through pysteps (the nowcast extra)")
pytest.importorskip("netCDF4", reason="the forecast is written by pysteps' netCDF exporter")

from pysteps.io import interface as pysteps_interface  # noqa: E402

from convlstm_jax.nowcasting import pixels_to_rain, rain_to_pixels  # noqa: E402
from convlstm_jax.tests.nowcasting.conftest import pysteps_data_root  # noqa: E402, F401
from convlstm_jax.tests.nowcasting.test_sources import fake_importer  # noqa: E402
from convlstm_jax.training import TrainConfig, train  # noqa: E402
from convlstm_jax.training.nowcast import main  # noqa: E402
from convlstm_jax.training.steps import predict  # noqa: E402

START = datetime.datetime(2021, 3, 31, 23, 40)
TINY = {
    "spec": "ConvLSTM(1x1)-1x1-4",
    "size": 16,
    "input_frames": 3,
    "output_frames": 2,
    "train_sequences": 4,
    "val_sequences": 1,
    "batch_size": 4,
    "steps": 2,
    "eval_every": 0,
    "checkpoint_every": 0,
    "progress": False,
}


def write_archive(root, frames, *, minutes=5, seed=0, size=32, width=32, first=START, missing_right=False):
    """A fake archive of `frames` frames (accumulations in mm over 5 minutes, 1 km pixels); returns the times."""
    rng = np.random.default_rng(seed)
    times = []
    for k in range(frames):
        time = first + datetime.timedelta(minutes=minutes * k)
        folder = root / f"{time:%Y%m%d}"
        folder.mkdir(parents=True, exist_ok=True)
        frame = rng.gamma(0.5, 0.4, size=(size, width))
        if missing_right:  # the right half outside the radars' range
            frame[:, width // 2 :] = np.nan
        np.save(folder / f"fake_{time:%Y%m%d%H%M}Z.npy", frame)
        times.append(time)
    return times


def write_settings(path, root, minutes=5):
    settings = {
        "root_path": str(root),
        "path_fmt": "%Y%m%d",
        "fn_pattern": "fake_%Y%m%d%H%M?",
        "fn_ext": "npy",
        "importer": "fake_npy",
        "importer_kwargs": {"pixel_m": 1000.0},
        "timestep": minutes,
    }
    path.write_text(json.dumps(settings))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run trained on one fake archive of 5-minute frames (32 km square, on 2 km pixels: one tile)."""
    folder = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(pysteps_interface._importer_methods, "fake_npy", fake_importer)
        write_archive(folder / "train-archive", 25, seed=1)
        source = write_settings(folder / "train.json", folder / "train-archive")
        config = TrainConfig(**TINY, data="source", data_source=str(source), workdir=str(folder / "run"))
        result = train(config)
    return result


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """Another fake archive of 5-minute frames, 8 of them, and its JSON settings."""
    monkeypatch.setitem(pysteps_interface._importer_methods, "fake_npy", fake_importer)
    times = write_archive(tmp_path / "archive", 8, seed=7)
    return write_settings(tmp_path / "archive.json", tmp_path / "archive"), times


def _model_forecast(state, rain):
    """The run's forecast of rain rates (1, T_in, 16, 16), in mm/h, as the training run's model gives it."""
    pixels = rain_to_pixels(rain)[..., np.newaxis].astype(np.float32) / 255
    return pixels_to_rain(np.asarray(predict(state, pixels))[0, ..., 0] * 255)


def test_the_latest_frames_are_forecast_into_a_netcdf_file_and_strips(run, archive, tmp_path, capsys):
    import netCDF4

    source, times = archive
    out = tmp_path / "out"
    assert main([str(run.workdir), "--data", "source", "--data-source", str(source), "--out", str(out)]) == 0
    assert "Nowcast of archive" in capsys.readouterr().out
    assert sorted(path.name for path in out.iterdir()) == ["forecast.nc", "forecast.png", "nowcast.json"]
    summary = json.loads((out / "nowcast.json").read_text())
    assert summary["inputs"] == [time.isoformat() for time in times[-3:]] and summary["observed"] is False
    assert summary["step"] == TINY["steps"] and summary["shape"] == [2, 16, 16]
    assert summary["georeferenced"] is False  # the fake importer gives no corners: plain grid coordinates
    # The last two frames, block means of 2 x 2 km in mm/h (12 per hour of 5-minute accumulations).
    frames = [np.load(tmp_path / "archive" / f"{t:%Y%m%d}" / f"fake_{t:%Y%m%d%H%M}Z.npy") for t in times[-3:]]
    rain = np.stack([12 * f.reshape(16, 2, 16, 2).mean(axis=(1, 3)) for f in frames])[np.newaxis]
    with netCDF4.Dataset(out / "forecast.nc") as data:
        written = np.ma.filled(data["precip_intensity"][:], np.nan)
        assert data["precip_intensity"].units == "mm h-1" and written.shape == (2, 16, 16)
        assert data["x"][1] - data["x"][0] == 2000.0  # the 2 km pixels of the run's grid
    np.testing.assert_allclose(written, _model_forecast(run.state, rain.astype(np.float32)), rtol=1e-4, atol=1e-3)
    assert (out / "forecast.png").read_bytes().startswith(b"\x89PNG")


def test_from_a_start_with_observations_the_skill_is_scored(run, archive, tmp_path):
    source, times = archive
    out = tmp_path / "out"
    start = times[3].isoformat()
    args = [str(run.workdir), "--data", "source", "--data-source", str(source), "--start", start, "--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "nowcast.json").read_text())
    assert summary["inputs"] == [time.isoformat() for time in times[1:4]] and summary["observed"] is True
    skill = json.loads((out / "skill.json").read_text())
    assert list(skill["regions"]) == ["frame", "reachable"]
    assert next(iter(skill["regions"]["frame"])) == "model" and "persistence" in skill["regions"]["frame"]
    assert skill["regions"]["frame"]["model"]["lead_times"] == [1, 2]


def test_tiles_are_forecast_together_and_those_out_of_range_left_unscored(run, tmp_path, monkeypatch):
    monkeypatch.setitem(pysteps_interface._importer_methods, "fake_npy", fake_importer)
    times = write_archive(tmp_path / "wide", 6, seed=7, width=64, missing_right=True)
    source = write_settings(tmp_path / "wide.json", tmp_path / "wide")
    out = tmp_path / "out"
    args = ["--data", "source", "--data-source", str(source), "--start", times[2].isoformat(), "--out", str(out)]
    assert main([str(run.workdir), *args]) == 0
    summary = json.loads((out / "nowcast.json").read_text())
    # 32 x 64 pixels of 1 km: 16 x 32 of 2 km, two tiles side by side, the right one never observed.
    assert summary["shape"] == [2, 16, 32] and summary["grid"]["tiles"] == [[0, 0], [0, 16]]
    assert summary["scored_tiles"] == 1
    skill = json.loads((out / "skill.json").read_text())
    assert skill["regions"]["frame"]["model"]["num_sequences"] == 1


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown source", "pysteps has no data source 'nowhere'"),
        ("missing root", "is not a folder"),
        ("before the archive", "No frame at or before 2000-01-01"),
        ("no checkpoint", "holds no checkpoint"),
        ("another interval", "6 minutes apart; the run"),
        ("a gap", "lacks the frame of"),
    ],
)
def test_bad_input_exits_with_status_2_and_writes_nothing(run, archive, tmp_path, capsys, case, message):
    source, times = archive
    workdir, data = str(run.workdir), ["--data", "source", "--data-source", str(source)]
    extra = []
    if case == "unknown source":
        data = ["--data", "pysteps:nowhere", "--data-root", str(tmp_path)]
    elif case == "missing root":
        data = ["--data", "pysteps:knmi", "--data-root", str(tmp_path / "nothing")]
    elif case == "before the archive":
        extra = ["--start", "2000-01-01T00:00"]
    elif case == "no checkpoint":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "config.json").write_text((run.workdir / "config.json").read_text())
        workdir = str(tmp_path / "empty")
    elif case == "another interval":
        write_archive(tmp_path / "six", 4, minutes=6)
        data = ["--data", "source", "--data-source", str(write_settings(tmp_path / "six.json", tmp_path / "six", 6))]
    elif case == "a gap":
        last = times[-2]
        (tmp_path / "archive" / f"{last:%Y%m%d}" / f"fake_{last:%Y%m%d%H%M}Z.npy").unlink()
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit:
        main([workdir, *data, *extra, "--out", str(out)])
    assert exit.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("convlstm-nowcast: error:") and message in error
    assert not out.exists()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_run_trained_on_one_source_nowcasts_knmi(run, pysteps_data_root, tmp_path):  # noqa: F811
    pytest.importorskip("h5py")
    import netCDF4

    out = tmp_path / "knmi"
    root = pysteps_data_root / "radar" / "KNMI"
    args = [str(run.workdir), "--data", "pysteps:knmi", "--data-root", str(root), "--out", str(out)]
    assert main([*args, "--start", "2010-08-26T07:35"]) == 0
    summary = json.loads((out / "nowcast.json").read_text())
    assert summary["inputs"][-1] == "2010-08-26T07:35:00" and summary["observed"] is False
    assert summary["georeferenced"] is True
    # 765 x 700 pixels of 1 km: 382 x 350 of 2 km, 23 x 21 whole tiles of 16.
    assert summary["shape"] == [2, 23 * 16, 21 * 16]
    with netCDF4.Dataset(out / "forecast.nc") as data:
        assert data["precip_intensity"].shape == (2, 368, 336)
        x, y = np.asarray(data["x"][:]), np.asarray(data["y"][:])
    # Pixel centres of 2 km, from KNMI's corner past the 7 pixels of 2 km the tiles leave out on each side.
    path = next(root.rglob("RAD_NL25_RAP_5min_201008260735.h5"))
    _, _, metadata = pysteps.io.get_method("knmi_hdf5", "importer")(
        str(path), qty="ACRR", accutime=5.0, pixelsize=1000.0
    )
    assert metadata["cartesian_unit"] == "km" and metadata["yorigin"] == "upper"
    np.testing.assert_allclose(x[:2], metadata["x1"] + 14 + np.array([1, 3]))
    np.testing.assert_allclose(sorted(y)[-1], metadata["y2"] - 14 - 1)
