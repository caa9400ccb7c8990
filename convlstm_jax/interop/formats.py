"""The formats `convlstm-convert` reads and writes: one `Format` record each, in one registry.

A format is recognised by its extensions (or, for a folder such as an orbax checkpoint, by a
predicate), read by its reader into the internal form (a Linen model and its variables), written by
its writer, and checked in its own runtime; everything the command says about formats (its
`--help`, the formats a SOURCE or DEST may have, what a format needs installed) is made from the
records in `FORMATS`, in their order. `convlstm_jax.interop.convert` defines the readers, writers
and runners and registers its formats here; a new format is one more entry there.

>>> from convlstm_jax.interop import convert
>>> format_of(Path("model.weights.h5"), "SOURCE").name, get_format("torch").label
('keras-weights', 'torch state_dict')
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROLES = ("SOURCE", "DEST")
"""The roles a path has in the command: read from (SOURCE) or written to (DEST)."""


@dataclasses.dataclass(frozen=True)
class Format:
    """One format of model files: how it is recognised, read, written, checked and installed.

    Attributes:
      name: the key in `FORMATS` (and the "format" written in the configuration beside the weights).
      label: its name in messages ("torch state_dict", "ONNX").
      description: its line in the table of `--help`.
      family: the framework it belongs to, as the lists of readable and writable formats group them
        ("torch", "Flax").
      extensions: the file name endings that tell it, lower case (".pt", ".weights.h5"); where two
        formats share one, the first registered is the one a path is taken for.
      recognises: for a format held in a folder, whether a path is one (a predicate), else None.
      files: how its files are named in the lists of formats ("an orbax directory"); by default its
        extensions.
      reader: `(path, format name, --config path or None, --prefix)` -> `convert.Loaded`, or None
        where the command does not read it.
      writer: `(model, variables, dest, example input (B, T, *frame, C))` -> the paths written, or None
        where the command does not write it.
      runner: `(dest, model)` -> a function running the written file in its own runtime (an input in,
        its results by name out), for the check; None where the written file is read back with
        `reader` and run in the reader's runtime.
      runtime: the runtime of `runner`, for the report.
      needs: `(module, pip requirement that installs it)` for each module it needs, read or written.
      directory: whether it is a folder (a DEST folder must not exist yet).
      beside: where the configuration beside a file of this format is, where not
        `config.config_path`'s place (and where set, the name earlier versions wrote is not read).
      takes_prefix: whether `--prefix` (a state_dict key prefix to strip) applies.
      writes_frame_predictor: whether a `convlstm_jax.FramePredictor` (OpenSTL's whole model) has a
        form in it.
      exported: whether a written file is a traced program, which takes frames of the check's size
        only where the model has layer norms.
    """

    name: str
    label: str
    description: str
    family: str
    extensions: tuple[str, ...] = ()
    recognises: Callable[[Path], bool] | None = None
    files: str = ""
    reader: Callable[..., Any] | None = None
    writer: Callable[..., list[Path]] | None = None
    runner: Callable[[Path, Any], Callable[..., Any]] | None = None
    runtime: str = ""
    needs: tuple[tuple[str, str], ...] = ()
    directory: bool = False
    beside: Callable[[Path], Path] | None = None
    takes_prefix: bool = False
    writes_frame_predictor: bool = False
    exported: bool = False

    @property
    def named(self) -> str:
        """How its files are named in the lists of formats: `files`, or its extensions."""
        return self.files or ", ".join(self.extensions)


FORMATS: dict[str, Format] = {}
"""The registry, by name, in the order the command lists the formats (filled by `convlstm_jax.interop.convert`)."""


def get_format(name: str) -> Format:
    """The registered format of that name.

    Raises:
      ValueError: no format has that name; the message lists those that do.
    """
    if not isinstance(name, str) or name not in FORMATS:
        raise ValueError(f"unknown format {name!r}; the formats are {', '.join(FORMATS)}.")
    return FORMATS[name]


def format_of(path: Path, role: str) -> Format:
    """The format of `path`: a two-part extension (".weights.h5") first, then a folder format's
    predicate, then the extension; `role` ("SOURCE", "DEST") names it in the error.

    Raises:
      ValueError: no format has that extension; the message lists the extensions the role may have.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}.")
    name, suffix = path.name.lower(), path.suffix.lower()
    for fmt in FORMATS.values():
        if any(extension.count(".") > 1 and name.endswith(extension) for extension in fmt.extensions):
            return fmt
    for fmt in FORMATS.values():
        if fmt.recognises is not None and fmt.recognises(path):
            return fmt
    for fmt in FORMATS.values():
        if suffix in fmt.extensions:
            return fmt
    raise ValueError(
        f"{role} {path}: unknown extension {suffix!r}; the formats {role} may have are {extensions(role)}."
    )


def readable() -> list[Format]:
    """The formats the command reads (those with a reader), in order."""
    return [fmt for fmt in FORMATS.values() if fmt.reader is not None]


def writable() -> list[Format]:
    """The formats the command writes (those with a writer), in order."""
    return [fmt for fmt in FORMATS.values() if fmt.writer is not None]


def extensions(role: str) -> str:
    """The extensions a SOURCE (`role` "SOURCE") or DEST ("DEST") may have, then the folder formats."""
    formats = writable() if role == "DEST" else readable()
    known = [extension for fmt in formats for extension in fmt.extensions]
    known += [f"a directory ({fmt.name})" for fmt in formats if fmt.recognises is not None]
    return ", ".join(dict.fromkeys(known))


def join(words: Iterable[str], conjunction: str = "and") -> str:
    """`words` as a list in prose: "a, b and c"."""
    words = list(dict.fromkeys(words))
    return ", ".join(words[:-1]) + f" {conjunction} " + words[-1] if len(words) > 1 else "".join(words)


def families(formats: Iterable[Format]) -> str:
    """`formats` grouped by family, each with how its files are named: "torch (.pt, .safetensors) and Flax (...)"."""
    named: dict[str, list[str]] = {}
    for fmt in formats:
        named.setdefault(fmt.family, []).append(fmt.named)
    return join(f"{family} ({', '.join(files)})" for family, files in named.items())


def table() -> str:
    """The table of formats of `--help`: each one's description, extensions, and whether it is read and written."""
    rows = [("format", "extension", "SOURCE", "DEST")]
    for fmt in FORMATS.values():
        where = " ".join(fmt.extensions) or "a directory"
        rows.append((fmt.description, where, _yes(fmt.reader), _yes(fmt.writer)))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def _yes(function: Callable[..., Any] | None) -> str:
    return "no" if function is None else "yes"


def require(fmt: Format, why: str) -> None:
    """Raises ImportError naming the pip requirements where a module `fmt` needs is not installed; `why` starts it."""
    missing = []
    for module, requirement in fmt.needs:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a missing parent package
            found = False
        if not found:
            missing.append((module, requirement))
    if missing:
        modules = ", ".join(module for module, _ in missing)
        requirements = " ".join(f"'{requirement}'" for requirement in dict.fromkeys(r for _, r in missing))
        raise ImportError(f"{why} needs {modules}, which is not installed: pip install {requirements}.")
