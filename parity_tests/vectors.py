"""Reading and writing the shared vectors: one safetensors file per case, and a JSON manifest.

The manifest records, per case, the configuration, seed and the file's sha256; and, once, the
generator's format version, the versions of torch and NumPy that made the files, the reference's
dtype (float64) and the tolerance policy of `convlstm_common.tolerance`, one for every case. That copy
is a record: the checks take their tolerances from `convlstm_common.tolerance` itself. Every read
checks the file against its sha256, so a changed byte is an error naming the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

VECTORS_DIR = Path(__file__).parent / "vectors"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class VectorError(ValueError):
    """A vector file or the manifest is missing, changed, or from an unknown generator."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(directory: Path = VECTORS_DIR) -> dict[str, Any]:
    """Reads the manifest and checks that this code can read its format."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise VectorError(f"No manifest at {path}: run `python -m parity_tests.generate`.")
    manifest = json.loads(path.read_text())
    version = manifest.get("generator", {}).get("format")
    if version != FORMAT_VERSION:
        raise VectorError(f"{path} has format version {version!r}; this code reads version {FORMAT_VERSION}.")
    return manifest


def load_case(
    name: str, directory: Path = VECTORS_DIR, manifest: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Reads one case's arrays after checking the file against the manifest's sha256."""
    from safetensors.numpy import load_file

    manifest = manifest or load_manifest(directory)
    if name not in manifest["cases"]:
        raise VectorError(f"No case {name!r} in the manifest; it has {sorted(manifest['cases'])}.")
    entry = manifest["cases"][name]
    path = Path(directory) / entry["file"]
    if not path.exists():
        raise VectorError(f"Vector file {path} is missing.")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise VectorError(f"Vector file {path} has sha256 {digest}, but the manifest records {entry['sha256']}.")
    return load_file(str(path))


def write_case(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """Writes one case's arrays and returns the file's sha256."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))
    return sha256(path)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (Path(directory) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
