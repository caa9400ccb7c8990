"""Writes a pip constraints file pinning each runtime dependency to its declared lower bound.

`python3 .ci/floors.py FILE` reads pyproject.toml's `dependencies` and its `torch`, `train`, `nowcast`
and `interop` extras and writes `name==lower` for each, so that an install under those constraints gets exactly
the oldest versions the package claims to work with. A dependency without a lower bound is an error.
"""

import re
import sys
from pathlib import Path

import tomllib

EXTRAS = ("torch", "train", "nowcast", "interop")
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def floors(pyproject: dict) -> list[str]:
    """`name==lower` for every runtime requirement of the project.

    Raises:
      ValueError: if a requirement has no `>=` lower bound.
    """
    project = pyproject["project"]
    name = project["name"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for requirement in requirements:
        package, _, specifiers = REQUIREMENT.match(requirement).groups()
        if package == name:
            continue  # an extra of this package: its own requirements are listed above
        lower = [s.strip()[2:].strip() for s in specifiers.split(",") if s.strip().startswith(">=")]
        if len(lower) != 1:
            raise ValueError(f"{requirement!r}: expected one lower bound `>=version`, got {specifiers!r}")
        pins.append(f"{package}=={lower[0]}")
    return pins


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 .ci/floors.py FILE")
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    Path(sys.argv[1]).write_text("".join(f"{pin}\n" for pin in floors(pyproject)))


if __name__ == "__main__":
    main()
