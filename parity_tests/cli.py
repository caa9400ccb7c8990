"""`convlstm-parity`: holds both frameworks to the shared vectors, or to each other on a checkpoint.

    convlstm-parity                               # every shipped case, torch and JAX
    convlstm-parity --case one_step --strategies  # one case, every way the port can compute
    convlstm-parity --nnx                         # the Flax NNX front too
    convlstm-parity --checkpoint model.pt         # your weights, against the reference in float64
    convlstm-parity --checkpoint model.pt --config model.pt.json --shape 2,4,32,32

Prints a table per case (max abs error of outputs, h, c and gradients, and the worst error as a
fraction of the tolerance) and exits 1 if any run fails, 2 on bad arguments, vectors, checkpoints
or configs (one message, on stderr).

--checkpoint takes the state_dict of a `convlstm_torch.ConvLSTM` (keys `cell_list.*`) or of a
`convlstm_torch.Bidirectional` (`forward_layer.*`, `backward_layer.*`, recognised by its keys),
and runs it on a random input of --shape (and, for a ConvLSTM, a random initial state). The
expected values are the reference's results in float64; torch float32 and JAX float64 and float32
are held to them. The layers, channels, kernels (an input-to-state kernel of its own included),
peephole variant, bias and the frames' rank are read from the weights. --config FILE.json gives the
rest as a JSON object of `convlstm_torch.ConvLSTM` keywords, such as

    {"padding": "valid", "dilation": 2}
    {"stride": [[2, 2], [1, 1]], "batch_first": false, "reverse": true}
    {"bidirectional": {"merge": "sum"}}

or is the configuration `convlstm-convert` writes beside its output (model.msgpack.json: {"kind": ...,
"options": {...}}), read as it is; its Linen-only options change nothing here.

- A size (kernel_size, input_kernel_size, stride, dilation) is an int, a list of one size per axis
  ([5, 3]: a 5x3 kernel in every layer), or a list of those per layer ([[5, 5], [3, 3]]: 5x5, then
  3x3). A list of ints as long as both the layers and the axes (two layers of images) could be
  either, and is refused unless its entries are equal; a list of ints as long as the layers alone
  gives one size per layer.
- Other JSON lists (hidden_dim, padding) give one value per layer.
- Absent keywords take the constructor's defaults, except batch_first and return_all_layers
  (true: every layer is checked). Keywords the weights hold may be given too; they must fit.
- A keyword that contradicts the weights (a kernel, a channel count, the peephole, a padding
  that needs the two convolutions a layer's one fused convolution does not have) is named, with
  its value and the weights'.
- padding, stride and dilation are not in the weights. Where none of them is given, a layer with
  `conv_x` and `conv_h` of equal kernels is checked with padding "valid" (said in the output).
- "bidirectional": {"merge": "concat" or "sum"} ({} is "concat", the default) says the weights are
  a Bidirectional's; reverse and keep_order do not apply to it. Its initial state is zeros.
- dropout, recurrent_dropout and check_finite are checked, and the comparison runs without them.

A `convlstm_torch.models.EncoderForecaster`'s checkpoint is checked stack by stack:
--prefix encoder. and --prefix forecaster.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from convlstm_common import check_frame, spatial_axes
from convlstm_jax.interop import config as configs
from convlstm_jax.interop.checkpoints import checkpoint_options, checkpoint_stacks, parse_shape, read_checkpoint

from .check import (
    JAX_CHANNELS_LAST,
    JAX_NNX,
    JAX_RUNS,
    JAX_STRATEGIES,
    TORCH_FLOAT64,
    TORCH_RUNS,
    Outcome,
    check,
    format_table,
)
from .vectors import VECTORS_DIR, VectorError, load_case, load_manifest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convlstm-parity",
        description=__doc__.split("\n", 1)[0].replace("`", ""),
        epilog=__doc__.split("\n", 1)[1],
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
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="a ConvLSTM's or a Bidirectional's state_dict (.pt, .pth, .bin, .safetensors); see below",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE.json",
        help="with --checkpoint: a JSON object of convlstm_torch.ConvLSTM keywords the weights do not hold, or the "
        "configuration convlstm-convert writes",
    )
    parser.add_argument("--prefix", default="", help="with --checkpoint: a key prefix to strip (e.g. 'module.')")
    parser.add_argument(
        "--shape",
        type=parse_shape,
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


def read_config(path: Path) -> dict[str, Any]:
    """Reads and checks a --config file (`convlstm_jax.interop.config.read_config`, either form) as the
    `convlstm_torch.ConvLSTM` keywords it holds, with "bidirectional": {"merge": ...} for a Bidirectional.

    Lists of sizes (`kernel_size`, `input_kernel_size`, `stride`, `dilation`) come back with their
    inner lists as tuples, the forms the constructors take: one entry per layer, one size per axis.
    A configuration `convlstm-convert` wrote gives its reference keywords; its Linen-only ones
    (layouts, dtypes, precision) do not change what is checked here.

    Raises:
      ValueError: the file is missing, not JSON or not an object, has an unknown key, a
        bidirectional entry with an unknown merge, or describes a FramePredictor.
      TypeError: a flag is not true or false, or "bidirectional" is not an object with "merge" only.
    """
    return configs.read_config(path).reference_keywords()


def _checkpoint_case(args) -> tuple[dict, dict, list[str]]:
    """A case made of the user's weights, a random input and the float64 reference's results.

    Returns:
      (config, arrays, notes): the case, and lines on what was assumed where the weights are silent.
    """
    import convlstm_jax

    from .generate import make_inputs

    user = read_config(args.config) if args.config else {}
    source = f"--config {args.config}" if args.config else str(args.checkpoint)
    stacks = checkpoint_stacks(read_checkpoint(args.checkpoint, args.prefix), args.checkpoint)
    kwargs, merge, notes = checkpoint_options(stacks, user, source, args.checkpoint)
    model = convlstm_jax.ConvLSTM(**kwargs)
    rank = model.spatial_dims
    params = {}
    for prefix, stack in stacks.items():
        try:  # the weights against the model --config describes
            variables = convlstm_jax.torch_to_flax(stack, model, dtype=np.float32)
        except ValueError as error:
            raise ValueError(f"{prefix}*: {error}" if prefix else str(error)) from None
        params |= {f"param/{prefix}{k}": v for k, v in convlstm_jax.flax_to_torch(variables, model).items()}

    batch, steps, *frame = args.shape
    if len(frame) != rank:
        axes = spatial_axes(rank).replace(" ", "")
        raise ValueError(f"the checkpoint's convolutions are {rank}-D: --shape takes B,T,{axes}, got {args.shape}.")
    try:
        model.state_sizes(tuple(frame))
        check_frame(model.layer_specs()[0], tuple(frame))
    except ValueError as error:
        raise ValueError(f"--shape {','.join(map(str, args.shape))}: {error}") from None

    specs = model.layer_specs()
    config: dict[str, Any] = {
        "input_dim": specs[0].input_dim,
        "hidden_dim": [s.hidden_dim for s in specs],
        "kernel_size": [list(s.kernel_size) for s in specs],
        "num_layers": len(specs),
        "batch_first": model.batch_first,
        "bias": model.bias,
        "return_all_layers": model.return_all_layers,
        "peephole": model.peephole,
        "batch": batch,
        "steps": steps,
        "initial_state": merge is None,  # a Bidirectional takes one initial state per direction
    }
    if any(s.input_kernel_size != s.kernel_size for s in specs):
        config["input_kernel_size"] = [list(s.input_kernel_size) for s in specs]
    if any(s.padding != "same" for s in specs):
        config["padding"] = [s.padding for s in specs]
    for name in ("stride", "dilation"):
        if any(set(getattr(s, name)) != {1} for s in specs):
            config[name] = [list(getattr(s, name)) for s in specs]
    if model.reverse:
        config |= {"reverse": True, "keep_order": model.keep_order}
    if model.forget_bias:
        config["forget_bias"] = model.forget_bias
    if model.layer_norm:
        config |= {"layer_norm": True, "frame_size": list(model.layer_specs()[0].frame_size)}
    if merge:
        config["bidirectional"] = merge
    config |= {"height": frame[0], "width": frame[1]} if rank == 2 else {"frame": frame}

    arrays = {k: v for k, v in make_inputs(config, args.seed).items() if not k.startswith("param/")} | params
    arrays |= {f"expected/{k}": v for k, v in TORCH_FLOAT64.compute(config, arrays).items()}
    return config, arrays, notes


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.config and not args.checkpoint:
        parser.error("--config goes with --checkpoint")
    has_torch = importlib.util.find_spec("torch") is not None
    framework = args.framework
    if not has_torch and (args.checkpoint or framework == "torch"):
        print("convlstm-parity: this needs torch (pip install 'convlstm-jax[torch]').", file=sys.stderr)
        return 2
    if not has_torch and framework != "jax":
        print("torch is not installed: checking the JAX port alone.\n")
        framework = "jax"
    runs = _runs(framework, args.channels_last, args.strategies, args.nnx)

    try:
        if args.checkpoint:
            config, arrays, notes = _checkpoint_case(args)
            cases = [(args.checkpoint.name, config, arrays)]
            runs = [run for run in runs if run is not TORCH_FLOAT64]  # it computed the expected values
            for line in notes:
                print(line)
            print(f"Expected: torch float64 on these weights and a random input (--seed {args.seed}).\n")
        else:
            manifest = load_manifest(args.vectors)
            names = args.case or sorted(manifest["cases"])
            cases = []
            for name in names:
                cases.append(
                    (name, manifest["cases"].get(name, {}).get("config"), load_case(name, args.vectors, manifest))
                )
    except (VectorError, ValueError, TypeError, OSError) as error:
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
