"""torch against JAX, live, on random configurations beyond the shared vectors."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from parity_tests.check import JAX_CHANNELS_LAST, check, format_table
from parity_tests.check import JAX_RUNS as _JAX
from parity_tests.check import TORCH_RUNS as _TORCH
from parity_tests.generate import make_inputs
from parity_tests.runs import run_torch

ODD = st.sampled_from([1, 3, 5, 7])
FRAME = {1: st.integers(1, 16), 2: st.integers(1, 12), 3: st.integers(1, 5)}
"""The frame's size per axis, by spatial rank: volumes stay small."""


@st.composite
def configs(draw):
    num_layers = draw(st.integers(1, 3))
    rank = draw(st.sampled_from([1, 2, 2, 3]))  # images twice as often as signals or volumes
    odd = ODD if rank < 3 else st.sampled_from([1, 3])

    def per_layer(values):  # one tuple (a list, as JSON has it) per layer and axis
        return st.lists(st.lists(values, min_size=rank, max_size=rank), min_size=num_layers, max_size=num_layers)

    config = {
        "input_dim": draw(st.integers(0, 3)),
        "hidden_dim": draw(st.lists(st.integers(1, 8), min_size=num_layers, max_size=num_layers)),
        "kernel_size": draw(per_layer(odd)),
        "num_layers": num_layers,
        "batch_first": draw(st.booleans()),
        "bias": draw(st.booleans()),
        "return_all_layers": draw(st.booleans()),
        "peephole": draw(st.sampled_from(["conv", "hadamard", None])),
        "batch": draw(st.integers(1, 2)),
        "steps": draw(st.integers(1, 6)),
        "frame": draw(st.lists(FRAME[rank], min_size=rank, max_size=rank)),
        "initial_state": draw(st.booleans()),
    }
    # The options beyond the seed's, each present or not.
    if draw(st.booleans()):
        config["input_kernel_size"] = draw(per_layer(odd))
    if draw(st.booleans()):
        config["reverse"] = True
        config["keep_order"] = draw(st.booleans())
    if draw(st.booleans()):
        config["seq_lengths"] = draw(
            st.lists(st.integers(0, config["steps"]), min_size=config["batch"], max_size=config["batch"])
        )
    if draw(st.booleans()):  # the input-to-state convolution's padding, stride and dilation
        config["padding"] = draw(st.sampled_from(["same", "valid"]))
        config["stride"], config["dilation"] = draw(per_layer(st.integers(1, 2))), draw(per_layer(st.integers(1, 2)))
        if config["padding"] == "valid":  # frames large enough for every layer's valid convolution
            kernels = config.get("input_kernel_size", config["kernel_size"])
            layers = list(zip(kernels, config["stride"], config["dilation"]))
            for axis in range(rank):
                needed = 1
                for kernel, stride, dilation in reversed(layers):
                    needed = (needed - 1) * stride[axis] + dilation[axis] * (kernel[axis] - 1) + 1
                config["frame"][axis] = max(config["frame"][axis], needed)
    extra = draw(st.sampled_from([None, "dropout_masks", "bidirectional"]))
    if extra == "dropout_masks":
        config["dropout_masks"] = True
    elif extra == "bidirectional":
        config["bidirectional"] = draw(st.sampled_from(["concat", "sum"]))
        config["initial_state"] = False
    return config


def _layers(count, **per_layer):
    return {"num_layers": count, **per_layer}


EXAMPLES = {
    # Configurations `configs()` can draw that, together, hold every rank with every peephole and
    # every option: explicit examples run whatever the profile draws.
    "signals_conv_valid_stride_dilation": {
        "input_dim": 2,
        **_layers(2, hidden_dim=[3, 2], kernel_size=[[3], [1]], input_kernel_size=[[5], [3]]),
        "batch_first": True,
        "bias": False,
        "return_all_layers": True,
        "peephole": "conv",
        "batch": 2,
        "steps": 4,
        "frame": [13],
        "initial_state": True,
        "reverse": True,
        "keep_order": False,
        "seq_lengths": [4, 0],
        "padding": "valid",
        "stride": [[2], [1]],
        "dilation": [[1], [2]],
    },
    "images_hadamard_no_input_dropout": {
        "input_dim": 0,
        **_layers(3, hidden_dim=[2, 3, 2], kernel_size=[[3, 3], [1, 3], [3, 1]]),
        "batch_first": False,
        "bias": True,
        "return_all_layers": False,
        "peephole": "hadamard",
        "batch": 2,
        "steps": 3,
        "frame": [5, 4],
        "initial_state": True,
        "reverse": True,
        "keep_order": True,
        "seq_lengths": [1, 3],
        "dropout_masks": True,
    },
    "volumes_none_bidirectional_concat": {
        "input_dim": 1,
        **_layers(1, hidden_dim=[2], kernel_size=[[3, 1, 3]]),
        "batch_first": True,
        "bias": True,
        "return_all_layers": False,
        "peephole": None,
        "batch": 2,
        "steps": 3,
        "frame": [3, 4, 5],
        "initial_state": False,
        "seq_lengths": [3, 2],
        "padding": "same",
        "stride": [[1, 2, 2]],
        "dilation": [[1, 1, 1]],
        "bidirectional": "concat",
    },
    "signals_hadamard_bidirectional_sum": {
        "input_dim": 2,
        **_layers(2, hidden_dim=[2, 3], kernel_size=[[3], [3]]),
        "batch_first": True,
        "bias": True,
        "return_all_layers": True,
        "peephole": "hadamard",
        "batch": 2,
        "steps": 3,
        "frame": [9],
        "initial_state": False,
        "reverse": True,
        "keep_order": True,
        "seq_lengths": [2, 3],
        "padding": "same",
        "stride": [[2], [1]],
        "dilation": [[1], [2]],
        "bidirectional": "sum",
    },
    "signals_none_one_step_dropout": {
        "input_dim": 1,
        **_layers(1, hidden_dim=[3], kernel_size=[[5]]),
        "batch_first": False,
        "bias": False,
        "return_all_layers": False,
        "peephole": None,
        "batch": 1,
        "steps": 1,
        "frame": [7],
        "initial_state": True,
        "dropout_masks": True,
    },
    "images_conv_input_kernels_bidirectional_sum": {
        "input_dim": 3,
        **_layers(2, hidden_dim=[2, 3], kernel_size=[[3, 3], [3, 3]], input_kernel_size=[[1, 5], [3, 3]]),
        "batch_first": False,
        "bias": True,
        "return_all_layers": True,
        "peephole": "conv",
        "batch": 1,
        "steps": 2,
        "frame": [6, 5],
        "initial_state": False,
        "bidirectional": "sum",
    },
    "images_none_reverse_computed_order_dropout": {
        "input_dim": 3,
        **_layers(1, hidden_dim=[4], kernel_size=[[1, 1]], input_kernel_size=[[3, 5]]),
        "batch_first": False,
        "bias": False,
        "return_all_layers": False,
        "peephole": None,
        "batch": 2,
        "steps": 4,
        "frame": [5, 6],
        "initial_state": True,
        "reverse": True,
        "keep_order": False,
        "dropout_masks": True,
    },
    "volumes_hadamard_valid_dropout": {
        "input_dim": 2,
        **_layers(2, hidden_dim=[2, 2], kernel_size=[[1, 3, 3], [3, 3, 1]]),
        "batch_first": True,
        "bias": False,
        "return_all_layers": True,
        "peephole": "hadamard",
        "batch": 2,
        "steps": 2,
        "frame": [4, 7, 5],
        "initial_state": True,
        "padding": "valid",
        "stride": [[1, 1, 2], [1, 1, 1]],
        "dilation": [[1, 1, 1], [1, 2, 1]],
        "dropout_masks": True,
    },
    "volumes_conv_no_input": {
        "input_dim": 0,
        **_layers(2, hidden_dim=[2, 2], kernel_size=[[3, 3, 3], [1, 1, 1]]),
        "batch_first": True,
        "bias": True,
        "return_all_layers": True,
        "peephole": "conv",
        "batch": 2,
        "steps": 2,
        "frame": [3, 3, 4],
        "initial_state": True,
        "seq_lengths": [0, 2],
    },
}
FAST_EXAMPLES = (
    "signals_conv_valid_stride_dilation",
    "images_hadamard_no_input_dropout",
    "volumes_none_bidirectional_concat",
)
"""The examples of the default run: every rank, every peephole; the slow run has all of them."""


def with_examples(names):
    """Adds `EXAMPLES[name]` (with seed 0) for each name as an explicit example of a
    `@given(configs(), seeds)` test."""

    def decorate(test):
        for name in reversed(names):
            test = example(EXAMPLES[name], 0).via(name)(test)
        return test

    return decorate


def _check_live(config, seed, runs, record_outcomes):
    arrays = make_inputs(config, seed)
    arrays.update({f"expected/{k}": v for k, v in run_torch(config, arrays, "float64").items()})
    outcomes = check(config, arrays, runs)
    record_outcomes(outcomes)
    assert all(o.passed for o in outcomes), format_table("live", config, outcomes)


@pytest.mark.needs_torch
@given(configs(), st.integers(0, 2**31 - 1))
@with_examples(FAST_EXAMPLES)
def test_random_configurations(record_outcomes, config, seed):
    _check_live(config, seed, [_TORCH[1], _JAX[1]], record_outcomes)  # float32 against the float64 reference


@pytest.mark.slow
@pytest.mark.needs_torch
@settings(max_examples=40)
@given(configs(), st.integers(0, 2**31 - 1))
@with_examples(list(EXAMPLES))
def test_many_random_configurations_every_run(record_outcomes, config, seed):
    # Not torch float64: the expected results are its own, computed in this process.
    runs = [_TORCH[1], *_JAX, JAX_CHANNELS_LAST]
    _check_live(config, seed, runs, record_outcomes)


def _options(config):
    """The rank, peephole and options a configuration holds, as names."""
    rank = len(config["frame"])
    found = {f"rank {rank}", f"peephole {config['peephole']}", f"rank {rank} peephole {config['peephole']}"}
    found |= {f"{config['num_layers']} layers", f"batch {config['batch']}", f"{config['steps']} steps"}
    found |= {f"{flag} {config[flag]}" for flag in ("bias", "batch_first", "return_all_layers", "initial_state")}
    found |= {"no input"} if config["input_dim"] == 0 else set()
    found |= {"input kernels"} if "input_kernel_size" in config else set()
    if config.get("reverse"):
        found.add(f"reverse keep_order {config['keep_order']}")
    if "seq_lengths" in config:
        found |= {"seq_lengths", *(["a length 0"] if 0 in config["seq_lengths"] else [])}
    if "padding" in config:
        found.add(f"padding {config['padding']}")
        found |= {f"{name} 2" for name in ("stride", "dilation") if any(2 in axes for axes in config[name])}
    found |= {"dropout masks"} if config.get("dropout_masks") else set()
    found |= {f"bidirectional {config['bidirectional']}"} if config.get("bidirectional") else set()
    return found


def _drawable(config):
    """Whether `configs()` can draw `config`: its keys, ranges and per-layer lengths."""
    rank, n = len(config["frame"]), config["num_layers"]
    keys = {"input_dim", "hidden_dim", "kernel_size", "num_layers", "batch_first", "bias", "return_all_layers"}
    keys |= {"peephole", "batch", "steps", "frame", "initial_state", "input_kernel_size", "reverse", "keep_order"}
    keys |= {"seq_lengths", "padding", "stride", "dilation", "dropout_masks", "bidirectional"}
    kernels = [config["kernel_size"], config.get("input_kernel_size", config["kernel_size"])]
    odd = {1, 3, 5, 7} if rank < 3 else {1, 3}
    per_axis = [config.get(name, [[1] * rank] * n) for name in ("stride", "dilation")]
    return (
        set(config) <= keys
        and rank in (1, 2, 3)
        and 1 <= n <= 3
        and 0 <= config["input_dim"] <= 3
        and len(config["hidden_dim"]) == n
        and all(1 <= h <= 8 for h in config["hidden_dim"])
        and all(len(k) == n and all(len(a) == rank and set(a) <= odd for a in k) for k in kernels)
        and all(len(v) == n and all(len(a) == rank and set(a) <= {1, 2} for a in v) for v in per_axis)
        and config["peephole"] in ("conv", "hadamard", None)
        and 1 <= config["batch"] <= 2
        and 1 <= config["steps"] <= 6
        and len(config.get("seq_lengths", [0] * config["batch"])) == config["batch"]
        and all(0 <= length <= config["steps"] for length in config.get("seq_lengths", []))
        and ("keep_order" in config) == bool(config.get("reverse"))
        and ("padding" in config) == ("stride" in config) == ("dilation" in config)
        and config.get("padding", "same") in ("same", "valid")
        and not (config.get("dropout_masks") and config.get("bidirectional"))
        and config.get("bidirectional", "concat") in ("concat", "sum")
        and not (config.get("bidirectional") and config["initial_state"])
    )


def test_the_examples_cover_every_rank_peephole_and_option():
    assert all(_drawable(config) for config in EXAMPLES.values()), [n for n, c in EXAMPLES.items() if not _drawable(c)]
    every = set().union(*map(_options, EXAMPLES.values()))
    ranks_and_peepholes = {f"rank {r} peephole {p}" for r in (1, 2, 3) for p in ("conv", "hadamard", None)}
    flags = {
        f"{flag} {v}" for flag in ("bias", "batch_first", "return_all_layers", "initial_state") for v in (False, True)
    }
    options = {"no input", "input kernels", "reverse keep_order True", "reverse keep_order False", "seq_lengths"}
    options |= {"a length 0", "padding same", "padding valid", "stride 2", "dilation 2", "dropout masks"}
    options |= {"bidirectional concat", "bidirectional sum", "1 layers", "2 layers", "3 layers", "1 steps"}
    options |= {"batch 1", "batch 2"}
    wanted = ranks_and_peepholes | flags | options
    assert wanted <= every, sorted(wanted - every, key=str)
    fast = set().union(*(_options(EXAMPLES[name]) for name in FAST_EXAMPLES))
    assert {f"rank {r}" for r in (1, 2, 3)} | {f"peephole {p}" for p in ("conv", "hadamard", None)} <= fast
