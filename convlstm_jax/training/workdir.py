"""A run's folder: the names of its files, writes that a kill cannot leave half done, and the log's records."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

LOG_FILE, CONFIG_FILE, CHECKPOINTS = "metrics.jsonl", "config.json", "checkpoints"
FORECASTS_FIGURE, CURVE_FIGURE = "forecasts.png", "learning_curve.png"
# A radar run's nowcasting skill (`evaluation.nowcast_skill`), its CSI plot and forecast strips.
SKILL_FILE, SKILL_FIGURE, RADAR_FIGURE = "skill.json", "skill_csi.png", "radar_forecasts.png"


def _write_atomically(path: pathlib.Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename: a killed run leaves the old
    file or the new one, never a part."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    os.replace(partial, path)


def _read_log(path: pathlib.Path, *, until: int) -> list[dict[str, Any]]:
    """The records of the log at `path` up to step `until`; none if there is no log.

    The log is complete up to every checkpoint's step; past it, a killed run may have left a line
    cut short, which ends the records read (all later ones are past the checkpoint too).
    """
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if record["step"] <= until:
            records.append(record)
    return records
