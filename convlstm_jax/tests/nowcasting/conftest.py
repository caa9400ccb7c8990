"""Fixtures of the nowcasting tests: where the real radar of pysteps' example data lies."""

import os
from pathlib import Path

import pytest

# The shared folder beside the repository (`../shared/data/pysteps-data`), or CONVLSTM_PYSTEPS_DATA.
_DEFAULT = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "pysteps-data"


@pytest.fixture(scope="session")
def pysteps_data_root() -> Path:
    """The root of the real radar sequences laid out as pysteps' example data; skips where absent."""
    root = Path(os.environ.get("CONVLSTM_PYSTEPS_DATA", _DEFAULT)).resolve()
    if not (root / "radar").is_dir():
        pytest.skip(
            f"no real radar at {os.fspath(root)} (pysteps' example data: set CONVLSTM_PYSTEPS_DATA, or "
            "get it with pysteps.datasets.download_pysteps_data)"
        )
    return root
