"""`convlstm-convert`: every supported direction writes the model and its configuration and passes its check,
a conversion that changes the numbers fails it (exit 1), and what cannot be converted exits 2 with one message."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import json
import os
import re

import jax
import numpy as np
import pytest

from convlstm_jax.interop import convert, formats

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
    beside = dest / "config.json" if dest.is_dir() else dest.with_name(dest.name + ".json")
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
    from convlstm_jax.interop import stablehlo

    shape = stablehlo.load(dest).exported.in_avals[0].shape  # (B, T, C, H, W): all but C symbolic
    assert shape[2] == 2 and [str(n) for n in shape[3:]] == ["height", "width"]


def test_msgpack_to_torch_gives_back_the_same_bits(capsys, tmp_path, stack_pt):
    converted(capsys, stack_pt, tmp_path / "model.msgpack")
    dest = tmp_path / "back.pt"
    _, config = converted(capsys, tmp_path / "model.msgpack", dest)  # no --config: model.msgpack.json is beside
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
    options.write_text(json.dumps({"stride": [[2, 2], [1, 1]]}))
    converted(capsys, source, tmp_path / "strided.msgpack", "--config", options, "--shape", "1,2,9,9")
    (tmp_path / "strided.msgpack.json").unlink()
    status, out, _ = run(capsys, tmp_path / "strided.msgpack", tmp_path / "plain.pt")
    assert status == 0 and "no configuration beside" in out  # stride 1 assumed: another, consistent model
    _, config = converted(capsys, tmp_path / "strided.msgpack", tmp_path / "strided.pt", "--config", options)
    assert config["options"]["stride"] == [[2, 2], [1, 1]]
    assert all(torch.equal(torch.load(source)[k], v) for k, v in torch.load(tmp_path / "strided.pt").items())


# --- OpenSTL -------------------------------------------------------------------------------------------------


@functools.cache
def _openstl():
    from convlstm_jax.tests.interop import test_openstl

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
    registered = formats.get_format(fmt)
    monkeypatch.setitem(formats.FORMATS, fmt, dataclasses.replace(registered, writer=_perturbed(registered.writer)))
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
        lambda t, pt: [pt, t / "c.msgpack", "--config", _json(t / "c.msgpack.json", {})],
        "which is the --config file",
    ),
    "DEST configuration over another JSON file": (
        lambda t, pt: [pt, t / "other.msgpack"] if _json(t / "other.msgpack.json", []) else [],
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


# --- the formats: one registry --------------------------------------------------------------------------------


def _help(capsys) -> str:
    with pytest.raises(SystemExit):
        convert.main(["--help"])
    return capsys.readouterr().out


def test_every_registered_format_is_offered_from_the_registry(capsys, tmp_path, stack_pt):
    text = _help(capsys)
    for fmt in formats.FORMATS.values():
        row = re.search(rf"^\| {re.escape(fmt.description)} +\| ([^|]+)\| (yes|no) +\| (yes|no) +\|$", text, re.M)
        assert row, (fmt.name, text)
        assert row.group(2, 3) == ("no" if fmt.reader is None else "yes", "no" if fmt.writer is None else "yes")
        assert all(extension in row.group(1) for extension in fmt.extensions), (fmt.name, row.group(0))
    _, _, source_err = run(capsys, tmp_path / "model.h5", tmp_path / "model.pt")
    _, _, dest_err = run(capsys, stack_pt, tmp_path / "model.h5")
    _, _, written_err = run(capsys, _onnx_file(tmp_path), tmp_path / "model.pt")
    _, _, read_err = run(capsys, stack_pt, tmp_path / "model.keras")
    for fmt in formats.readable():
        assert all(extension in source_err for extension in fmt.extensions), (fmt.name, source_err)
        assert f"{fmt.family} (" in written_err and fmt.named in written_err, (fmt.name, written_err)
    for fmt in formats.writable():
        assert all(extension in dest_err for extension in fmt.extensions), (fmt.name, dest_err)
        assert f"{fmt.family} (" in read_err and fmt.named in read_err, (fmt.name, read_err)


def _msgpack_copy(calls: list) -> formats.Format:
    """A format added in a test: Flax msgpack under the extension .mpk, its reads and writes appended to `calls`."""
    msgpack = formats.get_format("msgpack")

    def read(path, fmt, config, prefix):
        calls.append(("read", path))
        return dataclasses.replace(msgpack.reader(path, "msgpack", config, prefix), format=fmt)

    def write(model, variables, dest, example):
        calls.append(("write", dest))
        return msgpack.writer(model, variables, dest, example)

    return formats.Format(
        "msgpack-copy",
        "msgpack copy",
        "Flax msgpack under another extension",
        "Copies",
        (".mpk",),
        reader=read,
        writer=write,
    )


def test_a_format_added_to_the_registry_is_offered_and_dispatched(capsys, tmp_path, stack_pt, monkeypatch):
    calls: list = []
    added = _msgpack_copy(calls)
    monkeypatch.setitem(formats.FORMATS, added.name, added)
    text = _help(capsys)
    assert re.search(r"^\| Flax msgpack under another extension +\| \.mpk +\| yes +\| yes +\|$", text, re.M), text
    assert ".mpk" in re.search(r"^\s+DEST\s+(.*(?:\n\s{10,}\S.*)*)", text, re.M).group(1), text
    status, _, err = run(capsys, stack_pt, tmp_path / "model.h5")
    assert status == 2 and ".mpk" in err, err
    status, _, err = run(capsys, stack_pt, tmp_path / "model.keras")
    assert status == 2 and "Copies (.mpk)" in err, err

    out, config = converted(capsys, stack_pt, tmp_path / "model.mpk")  # written, then read back for the check
    assert config["format"] == "torch" and "read back with its configuration" in out
    assert calls == [("write", tmp_path / "model.mpk"), ("read", tmp_path / "model.mpk")]
    out, config = converted(capsys, tmp_path / "model.mpk", tmp_path / "back.pt")
    assert f"read   {tmp_path / 'model.mpk'} (msgpack copy)" in out and calls[-1] == ("read", tmp_path / "model.mpk")
    assert config["format"] == "msgpack-copy"

    missing = dataclasses.replace(added, needs=(("numpy", "numpy"), ("no_such_module", "a-wheel")))
    monkeypatch.setitem(formats.FORMATS, added.name, missing)
    status, _, err = run(capsys, stack_pt, tmp_path / "other.mpk")
    assert status == 2 and "needs no_such_module, which is not installed: pip install 'a-wheel'." in err, err


def test_a_format_is_looked_up_by_name_or_path_with_one_line_errors(tmp_path):
    assert formats.get_format("onnx") is formats.FORMATS["onnx"]
    with pytest.raises(ValueError, match=f"unknown format 'h5'; the formats are {', '.join(formats.FORMATS)}.$"):
        formats.get_format("h5")
    assert formats.format_of(tmp_path / "m.WEIGHTS.H5", "SOURCE").name == "keras-weights"
    assert formats.format_of(tmp_path, "DEST").name == "orbax"
    with pytest.raises(ValueError, match="role must be one of"):
        formats.format_of(tmp_path / "m.pt", "source")
    with pytest.raises(ValueError, match="ONNX is written, not read"):
        convert.read(_onnx_file(tmp_path), "onnx")


# --- the configuration beside each output --------------------------------------------------------------------


def test_two_outputs_of_one_stem_keep_a_configuration_each(capsys, tmp_path, stack_pt):
    strided = save_torch(tmp_path / "strided.pt", convlstm_torch.ConvLSTM(2, [3, 4], 3, 2, stride=[2, 1]))
    options = _json(tmp_path / "options.json", json.dumps({"stride": [[2, 2], [1, 1]]}))
    assert run(capsys, stack_pt, tmp_path / "out.msgpack")[0] == 0
    assert run(capsys, strided, tmp_path / "out.safetensors", "--config", options, "--shape", "1,2,9,9")[0] == 0
    msgpack_config = json.loads((tmp_path / "out.msgpack.json").read_text())
    assert msgpack_config["source"] == str(stack_pt) and msgpack_config["options"]["stride"] == [[1, 1], [1, 1]]
    assert json.loads((tmp_path / "out.safetensors.json").read_text())["source"] == str(strided)
    assert not (tmp_path / "out.json").exists()
    status, out, err = run(capsys, tmp_path / "out.msgpack", tmp_path / "back.pt")  # reads out.msgpack.json
    assert (status, err) == (0, "") and "no configuration beside" not in out, out + err
    assert json.loads((tmp_path / "back.pt.json").read_text())["options"]["stride"] == [[1, 1], [1, 1]]


def test_a_configuration_of_the_old_name_is_read_where_only_one_output_has_that_stem(capsys, tmp_path):
    # old.pt -> old.msgpack wrote old.json: old.pt, its source, shares the stem and is no other output
    strided = save_torch(tmp_path / "old.pt", convlstm_torch.ConvLSTM(2, [3, 4], 3, 2, stride=[2, 1]))
    options = _json(tmp_path / "options.json", json.dumps({"stride": [[2, 2], [1, 1]]}))
    assert run(capsys, strided, tmp_path / "old.msgpack", "--config", options, "--shape", "1,2,9,9")[0] == 0
    beside = next(path for path in tmp_path.glob("old.*json"))
    beside.rename(tmp_path / "old.json")  # as earlier versions named it
    status, out, err = run(capsys, tmp_path / "old.msgpack", tmp_path / "back.pt", "--shape", "1,2,9,9")
    assert (status, err) == (0, ""), out + err
    assert json.loads((tmp_path / "back.pt.json").read_text())["options"]["stride"] == [[2, 2], [1, 1]]
    (tmp_path / "old.safetensors").write_bytes(b"")  # another output of that stem: old.json may be either's
    status, out, err = run(capsys, tmp_path / "old.msgpack", tmp_path / "again.pt", "--shape", "1,2,9,9")
    assert status == 0 and f"note: {tmp_path / 'old.json'} may describe old.safetensors" in out, out + err


def test_a_flat_kernel_list_that_could_mean_both_is_refused(capsys, tmp_path, stack_pt):
    options = _json(tmp_path / "options.json", json.dumps({"kernel_size": [3, 5]}))
    status, out, err = run(capsys, stack_pt, tmp_path / "model.msgpack", "--config", options)
    assert status == 2 and "kernel_size [3, 5] could be one (3, 5) kernel for every layer" in err, out + err


def test_help_names_the_configuration_after_the_whole_file_name(capsys):
    with pytest.raises(SystemExit):
        convert.main(["--help"])
    out = capsys.readouterr().out
    assert "model.onnx.json" in out and "model.msgpack.json" in out


# --- the messages met first: checkpoints of other modules, prefixes, damaged files, formats -------------------


def _unreadable_checkpoints(tmp_path):
    """name: (a checkpoint that makes no ConvLSTM, a phrase of the one line it gets)."""
    from safetensors.torch import save_file

    torch.save(torch.nn.Conv2d(2, 4, 3).state_dict(), tmp_path / "conv2d.pt")
    save_file(torch.nn.Conv2d(2, 4, 3).state_dict(), str(tmp_path / "conv2d.safetensors"))
    state_dict = convlstm_torch.ConvLSTM(2, 3, 3, 1).state_dict()
    torch.save({f"module.{key}": value for key, value in state_dict.items()}, tmp_path / "parallel.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save(state_dict, tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:-200])
    return {
        "conv2d.pt": "holds no ConvLSTM layer (no 'cell_list.<l>.' key); keys: ['bias', 'weight']",
        "conv2d.safetensors": "holds no ConvLSTM layer (no 'cell_list.<l>.' key); keys: ['bias', 'weight']",
        "parallel.pt": "The keys start with 'module.': pass --prefix module. to strip it.",
        "empty.pt": "empty.pt' is empty (0 bytes), not a torch checkpoint.",
        "cut.pt": "cut.pt' is not a complete torch checkpoint (truncated?)",
    }


def test_checkpoints_that_make_no_convlstm_exit_2_with_one_line_saying_why(capsys, tmp_path):
    for name, phrase in _unreadable_checkpoints(tmp_path).items():
        status, out, err = run(capsys, tmp_path / name, tmp_path / "model.msgpack")
        assert (status, out) == (2, ""), name + out + err
        assert err.startswith("convlstm-convert: ") and err.count("\n") == 1 and phrase in err, name + err


def test_an_unknown_dest_extension_offers_only_the_formats_written(capsys, tmp_path, stack_pt):
    status, _, err = run(capsys, stack_pt, tmp_path / "model.h5")
    assert status == 2 and "unknown extension '.h5'" in err, err
    offered = err.split("unknown extension '.h5'", 1)[1]
    assert all(extension in offered for extension in (".pt", ".safetensors", ".msgpack", ".onnx", ".stablehlo"))
    assert ".keras" not in offered and ".weights.h5" not in offered, err
    status, _, err = run(capsys, tmp_path / "model.h5", tmp_path / "model.pt")
    assert status == 2 and ".keras" in err and ".weights.h5" in err and ".onnx" not in err, err
    with pytest.raises(SystemExit):
        convert.main(["--help"])
    dest_help = re.search(r"^\s+DEST\s+(.*(?:\n\s{10,}\S.*)*)", capsys.readouterr().out, re.MULTILINE).group(1)
    assert ".msgpack" in dest_help and ".keras" not in dest_help, dest_help


@pytest.mark.filterwarnings(KERAS_WARNING)
def test_an_empty_keras_file_is_named_as_no_readable_archive(capsys, tmp_path):
    if importlib.util.find_spec("keras") is None:
        pytest.skip("needs keras 3 (convlstm-jax[interop])")
    (tmp_path / "empty.keras").write_bytes(b"")
    status, out, err = run(capsys, tmp_path / "empty.keras", tmp_path / "model.pt")
    assert (status, out) == (2, "") and err.count("\n") == 1, out + err
    assert "empty.keras' is not a readable Keras archive: it is empty" in err and "File not found" not in err, err


# --- exported frame sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dest", [pytest.param("model.onnx", marks=[needs_onnx, pytest.mark.slow]), "model.stablehlo"])
def test_an_export_takes_frames_of_other_sizes_than_the_check(capsys, tmp_path, stack_pt, dest):
    out, _ = converted(capsys, stack_pt, tmp_path / dest)  # the check at its default 16x16
    assert "takes only" not in out
    loaded = convert.read(stack_pt, "torch")  # the source in the torch reference, as the check runs it
    fmt = "onnx" if dest.endswith(".onnx") else "stablehlo"
    run_dest, _ = convert._dest_runner(tmp_path / dest, fmt, loaded)
    rng = np.random.default_rng(0)
    for frame in [(8, 8), (16, 24), (64, 64)]:
        x = rng.standard_normal((3, 2, *frame, 2)).astype(np.float32)  # (B, T, H, W, C)
        worst, where = convert.compare(loaded.run(x), run_dest(x), None)
        assert worst <= 1, (dest, frame, where, worst)


@pytest.mark.parametrize("dest", ["norm.onnx", "norm.stablehlo"])
def test_an_export_of_a_layer_norm_model_says_it_takes_one_frame_size(capsys, tmp_path, dest):
    if dest.endswith(".onnx") and not HAS_ONNX:
        pytest.skip("needs onnx, onnxscript and onnxruntime (convlstm-jax[interop])")
    model = convlstm_torch.ConvLSTM(2, 3, 3, 1, layer_norm=True, frame_size=(8, 6))
    out, _ = converted(capsys, save_torch(tmp_path / "norm.pt", model), tmp_path / dest)
    assert re.search(r"takes only 8x6 frames .*layer norms' weights are for frames of that size", out), out


def test_an_openstl_model_converts_to_stablehlo(capsys, tmp_path):
    openstl = _openstl()
    configs = openstl.make_configs()
    options = _json(tmp_path / "openstl_configs.json", vars(configs))
    source = tmp_path / "openstl.pth"
    torch.save(openstl.openstl_model(configs).state_dict(), source)
    out, config = converted(capsys, source, tmp_path / "predictor.stablehlo", "--config", options)
    assert config["kind"] == "FramePredictor" and "stablehlo.load" in out


def test_help_says_which_exports_fix_the_frame_size(capsys):
    with pytest.raises(SystemExit):
        convert.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "The ONNX and StableHLO files take any batch size and any frame size" in text
    assert "A model with layer norm takes only the frame size of the check" in text
