# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Precipitation nowcasting with a ConvLSTM
#
# Shi et al. 2015 (Sec. 4.2) introduced the ConvLSTM to forecast radar echoes: from the last 5
# radar maps, 6 minutes apart, forecast the next 15 (up to 90 minutes ahead), and compare with
# the optical-flow extrapolation that weather services use. This notebook follows that experiment
# on synthetic radar made offline:
#
# 1. the data: rain fields moved by winds, growing and decaying, shown with pysteps' radar colour
#    scale; rain rate, reflectivity and HKO-7's pixels;
# 2. the baselines: pysteps' persistence and optical flow, the motion field they extrapolate along,
#    and their scores (CSI, POD, FAR, HSS, MSE, correlation) per lead time;
# 3. training the encoder-forecaster on the radar (`train(TrainConfig.from_preset("radar", ...))`);
# 4. its skill against the baselines: the table, the CSI against lead time, forecast strips;
# 5. radar files of one's own, in HKO-7's PNG layout.
#
# Nothing is downloaded. `convlstm-train --data radar` runs steps 3 and 4 from the command line.
# The baselines and scores are pysteps' (`convlstm_jax.nowcasting`): the `nowcast` extra,
# `pip install "convlstm-jax[nowcast]"`.

# %%
import contextlib
import datetime
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from convlstm_jax.nowcasting import (
    DB_THRESHOLD,
    DB_ZERO_VALUE,
    RADAR_INTERVAL_MINUTES,
    baselines,
    load_radar_pngs,
    pixels_to_rain,
    plot_radar_forecasts,
    plot_skill,
    radar_png_times,
    rain_to_dbz,
    rain_to_pixels,
    save_radar_pngs,
    skill_table,
    synthetic_radar,
    verify,
)
from convlstm_jax.training import TrainConfig, load_data, train

with contextlib.redirect_stdout(io.StringIO()):  # pysteps prints where its configuration file is
    import pysteps

# %% tags=["parameters"]
SMALL = os.environ.get("CONVLSTM_NOTEBOOK_SMALL") == "1"  # smaller sizes, for the test suite
# Full size: the preset `radar`, as `convlstm-train --data radar` trains.
# Small: a tiny model, a few steps; it shows every step of the run but learns next to nothing.
RUN = (
    dict(
        spec="ConvLSTM(3x3)-3x3-8",
        size=32,
        input_frames=5,
        output_frames=10,
        train_sequences=16,
        val_sequences=4,
        batch_size=4,
        steps=10,
        eval_every=0,
        checkpoint_every=0,
    )
    if SMALL
    else {}
)
SEQUENCES = 4 if SMALL else 16  # the sequences of the data and baseline sections
INPUT_FRAMES, LEAD_TIMES = 5, 15  # the paper's: 30 minutes in, 90 minutes ahead
SEED = 0
work = tempfile.TemporaryDirectory(prefix="convlstm_nowcast_")
WORK = Path(work.name)

# %% [markdown]
# ## 1. The data
#
# `synthetic_radar` makes sequences of rain rate in mm/h, float32 `(N, T, H, W)`, one frame every
# `RADAR_INTERVAL_MINUTES` = 6 minutes. Its docstring gives the physics; in short:
#
# - rain is where a Gaussian field with a power-law spectrum (as radar rain fields have) exceeds a
#   threshold, so that about 35 % of the area is wet, with cores of 10-50 mm/h;
# - a mean wind of 1-3 pixels a frame, which turns slowly, plus a vortex and a smooth random flow,
#   carries the rain (semi-Lagrangian advection);
# - every scale changes while it moves, small cells faster than large systems, and a smooth growth
#   field makes rain grow in some regions and decay in others;
# - the frame is cut from a larger domain, so rain enters and leaves through its edges.
#
# pysteps' colour scale for rain rate (the one of its radar figures) draws them; white is dry.

# %%
rain = synthetic_radar(SEQUENCES, INPUT_FRAMES + LEAD_TIMES, seed=SEED)
wet = rain[rain > 0]
print(f"rain {rain.shape} {rain.dtype}: {wet.size / rain.size:.0%} of the pixels wet")
print("wet pixels, percentiles 50, 90, 99:", np.round(np.percentile(wet, [50, 90, 99]), 1), "mm/h")

with warnings.catch_warnings():
    # pysteps colours beyond the scale with Colormap.set_over etc., which recent matplotlib marks
    # for deprecation; the colour map is the same.
    warnings.filterwarnings("ignore", message=r"The set_(over|under|bad) function")
    CMAP, NORM, LEVELS, LABELS = pysteps.visualization.precipfields.get_colormap("intensity", "mm/h", "pysteps")


def show_rain(rows, labels, frames, title=None):
    """Draws the given frames of each row (T, H, W) of rain rates in mm/h, with pysteps' colours."""
    fig, axes = plt.subplots(
        len(rows), len(frames), figsize=(1.3 * len(frames) + 1.6, 1.3 * len(rows) + 0.5), squeeze=False
    )
    for row_axes, row, label in zip(axes, rows, labels):
        for ax, t in zip(row_axes, frames):
            image = ax.imshow(row[t], cmap=CMAP, norm=NORM, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        row_axes[0].set_ylabel(label, fontsize=9)
    for ax, t in zip(axes[0], frames):
        ax.set_title(f"{t * RADAR_INTERVAL_MINUTES} min", fontsize=8)
    bar = fig.colorbar(image, ax=axes, ticks=LEVELS, extend="max", fraction=0.04, aspect=30)
    bar.ax.set_yticklabels(LABELS, fontsize=7)
    bar.set_label("rain rate (mm/h)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    plt.show()


every_third = list(range(0, INPUT_FRAMES + LEAD_TIMES, 3))
show_rain(rain[:3], [f"sequence {n}" for n in range(3)], every_third, "Synthetic radar, every third frame")

# %% [markdown]
# ### Rain rate, reflectivity and HKO-7's pixels
#
# A radar measures reflectivity Z; rain rate R follows from the Z-R relation Z = 200 R^1.6
# (Marshall and Palmer, pysteps' default), in decibels dBZ = 10 log10(Z). The HKO-7 benchmark
# (Shi et al. 2017, the Hong Kong radar that followed the paper's) stores each map as an 8-bit PNG
# with pixel = 255 (dBZ + 10) / 70: 0 to 255 span -10 to 60 dBZ, about 0.01 to 205 mm/h. The model
# trains on such pixels (divided by 255), as it would on real radar; `pixels_to_rain` turns its
# forecasts back into rain rates for scoring.

# %%
rates = np.array([0.1, 0.5, 2.0, 5.0, 10.0, 30.0, 100.0], np.float32)
pixels = rain_to_pixels(rates)
print(f"{'mm/h':>8}{'dBZ':>8}{'pixel':>7}{'back, mm/h':>12}")
for rate, dbz, pixel, back in zip(rates, rain_to_dbz(rates), pixels, pixels_to_rain(pixels)):
    print(f"{rate:8.1f}{dbz:8.1f}{pixel:7d}{back:12.2f}")

frames = rain_to_pixels(rain)  # uint8, as the training run makes its sequences
error = np.abs(pixels_to_rain(frames) - rain)[rain > 0] / rain[rain > 0]
print(f"training frames {frames.shape} {frames.dtype}; a pixel is 70/255 = {70 / 255:.2f} dB,")
print(f"so the rain rates come back within {error.max():.1%} (median {np.median(error):.1%})")

# %% [markdown]
# ### One knob: growth
#
# `growth` is how fast rain grows or decays where it is, in standard deviations of the field a
# frame. Growth acts from before the first frame (during the `SPIN_UP` frames the sequences start
# after), so sequences of the same seed and another growth differ from their first frame on; with
# more growth the rain fades in some places and appears in others while it moves. No extrapolation of motion can see
# that. The other knobs (`speed`, `turning`, `rotation`, `wind_variability`, `lifetime`,
# `wet_fraction`, `spectral_slope`) are described in `synthetic_radar`'s docstring.

# %%
growths = (0.0, 0.05, 0.2)
grown = [synthetic_radar(1, INPUT_FRAMES + LEAD_TIMES, growth=g, seed=SEED)[0] for g in growths]
labels = [f"growth {g}" + (" (default)" if g == 0.05 else "") for g in growths]
show_rain(grown, labels, every_third, "The first sequence with more or less growth")

# %% [markdown]
# ## 2. The baselines
#
# A nowcast must beat two forecasts that need no training (`convlstm_jax.nowcasting`, computed by
# pysteps):
#
# - **persistence**: the last observed frame, frozen. Right where nothing moves or changes.
# - **optical flow**: a motion field estimated from the last 3 frames (pysteps' Lucas-Kanade, on
#   the rain in dB), along which the last frame is moved, semi-Lagrangian, for each lead time: the
#   method of operational nowcasts and of the paper's ROVER baseline. It assumes the motion stays
#   as it is and the rain neither grows nor decays, and it has no rain to bring in from beyond
#   the frame's edge: where the wind blows in, no trajectory starts inside the frame, and its
#   forecast there is NaN (missing, pysteps' convention), not rain and not dry.
#
# Here is the motion field of the first sequence, as `optical_flow` estimates it (pixels a
# frame), over its last input frame.

# %%
observed, truth = rain[:, :INPUT_FRAMES], rain[:, INPUT_FRAMES:]
db = pysteps.utils.transformation.dB_transform(observed[0, -3:], threshold=DB_THRESHOLD, zerovalue=DB_ZERO_VALUE)[
    0
]  # as optical_flow does: dB of the rain rate above 0.1 mm/h
with warnings.catch_warnings():
    # Lucas-Kanade's outlier test warns where every vector is the same; it keeps them all.
    warnings.filterwarnings("ignore", message="Singular matrix during outlier detection")
    motion = pysteps.motion.get_method("lucaskanade")(db)  # (2, H, W): pixels a frame, along x then y
speed = np.hypot(*motion)
print(f"motion field {motion.shape}: {speed.mean():.2f} pixels a frame on average, at most {speed.max():.2f}")

fig, ax = plt.subplots(figsize=(5, 4.2))
image = ax.imshow(observed[0, -1], cmap=CMAP, norm=NORM, interpolation="nearest")
step = 4
rows, columns = np.mgrid[: db.shape[1] : step, : db.shape[2] : step]
ax.quiver(columns, rows, motion[0, ::step, ::step], motion[1, ::step, ::step], angles="xy", color="0.2", width=0.004)
ax.set(xticks=[], yticks=[], title="Last input frame and its motion (Lucas-Kanade)")
bar = fig.colorbar(image, ax=ax, ticks=LEVELS[::2], label="rain rate (mm/h)")
bar.ax.set_yticklabels(LABELS[::2])
plt.show()

# %% [markdown]
# The forecasts of the first sequence, 6 to 90 minutes ahead, next to the truth
# (`plots.plot_radar_forecasts` writes the PNG; the columns show every second frame):

# %%
forecasts = baselines(observed, LEAD_TIMES)  # {"persistence": (N, 15, H, W), "optical_flow": ...}
plot_radar_forecasts(
    WORK / "baselines.png",
    observed[0],
    truth[0],
    {name: forecast[0] for name, forecast in forecasts.items()},
    title="Sequence 0: the baselines",
)
display(Image(WORK / "baselines.png"))

# %% [markdown]
# ### Their scores
#
# `verify(forecast, truth)` (or `Verification`, batch by batch) computes pysteps' scores per lead
# time over all the sequences' pixels, in rain rate; `skill_table` prints them at 0.5 mm/h (rain or
# no rain, the paper's threshold):
#
# - CSI, the critical success index: hits / (hits + misses + false alarms), 1 is perfect;
# - POD, the probability of detection: hits / (hits + misses);
# - FAR, the false alarm ratio: false alarms / (hits + false alarms), 0 is perfect;
# - HSS, the Heidke skill score: the fraction of correct forecasts beyond chance, 1 perfect, 0 no
#   better than chance;
# - MSE of the rain rate in (mm/h)², and the Pearson correlation of forecast and observed rates.
#
# The result also holds them at the other thresholds of `THRESHOLDS` (up to HKO-7's 30 mm/h) and the
# fractions skill score (FSS) in windows of `FSS_SCALES` pixels. A NaN truth pixel is missing and
# left out; here a forecast's NaN (optical flow's inflow band) counts as no rain, so the whole frame
# is scored.

# %%
scores = {name: verify(forecast, truth) for name, forecast in forecasts.items()}
print(skill_table(scores))

# %% [markdown]
# Optical flow keeps the rain where it moves, so its CSI is above persistence's over the first hour;
# both fall with lead time, as the rain changes, turns and enters from outside, and little skill is
# left to either at 90 minutes. On data made easy for optical flow (the mean wind neither turns nor
# varies, no vortex, no growth and a long lifetime) it does far better; what it still misses is
# mostly the rain that enters from beyond the edge, in a band that widens by the wind's speed every
# frame.

# %%
easy = synthetic_radar(
    SEQUENCES,
    INPUT_FRAMES + LEAD_TIMES,
    turning=0.0,
    rotation=0.0,
    wind_variability=0.0,
    growth=0.0,
    lifetime=1000.0,
    seed=SEED,
)
easy_flow = baselines(easy[:, :INPUT_FRAMES], LEAD_TIMES, methods=("optical_flow",))["optical_flow"]
compared = {
    "optical flow, default data": scores["optical_flow"],
    "optical flow, easy data": verify(easy_flow, easy[:, INPUT_FRAMES:]),
    "persistence, default data": scores["persistence"],
}
plot_skill(WORK / "easy.png", compared, score="CSI", threshold=0.5)
display(Image(WORK / "easy.png"))

# %% [markdown]
# ## 3. Training the encoder-forecaster on radar
#
# `train(TrainConfig.from_preset("radar", ...))`, as `convlstm-train --data radar`: the sequences are
# `synthetic_radar`'s, seeded by `seed`, as HKO-7's pixels; the model reads `input_frames` frames and
# forecasts `output_frames`; the preset `radar` (5 frames in, 10 out, 3000 steps) trains with HKO-7's
# balanced MSE + MAE (`loss="balanced"`), which weighs heavy rain more, instead of the paper's
# cross-entropy. At the end the run scores the model's
# forecasts and the two baselines on the validation sequences (`evaluation.nowcast_skill`), and
# writes `skill.json`, `skill_csi.png` and `radar_forecasts.png` beside its usual files.
#
# At full size this cell is the library's default radar run, some minutes on a CPU;
# with `CONVLSTM_NOTEBOOK_SMALL=1` a tiny model takes a few steps, enough to show every output but
# not to learn. `TrainConfig.from_preset("paper-radar")` (`--preset paper-radar`) is the paper's
# configuration: 5 frames in, 15 out, 100 x 100 frames as 2 x 2 patches,
# ConvLSTM(3x3)-3x3-64-3x3-64, 20 000 steps, for a GPU.

# %%
config = TrainConfig.from_preset("radar", **RUN, seed=SEED, workdir=str(WORK / "run"), progress=False)
print(config)
result = train(config)
print(f"{result.steps_run} steps, {result.wall_time:.0f} s")
print(sorted(path.name for path in result.workdir.iterdir()))

# %% [markdown]
# ## 4. Skill against the baselines
#
# `result.skill` (and `skill.json`) holds three entries:
#
# - `"regions"`: for each region, `"frame"` (every observed pixel, a forecast's NaN as no rain) and
#   `"reachable"` (the observed pixels extrapolation reaches from inside the frame, where no method
#   is blind), a `Verification.result()` per method: `"model"`, `"persistence"` and
#   `"optical_flow"`, each with every score per lead time;
# - `"differences"`: for each region and baseline, the model-minus-baseline difference of CSI at
#   each threshold and of the MSE (means over the common lead times), with its paired bootstrap 95%
#   interval over the validation sequences;
# - `"bootstrap"`: how those intervals were drawn (resamples, seed, confidence).
#
# `skill_table` prints them as `convlstm-train` does at the end of a run: a table per region, whose
# last lines are the means over the lead times every method has, then the differences.
#
# With `CONVLSTM_NOTEBOOK_SMALL=1` the model is far too small and too briefly trained to beat
# either baseline: its table and figures only show what a run writes. The full default run's
# figures are measured by `convlstm-train --data radar --workdir runs/radar`, which prints this
# table at its end.

# %%
print(skill_table(result.skill))

# %% [markdown]
# The run's figures: the CSI at 0.5 mm/h against lead time, a line per method, and one validation
# sequence with each method's forecast.

# %%
display(Image(result.workdir / "skill_csi.png"))
display(Image(result.workdir / "radar_forecasts.png"))

# %% [markdown]
# Every other score is in `skill.json`: with `frame = skill["regions"]["frame"]`,
# `frame["model"]["CSI"]["2"]` is the CSI at 2 mm/h per lead time, `frame["model"]["FSS"]["0.5"]["15"]`
# the FSS at 0.5 mm/h in 15-pixel windows, `frame["model"]["contingency"]` the hits, misses, false
# alarms and correct negatives behind the categorical scores; undefined scores are `null`.
# `skill["differences"]["reachable"]["optical_flow"]` holds the model-minus-optical-flow differences
# on the reachable pixels with their intervals. `plot_skill` draws any score, a line per method and
# region (the frame solid, the reachable pixels dashed):

# %%
skill = json.loads((result.workdir / "skill.json").read_text())
print(list(skill), list(skill["regions"]), sorted(skill["regions"]["frame"]["model"]))
print(json.dumps(skill["differences"]["reachable"]["optical_flow"], indent=1)[:600])
plot_skill(WORK / "fss.png", skill, score="FSS", threshold=0.5, scale=15)
display(Image(WORK / "fss.png"))

# %% [markdown]
# ## 5. Your own radar: HKO-7's PNG files
#
# HKO-7 stores one 8-bit PNG per radar map, pixels in its encoding, at
# `radarPNG/YYYY/MM/DD/RADyymmddHHMMSS.png`. `save_radar_pngs` writes frames that way;
# `load_radar_pngs` finds every frame under a folder by its name, splits them into runs of frames
# exactly 6 minutes apart (a missing frame ends a run) and cuts the runs into sequences, resized to
# `size` if asked. Radar of another source goes through reflectivity: read it (pysteps' importers,
# for instance), convert it to dBZ, then `dbz_to_pixels` and `save_radar_pngs`; or, from rain
# rates, `rain_to_pixels`. Here, two synthetic sequences become a day's files, one frame missing.

# %%
radar_folder = WORK / "radarPNG"
start = datetime.datetime(2015, 6, 1, 12, 0)
paths = save_radar_pngs(frames[0], radar_folder, start)
later = start + datetime.timedelta(hours=3)  # a gap: a second run of frames, three hours later
paths += save_radar_pngs(frames[1], radar_folder, later)
paths.pop(len(frames[0]) + 10).unlink()  # the frame of 16:00 is missing: the second run splits in two
print(len(paths), "files, e.g.", paths[1].relative_to(WORK).as_posix())

length = 8
sequences = load_radar_pngs(radar_folder, frames_per_sequence=length, size=32)
times = radar_png_times(radar_folder, frames_per_sequence=length)
print(f"{len(sequences)} sequences of {length} frames, {sequences.shape} {sequences.dtype}, starting at")
print([time.strftime("%H:%M") for time in times])
# At the files' own size, the frames come back bit for bit.
assert (load_radar_pngs(radar_folder, frames_per_sequence=length)[0, ..., 0] == frames[0, :length]).all()

# %% [markdown]
# A training run on such a folder: `convlstm-train --data radarPNG --size 100 --input-frames 5
# --output-frames 15 ...` or `TrainConfig(data=folder, ...)`. The folder's first sequences train
# and its last ones validate (`load_data`), and the run is scored against the baselines as above.

# %%
folder_config = TrainConfig(
    data=str(radar_folder), size=32, input_frames=4, output_frames=4, train_sequences=3, val_sequences=1, batch_size=1
)
train_set, val_set = load_data(folder_config)
print(f"a radar folder: {folder_config.radar}; train {train_set.shape}, validation {val_set.shape}")

# %% [markdown]
# To keep the run, pass a folder of your own as `workdir`; this one is deleted.

# %%
work.cleanup()
