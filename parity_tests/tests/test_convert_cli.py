"""`convlstm-convert`: every supported direction writes the model and its configuration and passes its check,
a conversion that changes the numbers fails it (exit 1), and what cannot be converted exits 2 with one message."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import re

import jax
import numpy as np
import pytest

from parity_tests import convert

torch = pytest.importorskip("torch", reason="needs torch, the reference (not installed in this virtualenv)")

import convlstm_torch  # noqa: E402

pytestmark = pytest.mark.needs_torch

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="needs onnx, onnxscript and onnxruntime (convlstm-jax[interop])")
# Keras's variables' __array__ takes no `copy` (NumPy 2 warns when Keras converts them, saving and loading).
KERAS_WARNING = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"


def run(capsys, *argv) -> tuple[int, str, str]:
    """`convlstm-convert argv` in this process: (exit status, stdout, stderr)."""
    status = convert.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def score(out: str) -> float:
    """The check's worst score, as printed."""
    match = re.search(r"worst (\S+) of the float32 tolerance", out)
    assert match, out
    return float(match.group(1))


def converted(capsys, source, dest, *options) -> tuple[str, dict]:
    """Converts, asserts success (exit 0, the files, a passing score); returns the output and the configuration."""
    status, out, err = run(capsys, source, dest, *options)
    assert (status, err) == (0, ""), out + err
    assert dest.exists()
    beside = dest / "config.json" if dest.is_dir() else dest.with_suffix(".json")
    assert f"wrote  {dest}" in out and str(beside) in out
    assert 0 <= score(out) <= 1, out
    with capsys.disabled():  # shown with -s
        print(f"{source.name} -> {dest.name}: worst {score(out):.3g} of the float32 tolerance")
    config = json.loads(beside.read_text())
    assert config["source"] == str(source)
    return out, config


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """`model` with every weight drawn at random (the Hadamard peepholes and norms would start constant)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.rand(parameter.shape, generator=generator) - 0.5)
    return model


def save_torch(path, model):
    torch.save(randomised(model).state_dict(), path)
    return path


@pytest.fixture
def stack_pt(tmp_path):
    """A two-layer reference ConvLSTM's checkpoint: 2 -> [3, 4] channels, Hadamard peepholes."""
    return save_torch(tmp_path / "model.pt", convlstm_torch.ConvLSTM(2, [3, 4], 3, 2, peephole="hadamard"))


# --- one test per supported direction ----------------------------------------------------------------------


def test_torch_to_msgpack(capsys, tmp_path, stack_pt):
    dest = tmp_path / "model.msgpack"
    out, config = converted(capsys, stack_pt, dest)
    assert "torch reference" in out and "Linen" in out
    assert config["kind"] == "ConvLSTM" and config["format"] == "torch"
    options = config["options"]
    assert options["input_dim"] == 2 and options["hidden_dim"] == [3, 4] and options["peephole"] == "hadamard"
    assert options["kernel_size"] == [[3, 3], [3, 3]] and options["channels_last"] is True  # a Linen-only option
    from flax import serialization

    import convlstm_jax

    written = serialization.msgpack_restore(dest.read_bytes())
    expected = convlstm_jax.torch_to_flax(torch.load(stack_pt))
    assert jax.tree.structure(written) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(written), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)


@needs_onnx
def test_safetensors_to_onnx(capsys, tmp_path):
    from safetensors.torch import save_file

    model = randomised(convlstm_torch.ConvLSTM(2, [3], 3, 1, batch_first=True))
    source = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(source))
    out, config = converted(capsys, source, tmp_path / "model.onnx", "--shape", "1,2,8,8")
    assert "onnxruntime" in out and config["format"] == "safetensors"
    assert "(1, 2, 8, 8, 2)" in out


def test_torch_to_stablehlo(capsys, tmp_path, stack_pt):
    out, config = converted(capsys, stack_pt, tmp_path / "model.stablehlo", "--shape", "1,2,8,8")
    assert "stablehlo.load" in out and config["kind"] == "ConvLSTM"


def test_torch_to_stablehlo_in_torchs_layout(capsys, tmp_path, stack_pt):
    own = tmp_path / "options.json"
    own.write_text(json.dumps({"kind": "ConvLSTM", "options": {"channels_last": False}}))
    dest = tmp_path / "model.stablehlo"
    _, config = converted(capsys, stack_pt, dest, "--config", own, "--shape", "1,2,8,8")
    assert config["options"]["channels_last"] is False
    from convlstm_jax import stablehlo

    assert stablehlo.load(dest).exported.in_avals[0].shape[2:] == (2, 8, 8)  # (B, T, C, H, W), B and T symbolic


def test_msgpack_to_torch_gives_back_the_same_bits(capsys, tmp_path, stack_pt):
    converted(capsys, stack_pt, tmp_path / "model.msgpack")
    dest = tmp_path / "back.pt"
    _, config = converted(capsys, tmp_path / "model.msgpack", dest)  # no --config: model.json is beside
    assert config["format"] == "msgpack"
    original, back = torch.load(stack_pt), torch.load(dest)
    assert sorted(original) == sorted(back)
    for key in original:
        assert torch.equal(original[key], back[key]), key


def test_orbax_to_torch(capsys, tmp_path, stack_pt):
    orbax = tmp_path / "checkpoint"
    _, config = converted(capsys, stack_pt, orbax)
    assert (orbax / "_METADATA").is_file() and config["kind"] == "ConvLSTM"
    _, config = converted(capsys, orbax, tmp_path / "back.pt")
    assert config["format"] == "orbax"
    original, back = torch.load(stack_pt), torch.load(tmp_path / "back.pt")
    assert all(torch.equal(original[key], back[key]) for key in original)


@needs_onnx
def test_bidirectional_torch_to_onnx(capsys, tmp_path):
    model = convlstm_torch.Bidirectional(convlstm_torch.ConvLSTM(2, [3], 3, 1, batch_first=True), merge="sum")
    source = save_torch(tmp_path / "bidirectional.pt", model)
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"bidirectional": {"merge": "sum"}}))
    out, config = converted(capsys, source, tmp_path / "model.onnx", "--config", options, "--shape", "1,2,8,8")
    assert config["kind"] == "Bidirectional" and config["merge"] == "sum"
    assert "5 result(s)" in out  # the merged outputs, and each direction's h and c


def test_layer_norm_model(capsys, tmp_path):
    model = convlstm_torch.ConvLSTM(2, [3, 4], 3, 2, layer_norm=True, frame_size=(8, 6), forget_bias=1.0)
    source = save_torch(tmp_path / "norm.pt", model)
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"forget_bias": 1.0}))  # not in the weights
    out, config = converted(capsys, source, tmp_path / "norm.msgpack", "--config", options)
    assert "(2, 3, 8, 6, 2)" in out  # the norms' frame, not 16x16
    assert config["options"]["layer_norm"] is True and config["options"]["frame_size"] == [8, 6]
    assert config["options"]["forget_bias"] == 1.0
    _, config = converted(capsys, tmp_path / "norm.msgpack", tmp_path / "norm.stablehlo")
    assert config["options"]["frame_size"] == [8, 6]


def test_a_msgpack_without_configuration_takes_its_geometry_from_the_config(capsys, tmp_path):
    model = convlstm_torch.ConvLSTM(2, [3, 4], 3, 2, stride=[2, 1], batch_first=True)
    source = save_torch(tmp_path / "strided.pt", model)
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"stride": [2, 1]}))
    converted(capsys, source, tmp_path / "strided.msgpack", "--config", options, "--shape", "1,2,9,9")
    (tmp_path / "strided.json").unlink()
    status, out, _ = run(capsys, tmp_path / "strided.msgpack", tmp_path / "plain.pt")
    assert status == 0 and "no configuration beside" in out  # stride 1 assumed: another, consistent model
    _, config = converted(capsys, tmp_path / "strided.msgpack", tmp_path / "strided.pt", "--config", options)
    assert config["options"]["stride"] == [[2, 2], [1, 1]]
    assert all(torch.equal(torch.load(source)[k], v) for k, v in torch.load(tmp_path / "strided.pt").items())


# --- OpenSTL -------------------------------------------------------------------------------------------------


@functools.cache
def _openstl():
    from convlstm_jax.tests import test_openstl

    return test_openstl


def test_openstl_model_to_msgpack(capsys, tmp_path):
    openstl = _openstl()
    configs = openstl.make_configs(layer_norm=1)
    model = openstl.openstl_model(configs)
    source = tmp_path / "openstl.pth"
    torch.save({"model": {f"model.{k}": v for k, v in model.state_dict().items()}}, source)  # nested, prefixed
    options = tmp_path / "openstl_configs.json"
    options.write_text(json.dumps(vars(configs)))
    out, config = converted(capsys, source, tmp_path / "predictor.msgpack", "--config", options)
    assert "OpenSTL itself is not" in out and "never uses" in out
    assert config["kind"] == "FramePredictor" and config["format"] == "openstl"
    assert config["options"]["patch_size"] == 2 and config["options"]["layer_norm"] is True
    assert "(2, 3, 8, 8, 2)" in out  # pre_seq_length frames of the norms' size times the patch
    _, again = converted(capsys, tmp_path / "predictor.msgpack", tmp_path / "predictor")  # to orbax, no --config
    assert again["options"] == config["options"]


def test_openstl_cells_to_torch(capsys, tmp_path):
    openstl = _openstl()
    source = tmp_path / "cells.pth"
    torch.save(openstl.cells_state_dict(openstl.openstl_cells(4, [5, 3], 3, False, (8, 8))), source)
    out, config = converted(capsys, source, tmp_path / "cells.pt", "--shape", "1,2,8,8")
    assert "patch channels" in out
    assert config["options"]["bias"] is False and config["options"]["peephole"] is None


# --- Keras ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def keras_jax():
    """Keras's own JAX code broadcasts ranks and promotes dtypes: allowed while it runs."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def keras_model(bidirectional: bool = False):
    """A Keras stack (or Bidirectional) of ConvLSTM2D on 8x8 frames of 2 channels, with random weights."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras", reason="needs keras 3 (convlstm-jax[interop])")
    if keras.backend.backend() != "jax":
        pytest.skip(f"needs Keras on the JAX backend, got {keras.backend.backend()!r}")
    zeros = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}  # orthogonal init is slow
    with keras_jax():
        if bidirectional:
            layers = [keras.layers.Bidirectional(keras.layers.ConvLSTM2D(3, 3, padding="same", **zeros))]
        else:
            layers = [
                keras.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True, **zeros),
                keras.layers.ConvLSTM2D(4, 3, padding="same", return_sequences=True, return_state=True, **zeros),
            ]
        model = keras.Sequential([keras.Input((None, 8, 8, 2)), *layers])
        rng = np.random.default_rng(0)
        for variable in model.weights:
            variable.assign(rng.normal(scale=0.4, size=variable.shape).astype("float32"))
    return keras, model


@pytest.mark.filterwarnings(KERAS_WARNING)
@pytest.mark.parametrize("dest", ["model.pt", pytest.param("model.onnx", marks=needs_onnx)])
def test_keras_to_torch_and_onnx(capsys, tmp_path, dest):
    _, model = keras_model()
    with keras_jax():
        model.save(tmp_path / "keras_model.keras")
    out, config = converted(capsys, tmp_path / "keras_model.keras", tmp_path / dest)
    assert "Keras" in out and config["format"] == "keras"
    assert "(2, 3, 8, 8, 2)" in out  # the Keras model's frames
    assert "3 result(s)" in out  # the sequence, h and c


@pytest.mark.filterwarnings(KERAS_WARNING)
@pytest.mark.parametrize("architecture", ["keras", "json"])
def test_keras_weights_with_their_architecture(capsys, tmp_path, architecture):
    _, model = keras_model()
    with keras_jax():
        model.save_weights(tmp_path / "stack.weights.h5")
        if architecture == "keras":
            model.save(tmp_path / "architecture.keras")
    config_file = tmp_path / ("architecture.keras" if architecture == "keras" else "architecture.json")
    if architecture == "json":
        config_file.write_text(json.dumps(model.get_config()))
    _, config = converted(capsys, tmp_path / "stack.weights.h5", tmp_path / "stack.msgpack", "--config", config_file)
    assert config["format"] == "keras-weights" and config["options"]["hidden_dim"] == [3, 4]


@pytest.mark.filterwarnings(KERAS_WARNING)
def test_keras_bidirectional_to_msgpack(capsys, tmp_path):
    _, model = keras_model(bidirectional=True)
    with keras_jax():
        model.save(tmp_path / "bidirectional.keras")
    out, config = converted(capsys, tmp_path / "bidirectional.keras", tmp_path / "bidirectional.msgpack")
    assert config["kind"] == "Bidirectional" and "merged_h/0" in out  # Keras's output: the two final h merged


@pytest.mark.filterwarnings(KERAS_WARNING)
def test_a_keras_model_of_fixed_frames_refuses_another_shape(capsys, tmp_path):
    _, model = keras_model()
    with keras_jax():
        model.save(tmp_path / "keras_model.keras")
    status, out, err = run(capsys, tmp_path / "keras_model.keras", tmp_path / "model.pt", "--shape", "1,2,9,9")
    assert status == 2 and out == "" and "takes frames of 8x8 only" in err, err


# --- a wrong conversion fails the check -----------------------------------------------------------------------


def _perturbed(writer):
    """`writer`, writing variables with one weight changed by 1e-3."""

    def write(model, variables, dest, example):
        leaves, tree = jax.tree.flatten(variables)
        leaves[0] = np.asarray(leaves[0]).copy()
        leaves[0].flat[0] += 1e-3
        return writer(model, jax.tree.unflatten(tree, leaves), dest, example)

    return write


@pytest.mark.parametrize("fmt, dest", [("msgpack", "model.msgpack"), ("torch", "back.pt")])
def test_a_changed_weight_fails_the_check(capsys, tmp_path, stack_pt, monkeypatch, fmt, dest):
    monkeypatch.setitem(convert.WRITERS, fmt, _perturbed(convert.WRITERS[fmt]))
    status, out, err = run(capsys, stack_pt, tmp_path / dest)
    assert status == 1, out + err
    assert score(out) > 1 and "FAILED" in out
    assert err.startswith("convlstm-convert: the check failed:") and "Traceback" not in err


def test_a_wrong_configuration_fails_the_check(capsys, tmp_path, stack_pt, monkeypatch):
    configuration = convert.configuration

    def reversed_config(loaded):
        config = configuration(loaded)
        config["options"]["reverse"] = True
        return config

    monkeypatch.setattr(convert, "configuration", reversed_config)
    status, out, err = run(capsys, stack_pt, tmp_path / "model.msgpack")
    assert status == 1 and score(out) > 1, out + err


# --- what cannot be converted ---------------------------------------------------------------------------------


def _json(path, content):
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _onnx_file(tmp_path):
    return _json(tmp_path / "model.onnx", "not read")


def _frame_predictor_msgpack(tmp_path):
    from flax import serialization

    (tmp_path / "predictor.msgpack").write_bytes(
        serialization.msgpack_serialize({"params": {"cell_0": {}, "output": {"kernel": np.zeros((1, 1, 3, 4))}}})
    )
    return tmp_path / "predictor.msgpack"


def _openstl_model_pth(tmp_path):
    openstl = _openstl()
    configs = openstl.make_configs()
    torch.save(openstl.openstl_model(configs).state_dict(), tmp_path / "openstl.pth")
    _json(tmp_path / "openstl_configs.json", vars(configs))
    return tmp_path / "openstl.pth"


# name: (arguments, given tmp_path and the checkpoint; a phrase of the message)
FAILURES = {
    "unknown extension": (lambda t, pt: [pt, t / "model.h5"], "unknown extension '.h5'"),
    "ONNX as a source": (lambda t, pt: [_onnx_file(t), t / "model.pt"], "ONNX is written, not read"),
    "Keras as a dest": (lambda t, pt: [pt, t / "model.keras"], "Keras model files are read, not written"),
    "Keras weights as a dest": (lambda t, pt: [pt, t / "m.weights.h5"], "Keras weights files are read, not written"),
    "StableHLO as a source": (lambda t, pt: [_json(t / "m.stablehlo", ""), t / "m.pt"], "StableHLO is written"),
    "missing file": (lambda t, pt: [t / "missing.pt", t / "model.msgpack"], "missing.pt: no such file"),
    "missing directory": (lambda t, pt: [t / "missing", t / "model.msgpack"], "missing: no such directory"),
    "missing config": (lambda t, pt: [pt, t / "m.msgpack", "--config", t / "none.json"], "none.json: no such file"),
    "config not JSON": (lambda t, pt: [pt, t / "m.msgpack", "--config", _json(t / "c.json", "{")], "is not JSON"),
    "config of unknown keys": (
        lambda t, pt: [pt, t / "m.msgpack", "--config", _json(t / "c.json", {"strid": 2})],
        "unknown key(s) 'strid'",
    ),
    "config of another model": (
        lambda t, pt: [pt, t / "m.msgpack", "--config", _json(t / "c.json", {"num_layers": 3})],
        "says num_layers=3; the checkpoint has 2 layer(s)",
    ),
    "config of another kind": (
        lambda t, pt: [pt, t / "m.msgpack", "--config", _json(t / "c.json", {"kind": "Bidirectional"})],
        "says kind Bidirectional, but",
    ),
    "config of an unknown option": (
        lambda t, pt: [pt, t / "m.msgpack", "--config", _json(t / "c.json", {"kind": "ConvLSTM", "options": {"x": 1}})],
        "unknown option(s) 'x'",
    ),
    "config for a .keras file": (
        lambda t, pt: [_json(t / "m.keras", ""), t / "m.pt", "--config", _json(t / "c.json", {})],
        "holds its own architecture",
    ),
    "Keras weights without architecture": (
        lambda t, pt: [_json(t / "m.weights.h5", ""), t / "m.pt"],
        "holds weights only",
    ),
    "damaged checkpoint": (lambda t, pt: [_json(t / "bad.pt", "garbage"), t / "m.msgpack"], "bad.pt cannot be read"),
    "damaged msgpack": (lambda t, pt: [_json(t / "bad.msgpack", "garbage"), t / "m.pt"], "is not a Flax msgpack"),
    "not an orbax checkpoint": (
        lambda t, pt: [(t / "folder").mkdir() or t / "folder", t / "m.pt"],
        "is not an orbax checkpoint",
    ),
    "OpenSTL to torch": (
        lambda t, pt: [_openstl_model_pth(t), t / "m.pt", "--config", t / "openstl_configs.json"],
        "OpenSTL's whole ConvLSTM_Model",
    ),
    "OpenSTL to ONNX": (
        lambda t, pt: [_openstl_model_pth(t), t / "m.onnx", "--config", t / "openstl_configs.json"],
        "no ONNX form",
    ),
    "OpenSTL model without configs": (lambda t, pt: [_openstl_model_pth(t), t / "m.msgpack"], "--config FILE.json"),
    "FramePredictor msgpack without configuration": (
        lambda t, pt: [_frame_predictor_msgpack(t), t / "out"],
        "holds a FramePredictor's params",
    ),
    "prefix of a msgpack": (
        lambda t, pt: [_frame_predictor_msgpack(t), t / "m.pt", "--prefix", "module."],
        "--prefix applies to torch",
    ),
    "a prefix no key has": (lambda t, pt: [pt, t / "m.msgpack", "--prefix", "module."], "starts with --prefix"),
    "shape of another rank": (lambda t, pt: [pt, t / "m.msgpack", "--shape", "1,2,8"], "takes B,T,H,W"),
    "DEST is SOURCE": (lambda t, pt: [pt, pt], "is SOURCE"),
    "DEST in no folder": (lambda t, pt: [pt, t / "no" / "m.msgpack"], "does not exist"),
    "DEST orbax exists": (lambda t, pt: [pt, (t / "out").mkdir() or t / "out"], "exists; an orbax checkpoint"),
    "DEST configuration over the --config": (
        lambda t, pt: [pt, t / "c.msgpack", "--config", _json(t / "c.json", {})],
        "which is the --config file",
    ),
    "DEST configuration over another JSON file": (
        lambda t, pt: [pt, t / "other.msgpack"] if _json(t / "other.json", []) else [],
        "is not a convlstm-convert configuration",
    ),
}


@pytest.mark.parametrize("name", FAILURES)
def test_what_cannot_be_converted_exits_2_with_one_message(capsys, tmp_path, stack_pt, name):
    arguments, phrase = FAILURES[name]
    before = set(tmp_path.rglob("*"))
    argv = arguments(tmp_path, stack_pt)
    made = set(tmp_path.rglob("*")) - before  # the test's own files
    status, out, err = run(capsys, *argv)
    assert status == 2, out + err
    assert err.startswith("convlstm-convert: ") and "Traceback" not in err, err
    assert phrase in err, err
    assert out == ""
    assert set(tmp_path.rglob("*")) - before == made, "nothing is written"


@pytest.mark.parametrize(
    "missing, dest, extra",
    [("onnxruntime", "m.onnx", "convlstm-jax[interop]"), ("torch", "m.pt", "convlstm-jax[torch]")],
)
def test_a_missing_dependency_names_its_extra(capsys, tmp_path, stack_pt, monkeypatch, missing, dest, extra):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else find_spec(name, *a))
    status, _, err = run(capsys, stack_pt, tmp_path / dest)
    assert status == 2 and f"needs {missing}" in err and extra in err, err


def test_a_missing_keras_names_its_extra(capsys, tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "keras" else find_spec(name, *a))
    status, _, err = run(capsys, _json(tmp_path / "m.keras", ""), tmp_path / "m.pt")
    assert status == 2 and "needs keras" in err and "convlstm-jax[interop]" in err, err


def test_help_prints_the_formats_and_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        convert.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "convlstm-convert SOURCE DEST" in out and "| .safetensors" in out and ".stablehlo" in out
