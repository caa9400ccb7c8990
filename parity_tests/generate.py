"""Rebuilds the shared vectors from the torch reference: `python -m parity_tests.generate`.

Deterministic: each case's seed is fixed in the manifest, the inputs are drawn by torch's CPU
generator in float32, and the expected results are the reference's, computed in float64. The
inputs come out bit for bit on any machine; the float64 results only up to the machine's
summation order, so `--case NAME` rebuilds the named cases alone and leaves every other file, and
its manifest entry, as it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from convlstm_common.tolerance import POLICY

from .cases import CASES
from .runs import Config, frame_size, input_shape, output_channels, result_names, returned_layers, run_torch
from .vectors import FORMAT_VERSION, VECTORS_DIR, VectorError, load_manifest, write_case, write_manifest


def case_seed(name: str) -> int:
    """A seed that depends on the case's name only, not on its place in the list."""
    return zlib.crc32(name.encode())


def make_inputs(config: Config, seed: int) -> dict[str, np.ndarray]:
    """Draws a case's weights, input, initial state and loss weights, all float32."""
    import torch

    from .runs import build_torch

    torch.manual_seed(seed)
    model = build_torch(config)
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (scale * torch.randn(shape, generator=generator)).numpy()

    arrays = {}
    for key, value in model.state_dict().items():
        if key.rsplit(".", 1)[-1] in ("w_ci", "w_cf", "w_co"):  # zero at init: draw them
            value = torch.empty_like(value).uniform_(-0.5, 0.5, generator=generator)
        elif ".norm_" in key:  # a layer norm's scale (ones at init) and shift (zeros): draw them
            value = torch.empty_like(value).uniform_(-0.5, 0.5, generator=generator) + key.endswith(".weight")
        arrays[f"param/{key}"] = value.numpy()
    arrays["input"] = draw(*input_shape(config))
    b, t = config["batch"], config["steps"]
    stack = model.forward_layer if config.get("bidirectional") else model
    sizes = stack.state_sizes(frame_size(config))  # each layer's state (H, W)
    frames = [frame_size(config), *sizes[:-1]]  # what each layer reads
    if config["initial_state"]:
        for layer, (hid, size) in enumerate(zip(config["hidden_dim"], sizes)):
            arrays[f"h0/{layer}"] = draw(b, hid, *size, scale=0.5)
            arrays[f"c0/{layer}"] = draw(b, hid, *size, scale=0.5)
    if config.get("dropout_masks"):  # Dropout at rate 0.3 (input) and 0.2 (state), masks given.
        inputs = [config["input_dim"], *config["hidden_dim"][:-1]]
        for layer, (depth, hid) in enumerate(zip(inputs, config["hidden_dim"])):
            for kind, rate, channels, size in (("input", 0.3, depth, frames[layer]), ("state", 0.2, hid, sizes[layer])):
                if channels:
                    keep = torch.rand((b, channels, *size), generator=generator) >= rate
                    arrays[f"dropout_mask/{kind}/{layer}"] = (keep.float() / (1 - rate)).numpy()
    for layer in returned_layers(config):
        hid, size = config["hidden_dim"][layer], sizes[layer]
        arrays[f"loss_weight/output/{layer}"] = draw(b, t, output_channels(config, layer), *size)
        for kind in ("h", "c", "h/backward", "c/backward") if config.get("bidirectional") else ("h", "c"):
            arrays[f"loss_weight/{kind}/{layer}"] = draw(b, hid, *size)
    assert set(result_names(config)) == {k.removeprefix("loss_weight/") for k in arrays if k.startswith("loss_weight/")}
    return arrays


def generate(directory: Path = VECTORS_DIR, names: list[str] | None = None) -> dict[str, Any]:
    """Writes the cases' files and the manifest into `directory`; returns the manifest.

    Args:
      directory: the folder to write.
      names: None for every case; or the cases to rebuild, whose files and manifest entries
        replace those of the manifest already in `directory` (the other cases' stay as they are).

    Raises:
      ValueError: a name is no case, or `names` is given and `directory` has no manifest or one
        written by other versions of torch or NumPy (whose float64 results may differ in the last
        bits: rebuild every case then).
    """
    import torch

    directory = Path(directory)
    generator = {"format": FORMAT_VERSION, "torch": torch.__version__, "numpy": np.__version__}
    cases: dict[str, Any] = {}
    if names is not None:
        unknown = [name for name in names if name not in CASES]
        if unknown or not names:
            raise ValueError(f"names must be cases from {sorted(CASES)}, got {names!r}.")
        try:
            existing = load_manifest(directory)
        except VectorError as error:
            raise ValueError(f"Rebuilding some cases needs the manifest of the others: {error}") from None
        cases, made_by = dict(existing["cases"]), existing["generator"]
        if made_by != generator:
            raise ValueError(
                f"The vectors in {directory} were made by {made_by}, this is {generator}: "
                "rebuild every case (no --case) so that the manifest tells what made them."
            )
    directory.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "generator": generator,
        "reference_dtype": "float64",
        "tolerance": {dtype: dataclasses.asdict(tol) for dtype, tol in POLICY.items()},
        "cases": cases,
    }
    for name in list(CASES) if names is None else names:
        config, seed = CASES[name], case_seed(name)
        arrays = make_inputs(config, seed)
        expected = run_torch(config, arrays, "float64")
        arrays.update({f"expected/{key}": value for key, value in expected.items()})
        file = f"{name}.safetensors"
        digest = write_case(directory / file, arrays)
        manifest["cases"][name] = {"file": file, "config": config, "seed": seed, "sha256": digest}
    write_manifest(directory, manifest)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m parity_tests.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=VECTORS_DIR, help="folder to write (default: the shipped vectors)")
    parser.add_argument(
        "--case",
        action="append",
        choices=sorted(CASES),
        metavar="NAME",
        help="rebuild only this case (repeatable), keeping the other files and manifest entries",
    )
    args = parser.parse_args(argv)
    try:
        manifest = generate(args.out, args.case)
    except ValueError as error:
        parser.error(str(error))
    written = args.case or list(manifest["cases"])
    size = sum((args.out / manifest["cases"][name]["file"]).stat().st_size for name in written)
    print(f"Wrote {len(written)} cases ({size / 1e3:.0f} kB) and the manifest to {args.out}.")


if __name__ == "__main__":
    main()
