"""Keeps each notebook's .py and .ipynb in sync, the .ipynb stored without outputs.

    python notebooks/sync.py                   # every notebook in this folder
    python notebooks/sync.py notebooks/01_parity.py

For each notebook, `jupytext --sync` first carries the edits of whichever file of the pair was
saved last into the other; then the .ipynb is rewritten from the .py with no outputs, no execution
counts, no metadata but the pairing and the kernel's name, and cell ids derived from the cells' contents,
so that it only changes where the cells do.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import jupytext
import nbformat
from jupytext.cli import jupytext as jupytext_cli
from jupytext.formats import guess_format

FOLDER = Path(__file__).resolve().parent
KEPT_METADATA = ("jupytext", "kernelspec")


def notebooks(folder: Path = FOLDER) -> list[Path]:
    """The notebooks in `folder`: its .py files in jupytext's percent format (cells marked `# %%`)."""
    return sorted(path for path in folder.glob("*.py") if guess_format(path.read_text(), ".py")[0] == "percent")


def stripped(path: Path) -> nbformat.NotebookNode:
    """The notebook of the .py at `path` as it is stored in its .ipynb."""
    notebook = jupytext.read(path)
    kept = {key: value for key, value in notebook.metadata.items() if key in KEPT_METADATA}
    notebook.metadata = nbformat.from_dict(kept)
    notebook.metadata.get("jupytext", {}).pop("text_representation", None)  # the .py's, as jupytext stores it
    seen: dict[str, int] = {}
    for cell in notebook.cells:
        digest = hashlib.sha256(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        seen[digest] = seen.get(digest, 0) + 1
        cell.id = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


def sync(path: Path) -> None:
    """Syncs the pair of the notebook at `path` (the .py or the .ipynb) and strips the .ipynb."""
    path = path.with_suffix(".py")
    jupytext_cli(["--sync", "--quiet", str(path)])
    notebook = stripped(path)
    nbformat.validate(notebook)
    text = nbformat.writes(notebook) + "\n"
    ipynb = path.with_suffix(".ipynb")
    if ipynb.read_text() != text:
        ipynb.write_text(text)
        print(f"wrote {ipynb}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks to sync (default: every one)")
    paths = parser.parse_args(argv).paths or notebooks()
    for path in paths:
        sync(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
