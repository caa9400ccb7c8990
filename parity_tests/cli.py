"""`convlstm-parity`: holds both frameworks to the shared vectors, or to each other on a checkpoint.

    convlstm-parity                               # every shipped case, torch and JAX
    convlstm-parity --case one_step --strategies  # one case, every way the port can compute
    convlstm-parity --nnx                         # the Flax NNX front too
    convlstm-parity --checkpoint model.pt         # your weights: torch float64 vs torch and JAX float32

Prints a table per case (max abs error of outputs, h, c and gradients, and the worst error as a
fraction of the tolerance) and exits 1 if any run fails, 2 on bad arguments or vectors.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

from convlstm_common import spatial_axes

from .check import JAX_CHANNELS_LAST, JAX_NNX, JAX_RUNS, JAX_STRATEGIES, TORCH_RUNS, Outcome, check, format_table
from .vectors import VECTORS_DIR, VectorError, load_case, load_manifest


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not 3 <= len(shape) <= 5 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected positive ints B,T then the frame's size: L, H,W or D,H,W; got {text!r}"
        )
    return shape


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convlstm-parity",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--vectors", type=Path, default=VECTORS_DIR, help="folder of vectors (default: shipped)")
    parser.add_argument("--case", action="append", help="run only this case (repeatable)")
    parser.add_argument("--framework", choices=("both", "torch", "jax"), default="both")
    parser.add_argument("--channels-last", action="store_true", help="also run JAX in its channels-last layout")
    parser.add_argument(
        "--strategies",
        action="store_true",
        help="also run JAX with each conv_gradient strategy, remat, unroll=2 and bfloat16 compute",
    )
    parser.add_argument("--nnx", action="store_true", help="also run the Flax NNX front (convlstm_jax.nnx)")
    parser.add_argument("--checkpoint", type=Path, help="a reference checkpoint (.pt, .pth, .bin, .safetensors)")
    parser.add_argument("--prefix", default="", help="with --checkpoint: a key prefix to strip (e.g. 'module.')")
    parser.add_argument(
        "--shape",
        type=_parse_shape,
        default=(2, 4, 16, 16),
        help="with --checkpoint: B,T,H,W (B,T,L or B,T,D,H,W for 1-D or 3-D convolutions)",
    )
    parser.add_argument("--seed", type=int, default=0, help="with --checkpoint: seed of the random input")
    return parser


def _runs(framework: str, channels_last: bool, strategies: bool, nnx: bool = False) -> list:
    runs = []
    if framework in ("both", "torch"):
        runs += TORCH_RUNS
    if framework in ("both", "jax"):
        runs += JAX_RUNS
        if channels_last:
            runs.append(JAX_CHANNELS_LAST)
        if strategies:
            runs += JAX_STRATEGIES
        if nnx:
            runs.append(JAX_NNX)
    return runs


def _checkpoint_case(args) -> tuple[dict, dict]:
    """A case made of the user's weights, a random input and the float64 reference's results."""
    from convlstm_jax import torch_to_flax
    from convlstm_jax._convert import infer_architecture, read_state_dict

    from .generate import make_inputs
    from .runs import run_torch

    state_dict = read_state_dict(args.checkpoint)
    state_dict = {k[len(args.prefix) :]: v for k, v in state_dict.items() if k.startswith(args.prefix)}
    torch_to_flax(state_dict)  # raises with every problem listed
    specs, peephole, bias = infer_architecture(state_dict)
    batch, steps, *frame = args.shape
    rank = specs[0].spatial_dims
    if len(frame) != rank:
        axes = spatial_axes(rank).replace(" ", "")
        raise ValueError(f"the checkpoint's convolutions are {rank}-D: --shape takes B,T,{axes}, got {args.shape}.")
    config = {
        "input_dim": specs[0].input_dim,
        "hidden_dim": [s.hidden_dim for s in specs],
        "kernel_size": [list(s.kernel_size) for s in specs],
        "num_layers": len(specs),
        "batch_first": True,
        "bias": bias,
        "return_all_layers": True,
        "peephole": peephole,
        "batch": batch,
        "steps": steps,
        "initial_state": True,
    }
    config |= {"height": frame[0], "width": frame[1]} if rank == 2 else {"frame": frame}
    arrays = make_inputs(config, args.seed)
    params = {
        f"param/{k}": (v.detach().float().numpy() if hasattr(v, "detach") else v.astype("float32"))
        for k, v in state_dict.items()
    }
    arrays.update(params)
    arrays.update({f"expected/{k}": v for k, v in run_torch(config, arrays, "float64").items()})
    return config, arrays


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    has_torch = importlib.util.find_spec("torch") is not None
    framework = args.framework
    if not has_torch and framework != "jax":
        if args.checkpoint or framework == "torch":
            print("convlstm-parity: this needs torch (pip install 'convlstm-jax[torch]').", file=sys.stderr)
            return 2
        print("torch is not installed: checking the JAX port alone.\n")
        framework = "jax"
    runs = _runs(framework, args.channels_last, args.strategies, args.nnx)

    try:
        if args.checkpoint:
            cases = [(args.checkpoint.name, *_checkpoint_case(args))]
        else:
            manifest = load_manifest(args.vectors)
            names = args.case or sorted(manifest["cases"])
            cases = []
            for name in names:
                cases.append(
                    (name, manifest["cases"].get(name, {}).get("config"), load_case(name, args.vectors, manifest))
                )
    except (VectorError, ValueError, OSError) as error:
        print(f"convlstm-parity: {error}", file=sys.stderr)
        return 2

    start, outcomes = time.perf_counter(), []
    for name, config, arrays in cases:
        case_outcomes: list[Outcome] = check(config, arrays, runs)
        outcomes += case_outcomes
        print(format_table(name, config, case_outcomes), end="\n\n", flush=True)
    failed = [o for o in outcomes if not o.passed]
    worst = max(outcomes, key=lambda o: o.score)
    seconds = time.perf_counter() - start
    print(
        f"{len(outcomes) - len(failed)} passed, {len(failed)} failed ({len(cases)} cases, worst "
        f"{worst.score:.3f} of the tolerance: {worst.run.label} {worst.run.dtype}; {seconds:.0f} s)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
