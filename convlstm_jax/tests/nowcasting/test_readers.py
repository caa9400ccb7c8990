"""`convlstm_jax.nowcasting.readers`: load_radar_pngs, radar_png_times and save_radar_pngs."""

import datetime
import importlib.util
import sys

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="the radar PNGs are read and written with OpenCV (opencv-python-headless)")

from convlstm_jax.nowcasting import (  # noqa: E402
    RADAR_INTERVAL_MINUTES,
    rain_to_pixels,
    readers,
)
from convlstm_jax.nowcasting.readers import (  # noqa: E402
    HKO7_FILENAME_FORMAT,
    load_radar_pngs,
    radar_png_times,
    save_radar_pngs,
)

START = datetime.datetime(2015, 6, 30, 23, 42)  # sequences from here cross midnight and a month's end
STEP = datetime.timedelta(minutes=RADAR_INTERVAL_MINUTES)


def random_frames(count, height=12, width=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, height, width), dtype=np.uint8)


def frame_path(folder, time, filename_format=HKO7_FILENAME_FORMAT):
    return folder / f"{time:%Y}" / f"{time:%m}" / f"{time:%d}" / time.strftime(filename_format)


def write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def save_at(frames, folder, steps):
    """Saves frame i at START + steps[i] intervals, one file at a time, in the order given."""
    for frame, k in zip(frames, steps):
        save_radar_pngs(frame[np.newaxis], folder, START + k * STEP)


def test_round_trip_bit_for_bit_in_hko7_layout(tmp_path):
    frames = random_frames(8)
    paths = save_radar_pngs(frames[..., np.newaxis], tmp_path, START)
    # HKO-7's radarPNG/YYYY/MM/DD/RADyymmddHHMM00.png (nowcasting/hko_iterator.py).
    assert [p.relative_to(tmp_path).as_posix() for p in paths[:4]] == [
        "2015/06/30/RAD150630234200.png",
        "2015/06/30/RAD150630234800.png",
        "2015/06/30/RAD150630235400.png",
        "2015/07/01/RAD150701000000.png",
    ]
    assert paths == [frame_path(tmp_path, START + k * STEP) for k in range(8)]
    sequences = load_radar_pngs(tmp_path, frames_per_sequence=4)
    assert sequences.shape == (2, 4, 12, 12, 1)
    assert sequences.dtype == np.uint8
    np.testing.assert_array_equal(sequences[..., 0], frames.reshape(2, 4, 12, 12))
    assert radar_png_times(tmp_path, frames_per_sequence=4) == [START, START + 4 * STEP]
    for path, frame in zip(paths, frames):  # the files themselves hold the pixels
        np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), frame)


def test_round_trip_of_the_radar_encoding_and_another_interval(tmp_path):
    frames = rain_to_pixels(np.random.default_rng(1).gamma(0.5, 4.0, size=(6, 12, 12)))
    save_radar_pngs(frames, tmp_path, START, interval_minutes=2.5)  # 150 s: the seconds are in the names
    sequences = load_radar_pngs(tmp_path, frames_per_sequence=3, interval_minutes=2.5)
    np.testing.assert_array_equal(sequences[..., 0], frames.reshape(2, 3, 12, 12))
    # At the default 6 minutes, frames 2.5 minutes apart are all gaps.
    with pytest.raises(ValueError, match="the longest run has 1 frames"):
        load_radar_pngs(tmp_path, frames_per_sequence=3)


def test_gaps_split_runs_and_no_sequence_spans_one(tmp_path):
    frames = random_frames(12)
    # Step 5 is missing; the last frame is 7 minutes after the one before: off the 6-minute step.
    save_at(frames[:11], tmp_path, [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11])
    save_radar_pngs(frames[11:], tmp_path, START + 11 * STEP + datetime.timedelta(minutes=7))
    sequences = load_radar_pngs(tmp_path, frames_per_sequence=2)
    times = radar_png_times(tmp_path, frames_per_sequence=2)
    # Runs: frames 0-4 (5 frames), 5-10 (6 frames), 11 alone.
    assert times == [START + k * STEP for k in (0, 2, 6, 8, 10)]
    np.testing.assert_array_equal(sequences[..., 0], frames[[[0, 1], [2, 3], [5, 6], [7, 8], [9, 10]]])
    with pytest.raises(ValueError, match="the longest run has 6 frames"):
        load_radar_pngs(tmp_path, frames_per_sequence=7)
    assert radar_png_times(tmp_path, frames_per_sequence=5) == [START, START + 6 * STEP]


def test_stride(tmp_path):
    frames = random_frames(7)
    save_radar_pngs(frames, tmp_path, START)
    for stride, starts in [(1, [0, 1, 2, 3, 4]), (2, [0, 2, 4]), (4, [0, 4]), (5, [0]), (None, [0, 3])]:
        sequences = load_radar_pngs(tmp_path, frames_per_sequence=3, stride=stride)
        expected = np.stack([frames[s : s + 3] for s in starts])
        np.testing.assert_array_equal(sequences[..., 0], expected, err_msg=f"stride={stride}")
        times = radar_png_times(tmp_path, frames_per_sequence=3, stride=stride)
        assert times == [START + s * STEP for s in starts]


def test_each_used_frame_is_read_once_and_unused_frames_not_at_all(tmp_path, monkeypatch):
    frames = random_frames(7)
    paths = save_radar_pngs(frames[:6], tmp_path, START)
    paths += save_radar_pngs(frames[6:], tmp_path, START + 8 * STEP)  # alone, after a gap
    # Sequences of 3 every 2 frames use frames 0-4, frame 2 twice; broken files at 5 and 6 are never read.
    paths[5].write_text("not a PNG")
    paths[6].write_text("not a PNG")
    read = []
    imread = cv2.imread
    monkeypatch.setattr(cv2, "imread", lambda path, flags: read.append(path) or imread(path, flags))
    sequences = load_radar_pngs(tmp_path, frames_per_sequence=3, stride=2)
    np.testing.assert_array_equal(sequences[..., 0], frames[[[0, 1, 2], [2, 3, 4]]])
    assert sorted(read) == [str(p) for p in paths[:5]]


def test_resize(tmp_path):
    frames = random_frames(4)
    save_radar_pngs(frames, tmp_path, START)
    sequences = load_radar_pngs(tmp_path, frames_per_sequence=2, size=5)
    assert sequences.shape == (2, 2, 5, 5, 1)
    expected = np.stack([cv2.resize(f, (5, 5), interpolation=cv2.INTER_AREA) for f in frames]).reshape(2, 2, 5, 5)
    np.testing.assert_array_equal(sequences[..., 0], expected)
    upscaled = load_radar_pngs(tmp_path, frames_per_sequence=4, size=16)
    assert upscaled.shape == (1, 4, 16, 16, 1)
    expected = np.stack([cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA) for f in frames])
    np.testing.assert_array_equal(upscaled[0, ..., 0], expected)
    np.testing.assert_array_equal(load_radar_pngs(tmp_path, frames_per_sequence=4, size=12)[0, ..., 0], frames)


def test_other_files_are_ignored(tmp_path):
    frames = random_frames(4)
    save_radar_pngs(frames, tmp_path, START)
    day = frame_path(tmp_path, START).parent
    (day / "notes.txt").write_text("not a frame")
    (day / START.strftime("RAD%y%m%d%H%M%S.mask")).write_bytes(b"\x00")  # HKO-7's masks are named alike
    write(day / "preview.png", np.zeros((3, 3, 3), np.uint8))  # a colour image: refused if it were read
    backup = tmp_path / "elsewhere" / START.strftime("RAD%y%m%d%H%M%S.png.bak")
    backup.parent.mkdir()
    backup.write_bytes(cv2.imencode(".png", np.zeros((3, 3), np.uint8))[1].tobytes())
    np.testing.assert_array_equal(load_radar_pngs(tmp_path, frames_per_sequence=4)[0, ..., 0], frames)


def test_time_order_does_not_depend_on_write_or_path_order(tmp_path):
    frames = random_frames(6)
    order = [4, 1, 5, 0, 3, 2]
    # Day first: 01-07-2015 sorts before 30-06-2015 by name; each frame is written on its own.
    filename_format = "frame_%d-%m-%Y_%H%M.png"
    layout, flat = tmp_path / "layout", tmp_path / "flat"
    for k in order:
        save_radar_pngs(frames[k : k + 1], layout, START + k * STEP, filename_format=filename_format)
        write(flat / (START + k * STEP).strftime(filename_format), frames[k])
    for folder in (layout, flat):
        sequences = load_radar_pngs(folder, frames_per_sequence=6, filename_format=filename_format)
        np.testing.assert_array_equal(sequences[0, ..., 0], frames)


def test_duplicate_times_are_left_out_with_a_warning(tmp_path):
    frames = random_frames(7)
    save_radar_pngs(frames, tmp_path, START)
    write(tmp_path / "copy" / (START + 3 * STEP).strftime(HKO7_FILENAME_FORMAT), frames[0])
    with pytest.warns(UserWarning, match=r"2 radar files share a time .*left out.*copy"):
        sequences = load_radar_pngs(tmp_path, frames_per_sequence=3)
    # Step 3 is left out: runs 0-2 and 4-6.
    np.testing.assert_array_equal(sequences[..., 0], frames[[[0, 1, 2], [4, 5, 6]]])
    with pytest.warns(UserWarning, match="share a time"):
        assert radar_png_times(tmp_path, frames_per_sequence=3) == [START, START + 4 * STEP]


def test_frames_that_are_not_single_channel_8_bit_are_refused(tmp_path):
    save_radar_pngs(random_frames(3), tmp_path, START)
    path = frame_path(tmp_path, START + STEP)
    write(path, np.zeros((12, 12, 3), np.uint8))
    with pytest.raises(ValueError, match=r"single-channel 8-bit .* 3 channel\(s\) of uint8 .*RAD150630234800\.png"):
        load_radar_pngs(tmp_path, frames_per_sequence=3)
    write(path, np.zeros((12, 12), np.uint16))
    with pytest.raises(ValueError, match=r"single-channel 8-bit .* 1 channel\(s\) of uint16 .*RAD150630234800\.png"):
        load_radar_pngs(tmp_path, frames_per_sequence=3)
    path.write_text("not a PNG")
    with pytest.raises(ValueError, match=r"could not read .*RAD150630234800\.png"):
        load_radar_pngs(tmp_path, frames_per_sequence=3)


def test_frames_of_different_sizes_and_non_square_resizes_are_refused(tmp_path):
    squares = tmp_path / "squares"
    save_radar_pngs(random_frames(3), squares, START)
    write(frame_path(squares, START + 2 * STEP), random_frames(1, 12, 10)[0])
    different = r"one size: .*RAD150630235400\.png' is 12 x 10, .*RAD150630234200\.png' 12 x 12"
    with pytest.raises(ValueError, match=different):
        load_radar_pngs(squares, frames_per_sequence=3)
    rectangles = random_frames(2, 12, 10)
    save_radar_pngs(rectangles, tmp_path / "rectangles", START)
    sequences = load_radar_pngs(tmp_path / "rectangles", frames_per_sequence=2)  # kept as they are
    np.testing.assert_array_equal(sequences[0, ..., 0], rectangles)
    with pytest.raises(ValueError, match=r"size=6 resizes square frames, got 12 x 10 in .*RAD150630234200\.png"):
        load_radar_pngs(tmp_path / "rectangles", frames_per_sequence=2, size=6)


def test_folders_without_frames_or_a_full_sequence_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No radar folder at .*absent"):
        load_radar_pngs(tmp_path / "absent", frames_per_sequence=2)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match=r"'.*file' is not a folder"):
        load_radar_pngs(tmp_path / "file", frames_per_sequence=2)
    write(tmp_path / "empty" / "image.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"No file under .*empty' is named as filename_format='RAD%y%m%d%H%M%S"):
        load_radar_pngs(tmp_path / "empty", frames_per_sequence=2)
    save_at(random_frames(5), tmp_path / "short", [0, 1, 2, 4, 5])
    short = r"No 4 consecutive frames 6 minutes apart .* the longest run has 3 frames \(5 files"
    with pytest.raises(ValueError, match=short):
        load_radar_pngs(tmp_path / "short", frames_per_sequence=4)
    with pytest.raises(ValueError, match="the longest run has 3 frames"):
        radar_png_times(tmp_path / "short", frames_per_sequence=4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"frames_per_sequence": 0}, ValueError, "frames_per_sequence must be a positive int, got 0"),
        ({"frames_per_sequence": 2.0}, TypeError, "frames_per_sequence must be an int, got float"),
        ({"frames_per_sequence": 2, "stride": 0}, ValueError, "stride must be a positive int, got 0"),
        ({"frames_per_sequence": 2, "size": 0}, ValueError, "size must be a positive int, got 0"),
        ({"frames_per_sequence": 2, "size": "8"}, TypeError, "size must be an int, got str"),
        ({"frames_per_sequence": 2, "interval_minutes": 0}, ValueError, "positive number of minutes, got 0"),
        ({"frames_per_sequence": 2, "interval_minutes": float("nan")}, ValueError, "positive number of minutes"),
        ({"frames_per_sequence": 2, "interval_minutes": True}, TypeError, "a number of minutes, got bool"),
        ({"frames_per_sequence": 2, "filename_format": "frame.png"}, ValueError, "strptime directives"),
        ({"frames_per_sequence": 2, "filename_format": "%Y/%m.png"}, ValueError, "without folders"),
        ({"frames_per_sequence": 2, "filename_format": b"%Y.png"}, TypeError, "filename_format must be a str"),
    ],
)
def test_the_loader_refuses_bad_arguments(tmp_path, kwargs, error, match):
    save_radar_pngs(random_frames(4), tmp_path, START)
    with pytest.raises(error, match=match):
        load_radar_pngs(tmp_path, **kwargs)
    with pytest.raises(TypeError, match=r"folder must be a path .* got int"):
        load_radar_pngs(3, frames_per_sequence=2)


@pytest.mark.parametrize(
    ("frames", "kwargs", "error", "match"),
    [
        ([[[0]]], {}, TypeError, "frames must be a NumPy array, got list"),
        (np.zeros((2, 4, 4), np.float32), {}, TypeError, "frames must be uint8 .* got float32"),
        (np.zeros((4, 4), np.uint8), {}, ValueError, r"\(T, H, W\) or \(T, H, W, 1\).* got \(4, 4\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), {}, ValueError, r"got \(2, 4, 4, 3\)"),
        (np.zeros((0, 4, 4), np.uint8), {}, ValueError, r"no empty axis, got \(0, 4, 4\)"),
        (np.zeros((2, 4, 4), np.uint8), {"start": datetime.date(2015, 6, 1)}, TypeError, "got date"),
        (np.zeros((2, 4, 4), np.uint8), {"interval_minutes": -6}, ValueError, "positive number of minutes"),
        (np.zeros((2, 4, 4), np.uint8), {"filename_format": "RAD%y%m%d%H%M.tif"}, ValueError, "end in .png"),
        # Without seconds, 2.5 minutes apart cannot be told from the names.
        (np.zeros((2, 4, 4), np.uint8), {"interval_minutes": 2.5, "filename_format": "RAD%y%m%d%H%M.png"}, ValueError,
         r"does not keep the time of frame 1: 2015-06-30T23:44:30 is named 'RAD1506302344\.png'"),
    ],
)  # fmt: skip
def test_the_writer_refuses_bad_input_and_writes_nothing(tmp_path, frames, kwargs, error, match):
    kwargs = {"start": START, **kwargs}
    with pytest.raises(error, match=match):
        save_radar_pngs(frames, tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_the_writer_does_not_overwrite(tmp_path):
    frames = random_frames(3)
    save_radar_pngs(frames[2:], tmp_path, START + 2 * STEP)
    with pytest.raises(FileExistsError, match=r"1 of the files .*/RAD150630235400\.png'; nothing was written"):
        save_radar_pngs(np.zeros_like(frames), tmp_path, START)
    assert not frame_path(tmp_path, START).exists()
    kept = cv2.imread(str(frame_path(tmp_path, START + 2 * STEP)), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(kept, frames[2])


def test_the_module_imports_and_plans_without_opencv(tmp_path, monkeypatch):
    save_radar_pngs(random_frames(4), tmp_path, START)
    monkeypatch.setitem(sys.modules, "cv2", None)
    spec = importlib.util.spec_from_file_location("convlstm_jax.nowcasting.readers_without_cv2", readers.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.radar_png_times(tmp_path, frames_per_sequence=2) == [START, START + 2 * STEP]
    with pytest.raises(ImportError):
        module.load_radar_pngs(tmp_path, frames_per_sequence=2)


# HKO-7's own Z-R relation and masks.


def test_hko7_pixels_are_read_with_hko7_z_r():
    from convlstm_jax.nowcasting.units import HKO7_ZR_A, HKO7_ZR_B, pixels_to_rain

    assert (HKO7_ZR_A, HKO7_ZR_B) == (58.53, 1.56)
    pixels = np.array([0.0, 50.0, 103.0, 200.0, 255.0, np.nan])
    dbz = -10 + 70 * pixels / 255
    expected = np.where(pixels > 0, (10 ** (dbz / 10) / 58.53) ** (1 / 1.56), 0.0)
    expected[np.isnan(pixels)] = np.nan
    np.testing.assert_allclose(pixels_to_rain(pixels, HKO7_ZR_A, HKO7_ZR_B), expected, rtol=1e-5)
    assert np.isnan(pixels_to_rain(pixels)[-1])  # missing stays missing


def test_rain_to_pixel_values_keeps_missing_and_reads_back():
    from convlstm_jax.nowcasting.units import pixels_to_rain, rain_to_pixel_values

    rain = np.array([0.0, 0.5, 2.0, 10.0, np.nan], np.float32)
    pixels = rain_to_pixel_values(rain)
    assert pixels.dtype == np.float32 and np.isnan(pixels[-1])
    np.testing.assert_allclose(pixels_to_rain(pixels)[:-1], rain[:-1], rtol=1e-4)
    np.testing.assert_allclose(np.rint(pixels[:-1]), rain_to_pixels(rain[:-1]))


def write_hko7_mask(path, valid):
    """A mask as HKO-7 stores it (nowcasting/mask.py): zlib-compressed booleans, True where the pixel is used."""
    import zlib

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zlib.compress(np.asarray(valid, bool).tobytes(), 2))


def test_hko7_rain_with_masks(tmp_path):
    from convlstm_jax.nowcasting.readers import load_hko7_rain

    frames = random_frames(4, seed=3)
    save_radar_pngs(frames, tmp_path / "radarPNG", START)
    valid = np.ones((12, 12), bool)
    valid[:3, :5] = False
    # HKO-7's radarPNG_mask/YYYY/MM/DD/RADyymmddHHMM00.mask, beside radarPNG; frame 2 has none.
    for k in (0, 1, 3):
        time = START + k * STEP
        write_hko7_mask(tmp_path / "radarPNG_mask" / f"{time:%Y/%m/%d}" / f"{time:RAD%y%m%d%H%M00}.mask", valid)
    rain = load_hko7_rain(tmp_path / "radarPNG", frames_per_sequence=2)
    assert rain.shape == (2, 2, 12, 12) and rain.dtype == np.float32
    dbz = -10 + 70 * frames.astype(np.float64) / 255
    expected = np.where(frames > 0, (10 ** (dbz / 10) / 58.53) ** (1 / 1.56), 0).reshape(2, 2, 12, 12)
    missing = np.isnan(rain)
    assert missing[0, 0, :3, :5].all() and missing.sum() == 3 * 15
    assert not missing[1, 0].any()  # frame 2: no mask file
    np.testing.assert_allclose(rain[~missing], expected[~missing], rtol=1e-5)
    # Without masks (an explicit folder that does not hold them), nothing is missing.
    assert not np.isnan(load_hko7_rain(tmp_path / "radarPNG", frames_per_sequence=2, mask_folder=False)).any()


def test_hko7_rain_resized_keeps_missing_blocks(tmp_path):
    from convlstm_jax.nowcasting.readers import load_hko7_rain

    frames = random_frames(2, seed=4)
    save_radar_pngs(frames, tmp_path / "radarPNG", START)
    valid = np.ones((12, 12), bool)
    valid[0, 0] = False
    for k in range(2):
        time = START + k * STEP
        write_hko7_mask(tmp_path / "radarPNG_mask" / f"{time:%Y/%m/%d}" / f"{time:RAD%y%m%d%H%M00}.mask", valid)
    rain = load_hko7_rain(tmp_path / "radarPNG", frames_per_sequence=2, size=4)
    assert rain.shape == (1, 2, 4, 4)
    assert np.isnan(rain[0, :, 0, 0]).all() and np.isnan(rain).sum() == 2


def test_a_mask_of_another_size_is_refused(tmp_path):
    from convlstm_jax.nowcasting.readers import load_hko7_rain

    save_radar_pngs(random_frames(2), tmp_path / "radarPNG", START)
    write_hko7_mask(tmp_path / "radarPNG_mask" / f"{START:%Y/%m/%d}" / f"{START:RAD%y%m%d%H%M00}.mask", np.ones((5, 5)))
    with pytest.raises(ValueError, match=r"RAD150630234200\.mask' holds 25 pixels, not the 12 x 12 of its frame"):
        load_hko7_rain(tmp_path / "radarPNG", frames_per_sequence=2)
