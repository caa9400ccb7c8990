"""Bad input answered the same way by both frameworks; determinism; finite results at length."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, the reference (not installed in this virtualenv)")

import torch
from hypothesis import example, given
from hypothesis import strategies as st
from jax.experimental import checkify

import convlstm_jax
import convlstm_torch
from parity_tests.generate import make_inputs
from parity_tests.runs import model_kwargs, run_jax, run_torch
from parity_tests.tests.test_live import EXAMPLES, configs

# What each framework calls the input argument; the other arguments share their names.
INPUT_NAME = {"torch": "input_tensor", "jax": "x"}


def _torch_error(kwargs, x, state):
    try:
        model = convlstm_torch.ConvLSTM(**kwargs)
        model(torch.from_numpy(x), None if state is None else [tuple(map(torch.from_numpy, s)) for s in state])
    except (TypeError, ValueError) as error:
        return error
    return None


def _jax_error(kwargs, x, state):
    try:
        model = convlstm_jax.ConvLSTM(**kwargs, channels_last=False)
        jax.eval_shape(model.init, jax.random.key(0), jnp.asarray(x), state)
    except (TypeError, ValueError) as error:
        return error
    return None


CORRUPTIONS = {
    # name: (what to change, the argument the message must name)
    "rank": ("x", "input"),
    "channels": ("x", "input"),
    "int_dtype": ("x", "input"),
    "complex_dtype": ("x", "input"),
    "zero_hidden": ("hidden_dim", "hidden_dim"),
    "negative_layers": ("num_layers", "num_layers"),
    "even_kernel": ("kernel_size", "kernel_size"),
    "zero_kernel": ("kernel_size", "kernel_size"),
    "short_hidden_list": ("hidden_dim", "hidden_dim"),
    "state_count": ("hidden_state", "hidden_state"),
    "state_shape": ("hidden_state", "hidden_state"),
    "unknown_peephole": ("peephole", "peephole"),
    "unknown_rank": ("spatial_dims", "spatial_dims"),
}
FRAMES = {1: (5,), 2: (5, 4), 3: (3, 5, 4)}
"""The frames of the corrupted configurations, by spatial rank."""


def _corrupt(config, kind):
    # The fixed frames and states below need an input-to-state convolution that keeps the frame
    # size; the errors of padding, stride and dilation are tested with those options.
    kwargs = model_kwargs(config) | {"padding": "same", "stride": 1, "dilation": 1}
    rank = kwargs["spatial_dims"]
    frame = FRAMES[rank]
    x = np.ones((2, 3, config["input_dim"], *frame), np.float32)
    n, b = config["num_layers"], 3 if config["batch_first"] else 2
    state = [(np.zeros((b, h, *frame), np.float32),) * 2 for h in config["hidden_dim"]]
    if kind == "rank":
        x = x[0]
    elif kind == "channels":
        x = np.ones((2, 3, config["input_dim"] + 1, *frame), np.float32)
    elif kind == "int_dtype":
        x = x.astype(np.int32)
    elif kind == "complex_dtype":
        x = x.astype(np.complex64)
    elif kind == "zero_hidden":
        kwargs["hidden_dim"] = [0, *kwargs["hidden_dim"][1:]]
    elif kind == "negative_layers":
        kwargs["num_layers"] = -n
    elif kind == "even_kernel":
        kwargs["kernel_size"] = [(2,) + (3,) * (rank - 1)] * n
    elif kind == "zero_kernel":
        kwargs["kernel_size"] = [(0,) + (1,) * (rank - 1)] * n
    elif kind == "short_hidden_list":
        kwargs["num_layers"] = n + 1
    elif kind == "state_count":
        state = state[:-1] if n > 1 else state * 2
    elif kind == "state_shape":
        state[-1] = (np.zeros((b, config["hidden_dim"][-1] + 1, *frame), np.float32),) * 2
    elif kind == "unknown_peephole":
        kwargs["peephole"] = "paper"
    elif kind == "unknown_rank":
        kwargs["spatial_dims"] = 4
    return kwargs, x, state if kind.startswith("state") or config["initial_state"] else None


def _every_corruption_in_every_rank(test):
    # Explicit examples: each corruption on a configuration of each rank, the configurations
    # taken in turn from the live test's examples (every peephole and option among them).
    by_rank = {rank: [c for c in EXAMPLES.values() if len(c["frame"]) == rank] for rank in (1, 2, 3)}
    for index, kind in enumerate(sorted(CORRUPTIONS)):
        for rank, configs_of_rank in by_rank.items():
            test = example(configs_of_rank[index % len(configs_of_rank)], kind).via(f"{kind}, rank {rank}")(test)
    return test


@given(configs(), st.sampled_from(sorted(CORRUPTIONS)))
@_every_corruption_in_every_rank
def test_both_frameworks_reject_bad_input_alike(config, kind):
    kwargs, x, state = _corrupt(config, kind)
    torch_error, jax_error = _torch_error(kwargs, x, state), _jax_error(kwargs, x, state)
    assert torch_error is not None and jax_error is not None, (kind, torch_error, jax_error)
    assert type(torch_error) is type(jax_error), (kind, torch_error, jax_error)
    argument = CORRUPTIONS[kind][1]
    for framework, error in (("torch", torch_error), ("jax", jax_error)):
        name = INPUT_NAME[framework] if argument == "input" else argument
        assert str(error).startswith(name) or f" {name}" in str(error), (framework, kind, str(error))


def test_nan_and_inf_are_caught_on_request():
    x = np.ones((3, 2, 2, 5, 5), np.float32)
    x[1, 0, 1, 2, 2] = np.nan
    torch_model = convlstm_torch.ConvLSTM(2, 4, 3, 1, check_finite=True)
    with pytest.raises(ValueError, match=r"input_tensor holds 1 NaN or inf value\(s\)"):
        torch_model(torch.from_numpy(x))
    model = convlstm_jax.ConvLSTM(2, 4, 3, 1, channels_last=False, check_finite=True)
    variables = convlstm_jax.torch_to_flax(torch_model.state_dict())
    with pytest.raises(checkify.JaxRuntimeError, match=r"x holds 1 NaN or inf value\(s\)"):
        model.apply(variables, jnp.asarray(x))  # outside jit: raises at once
    error, _ = jax.jit(checkify.checkify(model.apply))(variables, jnp.asarray(x))  # under jit: functionalised
    with pytest.raises(checkify.JaxRuntimeError, match="x holds 1 NaN"):
        error.throw()
    state = [(jnp.zeros((2, 4, 5, 5)), jnp.full((2, 4, 5, 5), jnp.inf))]
    error, _ = jax.jit(checkify.checkify(model.apply))(variables, jnp.ones((3, 2, 2, 5, 5)), state)
    assert "hidden_state[0] c holds 200 NaN or inf" in error.get()
    # Off by default: NaN propagates as arithmetic makes it.
    outputs, _ = convlstm_jax.ConvLSTM(2, 4, 3, 1, channels_last=False).apply(variables, jnp.asarray(x))
    assert bool(jnp.isnan(outputs[0][0, 1:]).any()) and not bool(jnp.isnan(outputs[0][0, 0]).any())


CONFIG = {
    "input_dim": 2,
    "hidden_dim": [4, 3],
    "kernel_size": [[3, 3], [3, 3]],
    "num_layers": 2,
    "batch_first": False,
    "bias": True,
    "return_all_layers": True,
    "peephole": "hadamard",
    "batch": 2,
    "steps": 4,
    "height": 6,
    "width": 5,
    "initial_state": True,
}


def test_the_same_seed_gives_the_same_bits():
    arrays = make_inputs(CONFIG, 7)
    for run in (run_torch, run_jax):
        first, second = run(CONFIG, arrays), run(CONFIG, arrays)
        assert all(np.array_equal(first[k], second[k]) for k in first), run.__name__
    model = convlstm_jax.ConvLSTM(2, [4, 3], 3, 2, peephole="hadamard")
    x = jnp.ones((1, 1, 5, 5, 2))
    jax.tree.map(np.testing.assert_array_equal, model.init(jax.random.key(3), x), model.init(jax.random.key(3), x))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("scale", [1.0, 1e4], ids=["unit-input", "saturated-gates"])
def test_a_thousand_steps_stay_finite(dtype, scale):
    config = CONFIG | {"steps": 1000, "batch": 1, "height": 4, "width": 4, "num_layers": 1, "hidden_dim": [3]}
    config |= {"kernel_size": [[3, 3]]}
    arrays = make_inputs(config, 11)
    arrays["input"] = arrays["input"] * np.float32(scale)
    results = run_jax(config, arrays, dtype)
    assert all(np.isfinite(value).all() for value in results.values()), [
        k for k, v in results.items() if not np.isfinite(v).all()
    ]
