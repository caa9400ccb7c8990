"""Collects every parity outcome of the session and prints the measured maxima at the end."""

import pytest

from parity_tests.check import GROUPS

_OUTCOMES = []


@pytest.fixture(scope="session")
def record_outcomes():
    """Call with a list of `Outcome`s to have them in the session's summary of maxima."""
    return _OUTCOMES.extend


def pytest_terminal_summary(terminalreporter):
    if not _OUTCOMES:
        return
    runs = sorted({(o.run.label, o.run.dtype) for o in _OUTCOMES})
    terminalreporter.section("parity: measured maxima over every checked case")
    terminalreporter.write_line(
        f"{'run':<18} {'dtype':<8} {'checks':>6} " + " ".join(f"{g:>9}" for g in GROUPS) + "  worst/tol"
    )
    for label, dtype in runs:
        mine = [o for o in _OUTCOMES if (o.run.label, o.run.dtype) == (label, dtype)]
        maxima = " ".join(f"{max(o.max_abs[g] for o in mine):>9.1e}" for g in GROUPS)
        terminalreporter.write_line(
            f"{label:<18} {dtype:<8} {len(mine):>6} {maxima}  {max(o.score for o in mine):9.3f}"
        )
