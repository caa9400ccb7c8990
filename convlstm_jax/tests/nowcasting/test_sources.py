"""`convlstm_jax.nowcasting.sources`: radar archives read through pysteps into sequences."""

import datetime
import json

import numpy as np
import pytest

pysteps = pytest.importorskip("pysteps", reason="radar archives are read through pysteps (the nowcast extra)")

from pysteps.io import interface as pysteps_interface  # noqa: E402

from convlstm_jax.nowcasting import sources  # noqa: E402
from convlstm_jax.nowcasting.sources import (  # noqa: E402
    RadarSource,
    archive_runs,
    archive_times,
    block_mean,
    load_source,
)

START = datetime.datetime(2021, 3, 31, 23, 40)  # runs cross midnight and a month's end


def fake_importer(filename, **kwargs):
    """Reads a fake archive's frame: a .npy of accumulations in mm over 5 minutes, pixels of 1 km."""
    values = np.load(filename).astype(np.float64)
    metadata = {
        "unit": "mm",
        "transform": None,
        "accutime": 5,
        "threshold": 0.01,
        "zerovalue": 0.0,
        "zr_a": 200.0,
        "zr_b": 1.6,
        "xpixelsize": kwargs.get("pixel_m", 1000.0),
        "ypixelsize": kwargs.get("pixel_m", 1000.0),
        "cartesian_unit": "m",
        "projection": "+proj=stere",
    }
    return values, None, metadata


@pytest.fixture
def fake_importer_registered(monkeypatch):
    monkeypatch.setitem(pysteps_interface._importer_methods, "fake_npy", fake_importer)


def settings(root, timestep=5):
    return {
        "root_path": str(root),
        "path_fmt": "%Y%m%d",
        "fn_pattern": "fake_%Y%m%d%H%M?",
        "fn_ext": "npy",
        "importer": "fake_npy",
        "importer_kwargs": {"pixel_m": 1000.0},
        "timestep": timestep,
    }


def write_archive(root, steps, height=12, width=12, seed=0, step_minutes=5):
    """Frames at START + step * step_minutes for each step; returns {time: accumulation in mm}."""
    rng = np.random.default_rng(seed)
    written = {}
    for step in steps:
        time = START + datetime.timedelta(minutes=step_minutes * step)
        frame = rng.gamma(0.5, 0.4, size=(height, width))
        frame[0, 0] = np.nan
        folder = root / f"{time:%Y%m%d}"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"fake_{time:%Y%m%d%H%M}Z.npy", frame)
        written[time] = frame
    return written


def test_block_mean_is_missing_where_any_pixel_is():
    frame = np.arange(16, dtype=np.float32).reshape(4, 4)
    frame[3, 3] = np.nan
    np.testing.assert_array_equal(block_mean(frame, 2), [[2.5, 4.5], [10.5, np.nan]])


def test_a_run_per_gap_and_times_from_the_names(tmp_path, fake_importer_registered):
    write_archive(tmp_path, [0, 1, 2, 3, 5, 6, 7])
    source = RadarSource.from_settings("fake", settings(tmp_path))
    times = archive_times(source)
    assert times[0] == START and len(times) == 7
    assert [len(run) for run in archive_runs(source, times)] == [4, 3]


def test_sequences_are_rain_rates_of_the_files_on_tiles(tmp_path, fake_importer_registered):
    written = write_archive(tmp_path, range(6), height=13, width=9)
    source = RadarSource.from_settings("fake", settings(tmp_path))
    data = load_source(source, frames_per_sequence=3, size=2, pixel_km=2.0)
    # 13 x 9 pixels of 1 km -> 6 x 4 of 2 km -> tiles of 2: 3 x 2 per frame, 2 windows of 3 frames.
    assert data.rain.shape == (12, 3, 2, 2) and data.rain.dtype == np.float32
    assert data.interval_minutes == 5.0 and data.source == "fake"
    assert data.times == [START] * 6 + [START + datetime.timedelta(minutes=15)] * 6
    times = sorted(written)
    for n in (0, 7, 11):
        top, left = data.tiles[n]
        for t in range(3):
            time = data.times[n] + datetime.timedelta(minutes=5 * t)
            rate = written[time] * 12  # mm in 5 minutes -> mm/h
            expected = rate[:12, :8].reshape(6, 2, 4, 2).mean(axis=(1, 3))[top : top + 2, left : left + 2]
            np.testing.assert_allclose(data.rain[n, t], expected, rtol=1e-5)
            assert time in times
    # The missing corner pixel stays missing: the first tile's top-left block is NaN.
    assert np.isnan(data.rain[0, :, 0, 0]).all() and np.isnan(data.rain).sum() == 2 * 3


def test_crop_and_downscale(tmp_path, fake_importer_registered):
    written = write_archive(tmp_path, range(3), height=10, width=8)
    source = RadarSource.from_settings("fake", settings(tmp_path))
    crop = load_source(source, frames_per_sequence=3, size=4, grid="crop", pixel_km=None)
    rate = written[START] * 12
    np.testing.assert_allclose(crop.rain[0, 0], rate[3:7, 2:6], rtol=1e-6)
    down = load_source(source, frames_per_sequence=3, size=4, grid="downscale")
    np.testing.assert_allclose(down.rain[0, 0], rate[1:9, :].reshape(4, 2, 4, 2).mean(axis=(1, 3)), rtol=1e-5)


def test_a_time_range_and_a_stride(tmp_path, fake_importer_registered):
    write_archive(tmp_path, range(8))
    source = RadarSource.from_settings("fake", settings(tmp_path))
    data = load_source(
        source,
        frames_per_sequence=2,
        size=12,
        grid="crop",
        pixel_km=None,
        stride=1,
        start=START + datetime.timedelta(minutes=10),
        end=START + datetime.timedelta(minutes=25),
    )
    assert data.times == [START + datetime.timedelta(minutes=m) for m in (10, 15, 20)]


def test_a_source_from_json_with_a_relative_root(tmp_path, fake_importer_registered):
    write_archive(tmp_path / "archive", range(3))
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**settings("archive"), "root_path": "archive"}))
    source = RadarSource.from_json(path)
    assert source.name == "mine" and source.root_path == str(tmp_path / "archive")
    assert load_source(source, frames_per_sequence=3, size=12, grid="crop", pixel_km=None).rain.shape == (1, 3, 12, 12)


def test_pysteps_own_sources_are_known():
    source = RadarSource.from_pysteps("knmi", "/data/radar/KNMI")
    assert source.importer == "knmi_hdf5" and source.timestep == 5 and source.root_path == "/data/radar/KNMI"


# Bad input: one clear error before any frame is read.


def test_an_unknown_pysteps_source():
    with pytest.raises(ValueError, match=r"pysteps has no data source 'nowhere'; its data sources are \[.*'knmi'"):
        RadarSource.from_pysteps("nowhere", "/data")


def test_a_missing_root(tmp_path):
    source = RadarSource.from_settings("fake", settings(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_source(source, frames_per_sequence=2, size=4)


def test_settings_missing_a_key(tmp_path):
    incomplete = settings(tmp_path)
    del incomplete["timestep"]
    with pytest.raises(ValueError, match=r"missing \['timestep'\]"):
        RadarSource.from_settings("fake", incomplete)


def test_gaps_refused_only_when_no_run_is_long_enough(tmp_path, fake_importer_registered, monkeypatch):
    write_archive(tmp_path, [0, 1, 2, 4, 5, 7])
    source = RadarSource.from_settings("fake", settings(tmp_path))
    assert load_source(source, frames_per_sequence=3, size=12, grid="crop", pixel_km=None).rain.shape[0] == 1
    read = []
    monkeypatch.setattr(sources, "read_frame", lambda *args: read.append(args))
    with pytest.raises(ValueError, match=r"no 4 consecutive frames 5 minutes apart .* the longest 3 frames"):
        load_source(source, frames_per_sequence=4, size=12, grid="crop", pixel_km=None)
    assert read == []


def test_a_timestep_that_does_not_fit_the_files(tmp_path, fake_importer_registered):
    write_archive(tmp_path, range(4), step_minutes=6)
    source = RadarSource.from_settings("fake", settings(tmp_path, timestep=5))
    with pytest.raises(ValueError, match="6 minutes apart: not a multiple of its timestep of 5 minutes"):
        load_source(source, frames_per_sequence=2, size=4)


def test_frames_of_another_size(tmp_path, fake_importer_registered):
    write_archive(tmp_path, range(2))
    odd = START + datetime.timedelta(minutes=10)
    (tmp_path / f"{odd:%Y%m%d}" / f"fake_{odd:%Y%m%d%H%M}Z.npy").parent.mkdir(exist_ok=True)
    np.save(tmp_path / f"{odd:%Y%m%d}" / f"fake_{odd:%Y%m%d%H%M}Z.npy", np.zeros((12, 10)))
    source = RadarSource.from_settings("fake", settings(tmp_path))
    with pytest.raises(ValueError, match=r"frames of two sizes: .*fake_202103312350Z\.npy' is 12 x 10"):
        load_source(source, frames_per_sequence=3, size=4)


def test_an_unreadable_file_is_named(tmp_path, fake_importer_registered):
    write_archive(tmp_path, range(2))
    (tmp_path / f"{START:%Y%m%d}" / f"fake_{START:%Y%m%d%H%M}Z.npy").write_bytes(b"not numpy")
    source = RadarSource.from_settings("fake", settings(tmp_path))
    with pytest.raises(ValueError, match=r"importer 'fake_npy' .* could not read .*fake_202103312340Z\.npy"):
        load_source(source, frames_per_sequence=2, size=4)


def test_an_unknown_importer(tmp_path):
    write_archive(tmp_path, range(2))
    source = RadarSource.from_settings("fake", {**settings(tmp_path), "importer": "no_such_importer"})
    with pytest.raises(ValueError, match=r"Radar source 'fake': .*no_such_importer"):
        load_source(source, frames_per_sequence=2, size=4)


def test_frames_too_small_for_the_grid(tmp_path, fake_importer_registered):
    write_archive(tmp_path, range(2), height=6, width=6)
    source = RadarSource.from_settings("fake", settings(tmp_path))
    with pytest.raises(ValueError, match=r"'tiles' needs frames of at least 4 x 4 pixels on the grid, got 3 x 3"):
        load_source(source, frames_per_sequence=2, size=4, pixel_km=2.0)


# The real radar of pysteps' example data.


def _direct(root, importer, kwargs, path):
    """A frame read directly by its pysteps importer, in mm/h."""
    from pysteps.io import get_method
    from pysteps.utils import to_rainrate

    values, _, metadata = get_method(importer, "importer")(str(path), **kwargs)
    rain, _ = to_rainrate(np.ma.filled(np.ma.asarray(values, np.float64), np.nan), metadata)
    return rain


# pysteps' mch_gif importer leaves its GIF open (PIL's ResourceWarning, raised when collected).
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("name", "folder", "frames", "runs"),
    [("knmi", "KNMI", 92, [92]), ("mch", "mch", 120, [40, 40, 40])],
)
def test_real_pysteps_sources(pysteps_data_root, name, folder, frames, runs):
    pytest.importorskip("h5py" if name == "knmi" else "PIL")
    source = RadarSource.from_pysteps(name, pysteps_data_root / "radar" / folder)
    times = archive_times(source)
    assert len(times) == frames and [len(run) for run in archive_runs(source, times)] == runs
    first = times[0]
    data = load_source(
        source, frames_per_sequence=4, size=64, grid="crop", pixel_km=None, end=first + datetime.timedelta(minutes=15)
    )
    assert data.interval_minutes == 5.0 and data.rain.shape == (1, 4, 64, 64) and data.times == [first]
    path = next((pysteps_data_root / "radar" / folder).rglob(f"*{first:%H%M}*"))
    direct = _direct(pysteps_data_root, source.importer, source.importer_kwargs, path)
    top, left = (direct.shape[0] - 64) // 2, (direct.shape[1] - 64) // 2
    np.testing.assert_allclose(data.rain[0, 0], direct[top : top + 64, left : left + 64], rtol=1e-6)
    assert np.nanmin(data.rain) >= 0


def bom_c10_source(pysteps_data_root, tmp_path):
    path = tmp_path / "bom-c10.json"
    path.write_text(
        json.dumps(
            {
                "root_path": str(pysteps_data_root / "radar" / "bom"),
                "path_fmt": "prcp-c10/66/%Y/%m/%d",
                "fn_pattern": "66_%Y%m%d_%H%M00.prcp-c10",
                "fn_ext": "nc",
                "importer": "bom_rf3",
                "importer_kwargs": {"gzipped": False},
                "timestep": 10,
            }
        )
    )
    return RadarSource.from_json(path)


def test_real_bom_archive_through_a_json_source(pysteps_data_root, tmp_path):
    source = bom_c10_source(pysteps_data_root, tmp_path)
    times = archive_times(source)
    assert len(times) == 144 and [len(run) for run in archive_runs(source, times)] == [144]
    assert times[0] == datetime.datetime(2020, 10, 31) and times[-1] == datetime.datetime(2020, 10, 31, 23, 50)


@pytest.mark.slow  # pysteps' bom_rf3 importer takes seconds a file (it works out the grid's corners in Python)
def test_real_bom_frames_through_a_json_source(pysteps_data_root, tmp_path):
    pytest.importorskip("netCDF4")
    source = bom_c10_source(pysteps_data_root, tmp_path)
    times = archive_times(source)
    end = times[0] + datetime.timedelta(minutes=20)
    data = load_source(source, frames_per_sequence=3, size=64, pixel_km=2.0, end=end)
    # 512 x 512 pixels of 0.5 km: 128 x 128 of 2 km, 2 x 2 tiles.
    assert data.interval_minutes == 10.0 and data.rain.shape == (4, 3, 64, 64)
    first = next((pysteps_data_root / "radar" / "bom" / "prcp-c10").rglob(f"66_{times[0]:%Y%m%d_%H%M}00.prcp-c10.nc"))
    direct = _direct(pysteps_data_root, "bom_rf3", {"gzipped": False}, first)
    expected = direct.reshape(128, 4, 128, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(data.rain[0, 0], expected[:64, :64], rtol=1e-5)
    np.testing.assert_allclose(data.rain[3, 0], expected[64:, 64:], rtol=1e-5)
    assert 0 <= np.isnan(data.rain).mean() <= 0.5 and np.nanmax(data.rain) < 500
