"""`convlstm_jax.radar_files`: radar frames in HKO-7's PNG layout, read into sequences.

The frames are written here by OpenCV and Pillow (the readers and writers HKO-7's own code and most
radar tools use), at paths built from HKO-7's naming formula written out below, so the loader is held
to files it did not write; the writer is held to what OpenCV reads back.
"""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from convlstm_jax.data import RADAR_INTERVAL_MINUTES, dbz_to_pixels, pixels_to_dbz, rain_to_pixels
from convlstm_jax.radar_files import (
    find_hko_frames,
    hko_frame_path,
    hko_frame_time,
    load_hko_sequences,
    read_radar_png,
    save_hko_frames,
    write_radar_png,
)

cv2 = pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless) writes the reference files")
Image = pytest.importorskip("PIL.Image", reason="Pillow reads and writes radar PNG files")

START = datetime.datetime(2009, 3, 1, 23, 42)  # the sequences below cross midnight: two day folders
STEP = datetime.timedelta(minutes=6)


def hko_path(root, time):
    """HKO-7's `convert_datetime_to_filepath` (nowcasting/hko_iterator.py), written out."""
    # HKO-7's own formatting, kept as it is written there.
    name = "RAD%02d%02d%02d%02d%02d00.png" % (time.year - 2000, time.month, time.day, time.hour, time.minute)  # noqa: UP031
    return root / ("%04d" % time.year) / ("%02d" % time.month) / ("%02d" % time.day) / name  # noqa: UP031


def write_hko(root, frames, times):
    """Writes each frame with OpenCV at its HKO-7 path."""
    for frame, time in zip(frames, times):
        path = hko_path(root, time)
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), frame)


def random_frames(count, height=6, width=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, height, width), dtype=np.uint8)


# --- names and paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "time",
    [
        START,
        datetime.datetime(2000, 1, 1),
        datetime.datetime(2015, 12, 31, 23, 54),
        datetime.datetime(2099, 7, 4, 5, 6),
    ],
)
def test_paths_are_hko7s_and_names_give_back_the_time(tmp_path, time):
    assert hko_frame_path(tmp_path, time) == hko_path(tmp_path, time)
    assert hko_frame_time(hko_path(tmp_path, time)) == time


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: hko_frame_path("r", datetime.date(2009, 3, 1)),
            TypeError,
            "time must be a datetime.datetime, got date",
        ),
        (lambda: hko_frame_path("r", "2009-03-01"), TypeError, "got str"),
        (lambda: hko_frame_path(3, START), TypeError, "root must be a folder's path"),
        (lambda: hko_frame_path("r", datetime.datetime(1999, 12, 31)), ValueError, r"years 2000\.\.2099"),
        (lambda: hko_frame_path("r", datetime.datetime(2100, 1, 1)), ValueError, r"years 2000\.\.2099"),
        (lambda: hko_frame_path("r", START.replace(microsecond=5)), ValueError, "whole seconds"),
        (
            lambda: hko_frame_path("r", START.replace(tzinfo=datetime.timezone.utc)),
            ValueError,
            "naive datetime",
        ),
        (lambda: hko_frame_time("RAD0903012342.png"), ValueError, "not an HKO-7 frame name"),
        (lambda: hko_frame_time("frame.png"), ValueError, r"expected RADyymmddHHMMSS\.png"),
        (lambda: hko_frame_time("RAD091301234200.png"), ValueError, "names no valid time: month"),
        (lambda: hko_frame_time(None), TypeError, "path must be a file's path"),
    ],
)
def test_names_and_paths_refuse_what_they_cannot_hold(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- one frame ----------------------------------------------------------------------------------------


def test_a_frame_written_by_opencv_reads_as_its_pixels(tmp_path):
    frame = random_frames(1, 7, 9)[0]
    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    pixels = read_radar_png(tmp_path / "frame.png")
    assert pixels.dtype == np.uint8 and pixels.shape == (7, 9)
    np.testing.assert_array_equal(pixels, frame)


def test_the_writer_writes_8_bit_grayscale_that_opencv_reads_back(tmp_path):
    frame = random_frames(1, 7, 9, seed=1)[0]
    write_radar_png(tmp_path / "frame.png", frame[..., np.newaxis])  # (H, W, 1) as well as (H, W)
    back = cv2.imread(str(tmp_path / "frame.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and back.shape == (7, 9)  # one channel, 8 bits
    np.testing.assert_array_equal(back, frame)
    with Image.open(tmp_path / "frame.png") as image:
        assert (image.format, image.mode) == ("PNG", "L")


def test_gray_frames_stored_as_rgb_rgba_or_a_palette_read_the_same(tmp_path):
    frame = random_frames(1, 6, 8, seed=2)[0]
    cv2.imwrite(str(tmp_path / "rgb.png"), np.repeat(frame[..., np.newaxis], 3, axis=-1))
    rgba = np.concatenate([np.repeat(frame[..., np.newaxis], 3, axis=-1), np.full((6, 8, 1), 255, np.uint8)], -1)
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "palette.png")
    with Image.open(tmp_path / "palette.png") as image:
        assert image.mode == "P"
    for name in ("rgb.png", "rgba.png", "palette.png"):
        np.testing.assert_array_equal(read_radar_png(tmp_path / name), frame, err_msg=name)


def test_what_is_not_an_8_bit_gray_png_is_refused(tmp_path):
    frame = random_frames(1, 6, 8, seed=3)[0]
    colour = np.stack([frame, frame, frame], axis=-1)
    colour[2, 3, 0] ^= 1  # one pixel off gray
    cv2.imwrite(str(tmp_path / "colour.png"), colour)
    transparent = np.concatenate([np.repeat(frame[..., np.newaxis], 3, axis=-1), np.full((6, 8, 1), 255, np.uint8)], -1)
    transparent[0, 0, 3] = 254
    cv2.imwrite(str(tmp_path / "transparent.png"), transparent)
    cv2.imwrite(str(tmp_path / "sixteen.png"), frame.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "frame.jpg"), frame)
    (tmp_path / "text.png").write_text("not an image")
    cases = [
        ("colour.png", r"is a colour image \(its channels differ\)"),
        ("transparent.png", "has transparent pixels"),
        ("sixteen.png", r"has pixels of mode 'I;16'; radar frames are 8-bit grayscale"),
        ("frame.jpg", "is a JPEG image, expected a PNG"),
        ("text.png", "is not a readable image"),
    ]
    for name, match in cases:
        with pytest.raises(ValueError, match=match):
            read_radar_png(tmp_path / name)
    with pytest.raises(FileNotFoundError, match=r"No radar frame at .*absent\.png"):
        read_radar_png(tmp_path / "absent.png")


@pytest.mark.parametrize(
    ("pixels", "error", "match"),
    [
        (np.zeros((4, 4), np.float32), TypeError, r"must be uint8 pixels .* got float32"),
        ([[0, 1]], TypeError, "must be a NumPy uint8 array, got list"),
        (
            np.zeros((2, 4, 4), np.uint8),
            ValueError,
            r"one frame of shape \(H, W\) or \(H, W, 1\), got shape \(2, 4, 4\)",
        ),
        (np.zeros((0, 4), np.uint8), ValueError, r"got shape \(0, 4\)"),
    ],
)
def test_the_writer_refuses_what_is_not_one_frame_of_pixels(tmp_path, pixels, error, match):
    with pytest.raises(error, match=match):
        write_radar_png(tmp_path / "frame.png", pixels)
    assert not (tmp_path / "frame.png").exists()


# --- sequences ------------------------------------------------------------------------------------------


def test_sequences_are_the_stored_pixels_in_time_order(tmp_path):
    frames = random_frames(9)
    times = [START + k * STEP for k in range(9)]
    order = np.random.default_rng(1).permutation(9)  # written in another order than time's
    write_hko(tmp_path, frames[order], [times[k] for k in order])
    (tmp_path / "2009" / "notes.txt").write_text("not a frame")
    (tmp_path / "readme.png").write_bytes(b"not a frame either: not a RAD name")

    sequences, stamps = load_hko_sequences(tmp_path, 4)
    assert sequences.dtype == np.uint8 and sequences.shape == (2, 4, 6, 5, 1)
    np.testing.assert_array_equal(sequences[..., 0], frames[:8].reshape(2, 4, 6, 5))
    assert stamps.dtype == np.dtype("datetime64[s]") and stamps.shape == (2, 4)
    assert stamps.astype(datetime.datetime).tolist() == [times[0:4], times[4:8]]

    torch_layout, _ = load_hko_sequences(tmp_path, 4, channels_last=False)
    assert torch_layout.shape == (2, 4, 1, 6, 5)
    np.testing.assert_array_equal(torch_layout, np.moveaxis(sequences, -1, 2))


def test_a_sequence_never_spans_a_missing_frame(tmp_path):
    frames = random_frames(12, seed=4)
    times = [START + k * STEP for k in range(12)]
    kept = [k for k in range(12) if k not in (3, 9)]  # runs: 0-2, 4-8, 10-11
    write_hko(tmp_path, frames[kept], [times[k] for k in kept])

    sequences, stamps = load_hko_sequences(tmp_path, 3)
    assert stamps[:, 0].astype(datetime.datetime).tolist() == [times[0], times[4]]  # not 7-8-9, nor 10-11-12
    np.testing.assert_array_equal(sequences[..., 0], np.stack([frames[0:3], frames[4:7]]))

    _, every = load_hko_sequences(tmp_path, 3, stride=1)
    assert every[:, 0].astype(datetime.datetime).tolist() == [times[k] for k in (0, 4, 5, 6)]
    _, two = load_hko_sequences(tmp_path, 3, stride=2)
    assert two[:, 0].astype(datetime.datetime).tolist() == [times[k] for k in (0, 4, 6)]

    with pytest.raises(ValueError, match=r"No 6 consecutive frames 6 minutes apart among the 10 frames .* has 5\."):
        load_hko_sequences(tmp_path, 6)


def test_the_interval_start_and_end_choose_the_frames(tmp_path):
    frames = random_frames(10, seed=5)
    times = [START + k * datetime.timedelta(minutes=10) for k in range(10)]
    write_hko(tmp_path, frames, times)
    with pytest.raises(ValueError, match=r"No 2 consecutive frames 6 minutes apart .* has 1"):
        load_hko_sequences(tmp_path, 2)

    sequences, stamps = load_hko_sequences(tmp_path, 2, interval_minutes=10, start=times[3], end=times[8])
    assert stamps.astype(datetime.datetime).tolist() == [times[3:5], times[5:7], times[7:9]]
    np.testing.assert_array_equal(sequences[..., 0], frames[3:9].reshape(3, 2, 6, 5))
    assert [time for time, _ in find_hko_frames(tmp_path, start=times[3], end=times[8])] == times[3:9]
    with pytest.raises(FileNotFoundError, match=r"No HKO-7 frame .* between start="):
        load_hko_sequences(tmp_path, 2, start=times[9] + STEP)


def test_day_folders_are_optional(tmp_path):
    frames = random_frames(4, seed=6)
    for k, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / hko_path(tmp_path, START + k * STEP).name), frame)
    sequences, _ = load_hko_sequences(tmp_path, 4)
    np.testing.assert_array_equal(sequences[0, ..., 0], frames)


def test_saved_frames_read_back_as_they_were(tmp_path):
    rain = np.random.default_rng(7).gamma(0.5, 4.0, size=(6, 8, 8, 1))  # mm/h
    pixels = rain_to_pixels(rain)
    paths = save_hko_frames(tmp_path, pixels, START, interval_minutes=RADAR_INTERVAL_MINUTES)
    assert paths == [hko_path(tmp_path, START + k * STEP) for k in range(6)]
    for path, frame in zip(paths, pixels):
        np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), frame[..., 0])
    sequences, _ = load_hko_sequences(tmp_path, 6)
    np.testing.assert_array_equal(sequences[0], pixels)


def test_save_refuses_before_writing_anything(tmp_path):
    frames = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"years 2000\.\.2099"):  # the last frame is in 2100
        save_hko_frames(tmp_path, frames, datetime.datetime(2099, 12, 31, 23, 54))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match="must be uint8 pixels"):
        save_hko_frames(tmp_path, frames.astype(np.float32), START)
    with pytest.raises(ValueError, match=r"\(T, H, W\) or \(T, H, W, 1\), got shape \(4, 4\)"):
        save_hko_frames(tmp_path, frames[0], START)
    with pytest.raises(ValueError, match="interval_minutes must be a positive int, got 0"):
        save_hko_frames(tmp_path, frames, START, interval_minutes=0)
    assert list(tmp_path.iterdir()) == []


# --- crop and size ----------------------------------------------------------------------------------------


def test_crop_cuts_the_window_and_size_averages_blocks(tmp_path):
    rng = np.random.default_rng(8)
    # Each 2 x 3 block of the 8 x 12 window holds its mean six times over, shuffled: block means are exact.
    means = rng.integers(0, 256, size=(2, 4, 4))
    offsets = np.array([-2, -1, 0, 0, 1, 2])
    blocks = np.clip(
        means[..., np.newaxis] + rng.permuted(np.broadcast_to(offsets, (*means.shape, 6)), axis=-1), 0, 255
    )
    means = blocks.mean(axis=-1)  # where clipping moved a mean, the clipped one
    window = blocks.reshape(2, 4, 4, 2, 3).transpose(0, 1, 3, 2, 4).reshape(2, 8, 12).astype(np.uint8)
    frames = rng.integers(0, 256, size=(2, 11, 15), dtype=np.uint8)
    frames[:, 2:10, 1:13] = window
    write_hko(tmp_path, frames, [START, START + STEP])

    cropped, _ = load_hko_sequences(tmp_path, 2, crop=(2, 1, 8, 12))
    np.testing.assert_array_equal(cropped[0, ..., 0], window)
    reduced, _ = load_hko_sequences(tmp_path, 2, crop=(2, 1, 8, 12), size=(4, 4))
    assert reduced.shape == (1, 2, 4, 4, 1)
    exact = np.isclose(means, np.rint(means))
    np.testing.assert_array_equal(reduced[0, ..., 0][exact], means[exact])
    same, _ = load_hko_sequences(tmp_path, 2, size=(11, 15))
    np.testing.assert_array_equal(same[0, ..., 0], frames)


def test_the_papers_crop_and_size_agree_with_opencvs_area_resize(tmp_path):
    # Shi et al. 2015: the central 330 x 330 of each radar map, resized to 100 x 100; HKO-7 frames are 480 x 480.
    dbz = np.random.default_rng(9).uniform(-15, 65, size=(2, 480, 480))
    frames = dbz_to_pixels(dbz)
    write_hko(tmp_path, frames, [START, START + STEP])
    sequences, _ = load_hko_sequences(tmp_path, 2, crop=(75, 75, 330, 330), size=(100, 100))
    for loaded, frame in zip(sequences[0, ..., 0], frames):
        expected = cv2.resize(frame[75:405, 75:405], (100, 100), interpolation=cv2.INTER_AREA)
        assert int(np.abs(loaded.astype(int) - expected).max()) <= 1  # rounding of exact halves only
    # A non-square target: rows and columns each reduced by their own factor.
    tall, _ = load_hko_sequences(tmp_path, 2, size=(120, 96))
    expected = cv2.resize(frames[1], (96, 120), interpolation=cv2.INTER_AREA)
    assert int(np.abs(tall[0, 1, ..., 0].astype(int) - expected).max()) <= 1
    assert float(np.mean(pixels_to_dbz(tall[0, 1, ..., 0]))) == pytest.approx(
        float(np.mean(pixels_to_dbz(frames[1]))), abs=0.3
    )


# --- refusals --------------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    write_hko(tmp_path, random_frames(4, seed=10), [START + k * STEP for k in range(4)])
    return tmp_path


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_frames": 0}, ValueError, "num_frames must be a positive int, got 0"),
        ({"num_frames": 2.0}, TypeError, "num_frames must be an int, got float"),
        ({"num_frames": 2, "stride": 0}, ValueError, "stride must be a positive int, got 0"),
        ({"num_frames": 2, "interval_minutes": True}, TypeError, "interval_minutes must be an int, got bool"),
        ({"num_frames": 2, "crop": (0, 0, 4)}, TypeError, r"crop must be \(top, left, height, width\)"),
        ({"num_frames": 2, "crop": (0, -1, 4, 4)}, ValueError, "crop's left must be an int >= 0, got -1"),
        ({"num_frames": 2, "crop": (0, 0, 0, 4)}, ValueError, "crop's height must be a positive int, got 0"),
        ({"num_frames": 2, "size": 4}, TypeError, r"size must be \(height, width\)"),
        ({"num_frames": 2, "size": (4, 0)}, ValueError, "size's width must be a positive int, got 0"),
        ({"num_frames": 2, "channels_last": 1}, TypeError, "channels_last must be a bool, got int"),
        ({"num_frames": 2, "start": "2009-03-01"}, TypeError, "start must be a datetime.datetime, got str"),
        ({"num_frames": 2, "start": START + STEP, "end": START}, ValueError, "end must not be before start"),
        (
            {"num_frames": 2, "crop": (1, 0, 6, 5)},
            ValueError,
            r"crop .*=\(1, 0, 6, 5\) does not fit in frames of 6 x 5",
        ),
        ({"num_frames": 2, "size": (7, 5)}, ValueError, r"size=\(7, 5\) is larger than the frames, 6 x 5"),
        ({"num_frames": 2, "crop": (0, 0, 3, 3), "size": (3, 4)}, ValueError, "larger than the cropped frames, 3 x 3"),
    ],
)
def test_bad_arguments_are_refused_by_name(folder, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_hko_sequences(folder, **kwargs)


def test_what_the_folder_holds_is_checked(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match=r"No radar folder at .*absent"):
        load_hko_sequences(tmp_path / "absent", 2)
    with pytest.raises(TypeError, match="root must be a folder's path"):
        load_hko_sequences(None, 2)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"No HKO-7 frame \(RADyymmddHHMMSS\.png\) under"):
        load_hko_sequences(empty, 2)

    other = hko_path(folder, START + 4 * STEP)
    cv2.imwrite(str(other), random_frames(1, 6, 6)[0])
    with pytest.raises(ValueError, match=r"Radar frames differ in size: .*RAD090302000600\.png is 6 x 6, .* 6 x 5"):
        load_hko_sequences(folder, 5)
    other.unlink()

    copy = folder / "copy" / hko_path(folder, START).name
    copy.parent.mkdir()
    copy.write_bytes(hko_path(folder, START).read_bytes())
    with pytest.raises(ValueError, match=r"Two frames of 2009-03-01T23:42:00"):
        load_hko_sequences(folder, 2)
    copy.unlink()

    (folder / "RAD0903012342.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"'RAD0903012342\.png' is not an HKO-7 frame name"):
        load_hko_sequences(folder, 2)


# --- into both frameworks ------------------------------------------------------------------------------------


@pytest.mark.needs_torch
def test_loaded_frames_run_alike_in_the_torch_reference_and_the_linen_model(folder, capsys):
    torch = pytest.importorskip("torch")
    import jax
    import jax.numpy as jnp

    import convlstm_torch
    from convlstm_jax import ConvLSTM, torch_to_flax
    from convlstm_jax.data import to_unit
    from parity_tests.tolerance import tolerance_for

    for_torch, _ = load_hko_sequences(folder, 4, channels_last=False)  # (N, T, 1, H, W)
    for_jax, _ = load_hko_sequences(folder, 4)  # (N, T, H, W, 1)
    torch.manual_seed(0)
    reference = convlstm_torch.ConvLSTM(1, 3, 3, 1, batch_first=True).eval()
    with torch.no_grad():
        expected, _ = reference(torch.from_numpy(to_unit(for_torch)))
    model = ConvLSTM(1, 3, 3, 1, batch_first=True)
    variables = torch_to_flax({key: value.numpy() for key, value in reference.state_dict().items()}, model)
    with jax.default_matmul_precision("highest"):
        outputs, _ = model.apply(variables, jnp.asarray(to_unit(for_jax)))
    score = tolerance_for("float32").score(np.moveaxis(np.asarray(outputs[0]), -1, 2), expected[0].numpy())
    with capsys.disabled():
        print(f"\nradar frames through the torch reference vs Linen: worst score {score:.3g} (<= 1 passes)")
    assert score <= 1
