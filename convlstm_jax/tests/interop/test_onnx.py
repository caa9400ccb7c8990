"""`convlstm_jax.to_onnx`: a Linen model, exported in one call, runs in onnxruntime as `model.apply` runs."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convlstm_common.tolerance import tolerance_for
from convlstm_jax import Bidirectional, ConvLSTM
from convlstm_jax.interop.onnx import to_onnx

torch = pytest.importorskip("torch")
pytest.importorskip("onnx", reason="to_onnx needs onnx (pip install convlstm-jax[interop])")
pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript (pip install convlstm-jax[interop])")
ort = pytest.importorskip("onnxruntime", reason="the exported models run in onnxruntime (convlstm-jax[interop])")

pytestmark = pytest.mark.needs_torch

TOLERANCE = tolerance_for("float32")


def _init(model, x):
    variables = model.init(jax.random.key(1), jnp.asarray(x))
    # Hadamard peepholes start at zero: give them values, so that a lost one would show.
    return jax.tree.map(lambda v: v + 0.1 if v.ndim == 1 else v, variables)


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _normal(rng, shape):
    return rng.normal(size=shape).astype(np.float32)


def test_a_channels_last_stack_with_an_initial_state(tmp_path):
    model = ConvLSTM(
        None, [4, 3], [3, (1, 3)], 2, batch_first=True, return_all_layers=True, peephole="hadamard", stride=[2, 1]
    )
    rng = np.random.default_rng(0)
    variables = _init(model, _normal(rng, (2, 3, 9, 7, 2)))
    # Traced at batch 1 and one step, in the Linen layout (B, T, H, W, C).
    path = to_onnx(model, variables, tmp_path / "model.onnx", jnp.zeros((1, 1, 9, 7, 2)), initial_state=True)
    x = _normal(rng, (3, 5, 9, 7, 2))
    state = [(_normal(rng, (3, 5, 4, d)), _normal(rng, (3, 5, 4, d))) for d in (4, 3)]  # stride 2: 9x7 -> 5x4
    feed = {"x": x, "h0": state[0][0], "c0": state[0][1], "h1": state[1][0], "c1": state[1][1]}
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == list(feed)
    results = session.run(None, feed)
    with jax.default_matmul_precision("highest"):
        outputs, states = model.apply(variables, x, state)
    expected = [*outputs, *jax.tree.leaves(states)]
    assert [o.name for o in session.get_outputs()] == ["output0", "output1", "h0_out", "c0_out", "h1_out", "c1_out"]
    for name, actual, value in zip([o.name for o in session.get_outputs()], results, expected):
        assert actual.shape == value.shape, name
        assert TOLERANCE.score(actual, value) <= 1, name


def test_a_bidirectional_model_with_lengths(tmp_path):
    model = Bidirectional(ConvLSTM(None, 3, 3, 1, batch_first=False), merge="sum")
    rng = np.random.default_rng(1)
    variables = _init(model, _normal(rng, (3, 2, 6, 5, 2)))
    path = to_onnx(model, variables, tmp_path / "model.onnx", np.zeros((3, 2, 6, 5, 2)), seq_lengths=True)
    x = _normal(rng, (4, 3, 6, 5, 2))  # (T, B, H, W, C)
    lengths = np.array([4, 1, 3])
    results = _session(path).run(None, {"x": x, "seq_lengths": lengths})
    with jax.default_matmul_precision("highest"):
        outputs, states = model.apply(variables, x, seq_lengths=jnp.asarray(lengths))
    for actual, value in zip(results, [*outputs, *jax.tree.leaves(states)], strict=True):
        assert TOLERANCE.score(actual, value) <= 1


def test_a_channels_first_model_keeps_the_torch_layout(tmp_path):
    model = ConvLSTM(
        None, 3, 5, 1, spatial_dims=1, channels_last=False, bias=False, peephole=None, reverse=True, keep_order=False
    )
    rng = np.random.default_rng(2)
    variables = _init(model, _normal(rng, (3, 2, 2, 11)))  # (T, B, C, L)
    path = to_onnx(model, variables, tmp_path / "model.onnx", np.zeros((3, 2, 2, 11), np.float32))
    x = _normal(rng, (5, 3, 2, 11))
    results = _session(path).run(None, {"x": x})
    with jax.default_matmul_precision("highest"):
        outputs, states = model.apply(variables, x)
    for actual, value in zip(results, [*outputs, *jax.tree.leaves(states)], strict=True):
        assert TOLERANCE.score(actual, value) <= 1


def test_the_step_model_in_the_linen_layout(tmp_path):
    model = ConvLSTM(None, [4, 3], 3, 2, batch_first=True, return_all_layers=True, padding="valid")
    rng = np.random.default_rng(3)
    x = _normal(rng, (2, 4, 8, 7, 2))
    variables = _init(model, x)
    session = _session(to_onnx(model, variables, tmp_path / "step.onnx", x, step=True))  # a sequence: its first frame
    with jax.default_matmul_precision("highest"):
        outputs, states = model.apply(variables, x)
    sizes = [(6, 5, 4), (4, 3, 3)]  # valid 3x3 convolutions: 8x7 -> 6x5 -> 4x3
    state = {f"{k}{layer}": np.zeros((2, *size), np.float32) for layer, size in enumerate(sizes) for k in "hc"}
    steps = []
    for t in range(x.shape[1]):
        results = session.run(None, {"x": x[:, t], **state})
        state = dict(zip(state, results))
        steps.append([state["h0"], state["h1"]])
    for layer in range(2):
        assert TOLERANCE.score(np.stack([s[layer] for s in steps], axis=1), outputs[layer]) <= 1
        for k, value in zip("hc", states[layer]):
            assert TOLERANCE.score(state[f"{k}{layer}"], value) <= 1


@functools.cache
def _stack():
    model = ConvLSTM(None, 4, 3, 1, batch_first=True)
    return model, model.init(jax.random.key(0), jnp.zeros((2, 3, 8, 8, 2)))


def _bad(**changes):
    model, variables = _stack()
    arguments = {
        "model": model,
        "variables": variables,
        "path": "model.onnx",
        "example_input": jnp.zeros((2, 3, 8, 8, 2)),
    }
    return arguments | changes


BAD = {
    "model": (lambda: _bad(model=object()), TypeError, "model must be a Linen convlstm_jax.ConvLSTM or Bidirectional"),
    "variables": (lambda: _bad(variables=[1]), TypeError, r"variables must be a mapping \({'params': ...}\), got list"),
    "path": (lambda: _bad(path=None), TypeError, "path must be a str or os.PathLike, got NoneType"),
    "directory": (lambda: _bad(path="missing/model.onnx"), ValueError, "path's directory 'missing' does not exist"),
    "example type": (
        lambda: _bad(example_input=[0.0]),
        TypeError,
        "example_input must be a JAX or NumPy array, got list",
    ),
    "int example": (
        lambda: _bad(example_input=jnp.zeros((2, 3, 8, 8, 2), jnp.int32)),
        TypeError,
        "example_input must have a floating-point dtype, got int32",
    ),
    "channels": (
        lambda: _bad(example_input=jnp.zeros((2, 3, 8, 8, 5))),
        ValueError,
        r"example_input has 5 channels \(last of \(2, 3, 8, 8, 5\)\); the model's input_dim is 2",
    ),
    "layout": (
        lambda: _bad(example_input=jnp.zeros((2, 8, 8, 2))),
        ValueError,
        r"example_input must be a sequence \(B, T, H, W, C\)",
    ),
    "step of a bidirectional model": (
        lambda: _bad(model=Bidirectional(ConvLSTM(2, 4, 3, 1)), step=True),
        ValueError,
        "step=True exports one step of a unidirectional ConvLSTM",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_arguments_are_refused_before_any_export(name, tmp_path, monkeypatch):
    make, error, message = BAD[name]
    arguments = make()
    if name == "step of a bidirectional model":
        arguments["variables"] = arguments["model"].init(jax.random.key(0), jnp.zeros((3, 2, 8, 8, 2)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.export, "export", lambda *a, **k: pytest.fail("exported"))
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("exported"))
    with pytest.raises(error, match=message):
        to_onnx(**arguments)
    assert not list(tmp_path.iterdir())
