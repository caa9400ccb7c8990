"""Every notebook in `notebooks/`: its .py and .ipynb agree, the .ipynb is stored clean, and it runs.

The notebooks run in a Jupyter kernel on this interpreter, with `CONVLSTM_NOTEBOOK_SMALL=1`
(smaller sizes); a cell that raises fails the test with that cell's traceback.
"""

import importlib.util
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

FOLDER = Path(__file__).resolve().parents[1]
CELL_TIMEOUT_S = 120
# A Python warning as the kernel prints it on stderr ("file.py:12: DeprecationWarning: ...").
PYTHON_WARNING = re.compile(r"\b\w*Warning: ")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # the colours of IPython's tracebacks


def _load_sync():
    spec = importlib.util.spec_from_file_location("notebooks_sync", FOLDER / "sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = _load_sync()
NOTEBOOKS = sync.notebooks(FOLDER)


def test_notebooks_found():
    assert NOTEBOOKS, f"no jupytext notebook (.py with `# %%` cells) in {FOLDER}"


@pytest.fixture(params=NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def notebook(request) -> Path:
    return request.param


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def test_pair_in_sync(notebook):
    ipynb = notebook.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run `python notebooks/sync.py`"
    assert "ipynb" in jupytext.read(notebook).metadata.get("jupytext", {}).get("formats", ""), (
        f"{notebook.name} is not paired with an .ipynb: copy the jupytext header of another notebook"
    )
    assert _cells(jupytext.read(ipynb)) == _cells(jupytext.read(notebook)), (
        f"{notebook.name} and {ipynb.name} hold different cells: run `python notebooks/sync.py`"
    )


def test_stored_without_outputs(notebook):
    stored = nbformat.read(notebook.with_suffix(".ipynb"), as_version=4)
    dirty = [
        index
        for index, cell in enumerate(stored.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"cells {dirty} of the stored .ipynb have outputs or execution counts: run notebooks/sync.py"
    extra = set(stored.metadata) - set(sync.KEPT_METADATA)
    assert not extra, f"the stored .ipynb has metadata {sorted(extra)}: run `python notebooks/sync.py`"


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    """Kernelspecs holding one `python3` that runs this interpreter, whatever else is installed."""
    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(folder / "python3")  # argv: [sys.executable, "-m", "ipykernel_launcher", ...]
    return KernelSpecManager(kernel_dirs=[str(folder)])


def test_runs(notebook, kernel_specs, monkeypatch):
    if re.search(r"^(import|from) torch\b", notebook.read_text(), re.MULTILINE):
        pytest.importorskip("torch", reason=f"{notebook.name} runs the torch reference: torch is not installed here")
    monkeypatch.setenv("CONVLSTM_NOTEBOOK_SMALL", "1")
    contents = jupytext.read(notebook)
    contents.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable, end='')"))
    client = NotebookClient(
        contents,
        km=KernelManager(kernel_name="python3", kernel_spec_manager=kernel_specs),
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(FOLDER)}},  # run where Jupyter would: the notebook's folder
    )
    failure = None
    try:
        client.execute(cleanup_kc=True)  # shut the kernel down and close its sockets afterwards
    except CellExecutionError as error:  # its message holds the cell's source and traceback
        failure = ANSI_ESCAPE.sub("", str(error))
    if failure:
        pytest.fail(f"{notebook.name} failed:\n{failure}", pytrace=False)

    interpreter = "".join(output.get("text", "") for output in contents.cells[-1].outputs)
    assert interpreter == sys.executable
    warnings = [
        f"cell {index}: {output.text.strip()}"
        for index, cell in enumerate(contents.cells)
        for output in cell.get("outputs", [])
        if output.output_type == "stream" and output.name == "stderr" and PYTHON_WARNING.search(output.text)
    ]
    assert not warnings, f"{notebook.name} warns:\n" + "\n".join(warnings)
