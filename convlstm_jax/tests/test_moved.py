"""The old module paths (the applications, the StableHLO export, the converter, the tolerance
policy): each name they provided is still found there, with a `DeprecationWarning` naming its new
home, and is the new home's object itself."""

import importlib
import re
import subprocess
import sys

import pytest

DIGITS, BATCHES = "convlstm_jax.training.digits", "convlstm_jax.training.batches"
UNITS, SYNTHETIC, READERS = (
    "convlstm_jax.nowcasting.units",
    "convlstm_jax.nowcasting.synthetic",
    "convlstm_jax.nowcasting.readers",
)
BASELINES, VERIFICATION = "convlstm_jax.nowcasting.baselines", "convlstm_jax.nowcasting.verification"
TRAINING = "convlstm_jax.training"

# {old module: {name it provided: the module that defines it now}}, the names listed from each old module.
MOVED = {
    "convlstm_jax.data": {
        "STEP": DIGITS,
        "load_moving_mnist": DIGITS,
        "bouncing_digits": DIGITS,
        "split_sequences": BATCHES,
        "to_unit": BATCHES,
        "batch_indices": BATCHES,
        "copy_last_frame": BATCHES,
        "ZR_A": UNITS,
        "ZR_B": UNITS,
        "DBZ_RANGE": UNITS,
        "rain_to_dbz": UNITS,
        "dbz_to_rain": UNITS,
        "dbz_to_pixels": UNITS,
        "pixels_to_dbz": UNITS,
        "rain_to_pixels": UNITS,
        "pixels_to_rain": UNITS,
        "SPIN_UP": SYNTHETIC,
        "synthetic_radar": SYNTHETIC,
        "HKO7_FILENAME_FORMAT": READERS,
        "RADAR_INTERVAL_MINUTES": READERS,
        "load_radar_pngs": READERS,
        "radar_png_times": READERS,
        "save_radar_pngs": READERS,
    },
    "convlstm_jax.nowcast": {
        "INSTALL": BASELINES,
        "BASELINES": BASELINES,
        "MOTION_METHODS": BASELINES,
        "DB_THRESHOLD": BASELINES,
        "DB_ZERO_VALUE": BASELINES,
        "persistence": BASELINES,
        "optical_flow": BASELINES,
        "baselines": BASELINES,
        "THRESHOLDS": VERIFICATION,
        "FSS_SCALES": VERIFICATION,
        "SCORES": VERIFICATION,
        "threshold_key": VERIFICATION,
        "Verification": VERIFICATION,
        "verify": VERIFICATION,
        "score_by_lead_time": VERIFICATION,
        "skill_table": VERIFICATION,
    },
    "convlstm_jax.metrics": {
        "mse": "convlstm_jax.training.metrics",
        "mae": "convlstm_jax.training.metrics",
        "ssim": "convlstm_jax.training.metrics",
        "cross_entropy": "convlstm_jax.training.metrics",
        "evaluate": "convlstm_jax.training.metrics",
        "BALANCED_THRESHOLDS_MM_H": "convlstm_jax.nowcasting.losses",
        "BALANCED_WEIGHTS": "convlstm_jax.nowcasting.losses",
        "balanced_loss": "convlstm_jax.nowcasting.losses",
    },
    "convlstm_jax.plots": {
        "plot_forecasts": "convlstm_jax.training.plots",
        "plot_learning_curve": "convlstm_jax.training.plots",
        "plot_skill": "convlstm_jax.nowcasting.plots",
        "plot_radar_forecasts": "convlstm_jax.nowcasting.plots",
    },
    "convlstm_jax.train": {
        **{
            name: TRAINING
            for name in (
                "CheckpointError",
                "ConfigError",
                "TrainConfig",
                "TrainResult",
                "TrainState",
                "TrainingInterrupted",
                "baseline_metrics",
                "build_model",
                "build_parser",
                "create_train_state",
                "eval_step",
                "evaluate_dataset",
                "load_data",
                "main",
                "make_optimizer",
                "predict",
                "restore_latest",
                "save_checkpoint",
                "train",
                "train_step",
            )
        },
        "CONFIG_ITEM": "convlstm_jax.training.checkpoints",
        "CORRUPT_MARK": "convlstm_jax.training.checkpoints",
        "DIGEST_ITEM": "convlstm_jax.training.checkpoints",
        "STATE_ITEM": "convlstm_jax.training.checkpoints",
        "SCHEDULE_OPTIONS": "convlstm_jax.training.config",
        "BASELINE_FLOOR": "convlstm_jax.training.evaluation",
        "METRICS": "convlstm_jax.training.evaluation",
        "Placer": "convlstm_jax.training.placement",
        "CHECKPOINTS": "convlstm_jax.training.workdir",
        "CONFIG_FILE": "convlstm_jax.training.workdir",
        "CURVE_FIGURE": "convlstm_jax.training.workdir",
        "FORECASTS_FIGURE": "convlstm_jax.training.workdir",
        "LOG_FILE": "convlstm_jax.training.workdir",
    },
}
MOVED |= {
    "convlstm_jax.stablehlo": {
        name: "convlstm_jax.interop.stablehlo"
        for name in ("PLATFORMS", "WEIGHTS", "export", "save", "load", "ExportedModel")
    },
    "parity_tests.tolerance": {
        name: "convlstm_common.tolerance" for name in ("Tolerance", "POLICY", "tolerance_for", "result_tolerance")
    },
    "parity_tests.convert": {
        name: "convlstm_jax.interop.convert" for name in ("PROG", "FORMATS", "READS", "WRITES", "Loaded", "main")
    },
}
CASES = [(old, name, home) for old, names in MOVED.items() for name, home in names.items()]


@pytest.mark.parametrize(("old", "name", "home"), CASES, ids=[f"{old}.{name}" for old, name, _ in CASES])
def test_an_old_path_gives_the_moved_object_with_a_deprecation_warning(old, name, home):
    module = importlib.import_module(old)
    with pytest.deprecated_call(match=rf"^{re.escape(old)}\.{name} has moved to [a-z_.]+\.{name};") as caught:
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(home), name)
    # The path the warning names gives the same object.
    named = re.search(rf"has moved to ([a-z_.]+)\.{name};", str(caught.list[0].message)).group(1)
    assert getattr(importlib.import_module(named), name) is value
    assert name in dir(module)


def test_the_old_command_module_still_runs_convlstm_train():
    run = subprocess.run([sys.executable, "-m", "convlstm_jax.train", "--help"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: convlstm-train")
    assert "DeprecationWarning: python -m convlstm_jax.train has moved to python -m convlstm_jax.training" in run.stderr
