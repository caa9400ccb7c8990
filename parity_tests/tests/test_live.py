"""torch against JAX, live, on random configurations beyond the shared vectors."""

import jax
import pytest
from hypothesis import given, settings
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


def _check_live(config, seed, runs, record_outcomes):
    arrays = make_inputs(config, seed)
    arrays.update({f"expected/{k}": v for k, v in run_torch(config, arrays, "float64").items()})
    outcomes = check(config, arrays, runs)
    record_outcomes(outcomes)
    assert all(o.passed for o in outcomes), format_table("live", config, outcomes)


@given(configs(), st.integers(0, 2**31 - 1))
def test_random_configurations(record_outcomes, config, seed):
    _check_live(config, seed, [_TORCH[1], _JAX[1]], record_outcomes)  # float32 against the float64 reference


@pytest.mark.slow
@settings(max_examples=40)
@given(configs(), st.integers(0, 2**31 - 1))
def test_many_random_configurations_every_run(record_outcomes, config, seed):
    runs = [*_TORCH, *_JAX, JAX_CHANNELS_LAST]
    if config["peephole"] == "conv" and config["steps"] > 1 and jax.default_backend() == "cpu":
        # XLA:CPU miscompiles these float64 gradients for some frame sizes: a known bug, held by
        # convlstm_jax/tests/test_conv.py::test_float64_conv_peephole_gradients_in_a_rolled_loop.
        runs.remove(_JAX[0])
    _check_live(config, seed, runs, record_outcomes)
