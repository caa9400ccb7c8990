"""The Python examples of the documentation pages run as written.

Each section of a page (its text under one `##` heading) runs on its own: its ```python blocks in
order, in one namespace, in a temporary working directory (the files they write land there). A
section skips, with the reason, where a package it imports (torch, Keras, onnxruntime, ...) is not
installed.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("docs/interop.md", "docs/conversion.md")

# What a name used in an example needs besides the modules the example imports.
NEEDS = {
    "convlstm_torch": ("torch",),
    "torch_module": ("torch",),
    "from_keras": ("keras",),
    "to_onnx": ("torch", "onnx", "onnxscript"),
}

# Keras's variables' __array__ takes no `copy` (NumPy 2 warns when Keras converts them, in saving).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

# Sections that take more than a few seconds: they run with `-m slow`.
SLOW = {("docs/interop.md", "From Keras 3"), ("docs/interop.md", "To ONNX")}

FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
HEADING = re.compile(r"^## (.+)$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Snippet:
    line: int  # of its first line of code in the page
    code: str


@dataclasses.dataclass(frozen=True)
class Section:
    page: str
    title: str
    snippets: tuple[Snippet, ...]

    def needs(self) -> list[str]:
        """The top-level modules its examples import or need (`NEEDS`), in the order first met."""
        modules: dict[str, None] = {}
        for snippet in self.snippets:
            for node in ast.walk(ast.parse(snippet.code)):
                if isinstance(node, ast.Import):
                    imported = [alias.name.split(".")[0] for alias in node.names]
                    names = imported
                elif isinstance(node, ast.ImportFrom):
                    imported = [(node.module or "").split(".")[0]]
                    names = imported + [alias.name for alias in node.names]
                elif isinstance(node, ast.Name):
                    imported, names = [], [node.id]
                else:
                    continue
                for module in imported:
                    modules.setdefault(module)
                for name in names:
                    for module in NEEDS.get(name, ()):
                        modules.setdefault(module)
        return list(modules)


def sections(page: str) -> list[Section]:
    """The page's sections that hold Python examples: the text before the first `##` heading is one."""
    text = (ROOT / page).read_text()
    starts = [(0, Path(page).stem)] + [(m.start(), m.group(1).strip()) for m in HEADING.finditer(text)]
    found = []
    for (start, title), (end, _) in zip(starts, [*starts[1:], (len(text), "")]):
        snippets = tuple(
            Snippet(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text, start, end)
        )
        if snippets:
            found.append(Section(page, title, snippets))
    return found


SECTIONS = [section for page in PAGES for section in sections(page)]


def test_the_pages_have_examples_and_every_slow_section_is_one_of_theirs():
    assert {section.page for section in SECTIONS} == set(PAGES)
    assert SLOW <= {(section.page, section.title) for section in SECTIONS}


@pytest.mark.parametrize(
    "section",
    [
        pytest.param(s, id=f"{Path(s.page).stem}-{s.title}", marks=[pytest.mark.slow] * ((s.page, s.title) in SLOW))
        for s in SECTIONS
    ],
)
def test_the_examples_run_as_written(section, tmp_path, monkeypatch):
    missing = [module for module in section.needs() if importlib.util.find_spec(module) is None]
    if missing:
        pytest.skip(f"its examples need {', '.join(missing)}, not installed in this virtualenv")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__doc_example__"}
    # As a reader runs them: under JAX's default promotion rules, not the tests' strict ones
    # (Keras's own JAX code broadcasts ranks and promotes dtypes).
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        for snippet in section.snippets:
            # Compiled under the page's name, its lines padded: a traceback points at the page's line.
            code = compile("\n" * (snippet.line - 1) + snippet.code, str(ROOT / section.page), "exec")
            exec(code, namespace)
