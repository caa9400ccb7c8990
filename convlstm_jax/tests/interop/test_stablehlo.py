"""`convlstm_jax.interop.stablehlo`: a model exported for CPU, GPU and TPU, saved and loaded, computes the shared
vectors' results on CPU, at any batch size, and its arguments are checked before any work."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import convlstm_jax
from convlstm_common.tolerance import tolerance_for
from convlstm_jax import Bidirectional, ConvLSTM, FramePredictor
from convlstm_jax.interop import stablehlo
from convlstm_jax.models import EncoderForecaster
from parity_tests.runs import model_kwargs, returned_layers
from parity_tests.vectors import load_case, load_manifest

pytest.importorskip("flatbuffers", reason="jax.export serialization needs flatbuffers")
pytest.importorskip("safetensors", reason="the shared vectors are safetensors files")

PLATFORMS = ("cpu", "cuda", "tpu")
MANIFEST = load_manifest()
CONFIGS = {name: entry["config"] for name, entry in MANIFEST["cases"].items()}
WITH_DROPOUT_MASKS = sorted(name for name, config in CONFIGS.items() if config.get("dropout_masks"))
"""Cases run with explicit dropout masks: an exported forward pass is in evaluation mode, without dropout."""
DEFAULT_CASES = [
    "signals",  # 1-D, conv peephole, initial state, every layer returned
    "volumes_bidirectional",  # 3-D, no peephole, bidirectional concat
    "bidirectional_concat",  # bidirectional with seq_lengths
    "bidirectional_sum",  # hadamard peephole, time-major
    "valid_padding",
    "stride",
    "dilation",
    "reverse",
    "reverse_seq_lengths",
    "no_input",
]
SLOW_CASES = sorted(set(CONFIGS) - set(DEFAULT_CASES) - set(WITH_DROPOUT_MASKS))
TOLERANCE = tolerance_for("float32")


def case_model(config):
    """A case's Linen model (channels-first, the torch layout, as `parity_tests.runs.run_jax` runs it)."""
    model = ConvLSTM(**model_kwargs(config), channels_last=False, unroll=1)
    return Bidirectional(model, config["bidirectional"]) if config.get("bidirectional") else model


def case_inputs(config, arrays):
    """A case's model, its variables, and the artifact's arguments: (args, kwargs) after the weights."""
    model = case_model(config)
    state_dict = {k.removeprefix("param/"): v for k, v in arrays.items() if k.startswith("param/")}
    if config.get("bidirectional"):
        directions = ("forward_layer", "backward_layer")
        params = {d: convlstm_jax.torch_to_flax(state_dict, prefix=f"{d}.")["params"] for d in directions}
    else:
        params = convlstm_jax.torch_to_flax(state_dict)["params"]
    variables = {"params": jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params)}
    args, kwargs = [jnp.asarray(arrays["input"], jnp.float32)], {}
    if config["initial_state"]:
        assert not config.get("bidirectional"), "a bidirectional case's initial state is not read here"
        layers = range(config["num_layers"])
        args.append([tuple(jnp.asarray(arrays[f"{s}0/{layer}"], jnp.float32) for s in "hc") for layer in layers])
    if "seq_lengths" in config:
        kwargs["seq_lengths"] = jnp.asarray(config["seq_lengths"], jnp.int32)
    return model, variables, args, kwargs


def named_results(config, outputs, states):
    """The forward results by the vectors' names: output/<l>, h/<l>, c/<l> (and h/backward/<l>, ...)."""
    results, backward = {}, [None] * len(outputs)
    if config.get("bidirectional"):
        states, backward = states
    for layer, output, (h, c), other in zip(returned_layers(config), outputs, states, backward, strict=True):
        results.update({f"output/{layer}": output, f"h/{layer}": h, f"c/{layer}": c})
        if other is not None:
            results.update({f"h/backward/{layer}": other[0], f"c/backward/{layer}": other[1]})
    return results


def case_scores(name: str, folder: Path) -> dict[str, float]:
    """Exports case `name` for CPU, GPU and TPU, saves and loads it, runs it on CPU and returns each
    forward result's tolerance score against the case's expected values."""
    config, arrays = CONFIGS[name], load_case(name, manifest=MANIFEST)
    model, variables, args, kwargs = case_inputs(config, arrays)
    with jax.default_matmul_precision("highest"):
        exported = stablehlo.export(
            model,
            variables,
            args[0],
            platforms=PLATFORMS,
            initial_state=len(args) > 1,
            seq_lengths="seq_lengths" in kwargs,
        )
        stablehlo.save(exported, folder / f"{name}.jax_export")
        loaded = stablehlo.load(folder / f"{name}.jax_export")
        assert loaded.platforms == PLATFORMS
        results = named_results(config, *loaded(*args, **kwargs))
    expected = {k.removeprefix("expected/"): v for k, v in arrays.items() if k.startswith("expected/")}
    expected = {k: v for k, v in expected.items() if not k.startswith("grad/")}
    assert sorted(results) == sorted(expected)
    scores = {}
    for key, value in results.items():
        assert value.shape == expected[key].shape, key
        scores[key] = TOLERANCE.score(np.asarray(value), expected[key])
    return scores


def check_case(name: str, folder: Path) -> None:
    scores = case_scores(name, folder)
    worst = max(scores, key=scores.get)
    assert scores[worst] <= 1, f"{name}: {worst} is {scores[worst]:.3g} x the float32 tolerance"


@pytest.mark.parametrize("name", DEFAULT_CASES)
def test_an_exported_case_computes_the_shared_vectors(name, tmp_path):
    check_case(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_CASES)
def test_an_exported_case_computes_the_shared_vectors_every_case(name, tmp_path):
    check_case(name, tmp_path)


def test_the_cases_are_run_by_default_or_slow_but_those_with_dropout_masks():
    assert set(DEFAULT_CASES) <= set(CONFIGS)
    assert not set(DEFAULT_CASES) & set(WITH_DROPOUT_MASKS)
    chosen = [CONFIGS[name] for name in DEFAULT_CASES]
    assert {len(model_kwargs(c)["kernel_size"][0]) for c in chosen} == {1, 2, 3}  # every rank
    assert {c["peephole"] for c in chosen} == {"conv", "hadamard", None}
    assert {c.get("bidirectional") for c in chosen} == {"concat", "sum", None}
    assert all(any(key in c for c in chosen) for key in ("stride", "dilation", "padding", "reverse", "seq_lengths"))
    assert any(c["initial_state"] for c in chosen) and any(c["input_dim"] == 0 for c in chosen)


# Symbolic dimensions: one artifact for every batch size (and T), equal to the model's own call.


def random_variables(model, x, seed=0):
    """Variables of `model`'s shapes with random values (no `init` to compile)."""
    options = {} if isinstance(model, EncoderForecaster) else {"deterministic": True}
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, **options), x)
    leaves, tree = jax.tree.flatten(shapes)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [jnp.asarray(rng.normal(0, 0.3, s.shape), s.dtype) for s in leaves])


def random(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


SYMBOLIC = {
    # name: (model, example shape, the initial state and lengths as inputs); dropout is off in the artifact
    "stack_valid_stride": (
        lambda: ConvLSTM(2, [4, 3], 3, 2, batch_first=True, padding=["valid", "same"], stride=2, dropout=0.3, unroll=1),
        (2, 3, 9, 8, 2),
        False,
    ),
    "stack_state_lengths_reverse": (
        lambda: ConvLSTM(2, [4, 3], [3, 1], 2, return_all_layers=True, reverse=True, peephole="conv", unroll=1),
        (3, 2, 6, 5, 2),
        True,
    ),
    "bidirectional_channels_first": (
        lambda: Bidirectional(
            ConvLSTM(2, 3, 3, 1, batch_first=True, channels_last=False, recurrent_dropout=0.5, unroll=1), "sum"
        ),
        (2, 3, 2, 6, 5),
        True,
    ),
    "encoder_forecaster": (
        lambda: EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4", output_frames=2, patch_size=2, unroll=1),
        (2, 3, 8, 6, 1),
        False,
    ),
}


def other_shapes(model, shape):
    """Two input shapes with other batch sizes (and another T) than `shape`."""
    layer = model.layer if isinstance(model, Bidirectional) else model
    batch_axis, time_axis = (0, 1) if getattr(layer, "batch_first", True) else (1, 0)
    shapes = []
    for batch, steps in ((1, 4), (5, 2)):
        other = list(shape)
        other[batch_axis], other[time_axis] = batch, steps
        shapes.append(tuple(other))
    return shapes


def call_inputs(model, shape, with_state, seed):
    """Arguments for `model.apply` after the variables: (args, kwargs)."""
    x = random(shape, seed)
    if not with_state:
        return [x], {}
    layer = model.layer if isinstance(model, Bidirectional) else model
    batch = shape[0 if layer.batch_first else 1]
    carry = layer.initialize_carry(None, shape)
    states = [tuple(random(s.shape, seed + 1 + i) for i, s in enumerate(pair)) for pair in carry]
    steps = shape[1 if layer.batch_first else 0]
    lengths = jnp.asarray(np.arange(batch) % (steps + 1), jnp.int32)
    return [x, (states, states) if isinstance(model, Bidirectional) else states], {"seq_lengths": lengths}


def assert_close(actual, expected, what):
    leaves, tree = jax.tree.flatten(actual)
    wanted, wanted_tree = jax.tree.flatten(expected)
    assert tree == wanted_tree, what
    for a, b in zip(leaves, wanted, strict=True):
        assert a.shape == b.shape, what
        score = TOLERANCE.score(np.asarray(a), np.asarray(b))
        assert score <= 1, f"{what}: {score:.3g} x the float32 tolerance"


@pytest.mark.parametrize("name", sorted(SYMBOLIC))
def test_the_artifact_takes_other_batch_sizes_and_lengths(name, tmp_path):
    build, shape, with_state = SYMBOLIC[name]
    model = build()
    x = random(shape)
    variables = random_variables(model, x)
    options = {"initial_state": with_state, "seq_lengths": with_state}
    options = {} if isinstance(model, EncoderForecaster) else options
    apply_options = {} if isinstance(model, EncoderForecaster) else {"deterministic": True}
    with jax.default_matmul_precision("highest"):
        exported = stablehlo.export(model, variables, x, **options)
        assert str(exported.in_avals[0].shape).count(stablehlo.BATCH) == 1
        assert str(exported.in_avals[0].shape).count(stablehlo.TIME) == 1
        stablehlo.save(exported, tmp_path / "model.jax_export")
        loaded = stablehlo.load(tmp_path / "model.jax_export")
        direct = jax.jit(lambda v, *a, **k: model.apply(v, *a, **k, **apply_options))
        for seed, other in enumerate(other_shapes(model, shape)):
            args, kwargs = call_inputs(model, other, with_state, seed)
            assert_close(loaded(*args, **kwargs), direct(variables, *args, **kwargs), f"{name} at {other}")


def test_weights_as_arguments_take_other_weights(tmp_path):
    model = ConvLSTM(2, 4, 3, 1, batch_first=True, peephole="hadamard", unroll=1)
    x = random((2, 3, 6, 5, 2))
    variables, others = random_variables(model, x, 0), random_variables(model, x, 1)
    with jax.default_matmul_precision("highest"):
        exported = stablehlo.export(model, variables, x, weights="arguments")
        stablehlo.save(exported, tmp_path / "model.jax_export")
        loaded = stablehlo.load(tmp_path / "model.jax_export")
        y = random((3, 4, 6, 5, 2), 2)
        assert_close(loaded(others, y), jax.jit(model.apply)(others, y), "other weights")
        baked = stablehlo.export(model, variables, x)
        assert len(baked.in_avals) == 1  # the weights are constants
        assert_close(baked.call(y), jax.jit(model.apply)(variables, y), "baked weights")


@pytest.mark.parametrize("conv_gradient", ["auto", "xla", "tapwise"])
def test_every_conv_gradient_exports_for_every_platform(conv_gradient):
    model = ConvLSTM(2, 3, 3, 1, batch_first=True, conv_gradient=conv_gradient, unroll=1)
    x = random((2, 3, 6, 5, 2))
    variables = random_variables(model, x)
    with jax.default_matmul_precision("highest"):
        exported = stablehlo.export(model, variables, x, platforms=PLATFORMS)
        restored = jax.export.deserialize(exported.serialize())
        assert_close(restored.call(x), jax.jit(model.apply)(variables, x), conv_gradient)


def test_a_model_that_unrolls_is_exported_at_the_examples_length():
    model = ConvLSTM(2, 3, 3, 1, batch_first=True, unroll=2)
    x = random((2, 3, 6, 5, 2))
    variables = random_variables(model, x)
    exported = stablehlo.export(model, variables, x)
    assert exported.in_avals[0].shape[1] == 3
    assert str(exported.in_avals[0].shape[0]) == stablehlo.BATCH
    with pytest.raises(ValueError, match=r"symbolic_time=True needs .* unroll resolves to 2"):
        stablehlo.export(model, variables, x, symbolic_time=True)


def test_static_dimensions_where_asked():
    model = ConvLSTM(2, 3, 3, 1, batch_first=True, unroll=1)
    x = random((2, 3, 6, 5, 2))
    exported = stablehlo.export(
        model, random_variables(model, x), x, symbolic_batch=False, symbolic_time=False, symbolic_frame=False
    )
    assert exported.in_avals[0].shape == x.shape


# The platforms: the artifact is for the three asked for, and lowers for the accelerators here.


def test_the_loaded_artifact_is_for_the_platforms_asked_and_lowers_for_each(tmp_path):
    model = ConvLSTM(2, [4, 3], 3, 2, batch_first=True, peephole="conv", unroll=1)
    x = random((2, 3, 6, 5, 2))
    exported = stablehlo.export(model, random_variables(model, x), x, platforms=PLATFORMS)
    paths = stablehlo.save(exported, tmp_path / "model.jax_export", text=True)
    assert paths == [tmp_path / "model.jax_export", tmp_path / "model.mlir"]
    assert paths[1].read_text() == exported.mlir_module()
    loaded = stablehlo.load(paths[0])
    assert loaded.platforms == PLATFORMS == tuple(loaded.exported.platforms)
    y = random((3, 4, 6, 5, 2), 1)
    # The call compiles with the library's options for the default backend, or those given.
    assert loaded.compiler_options == convlstm_jax.compiler_options()
    with pytest.raises(jax.errors.JaxRuntimeError, match="xla_no_such_option"):
        stablehlo.load(paths[0], compiler_options={"xla_no_such_option": "1"})(y)
    for platform in PLATFORMS:
        text = jax.jit(loaded.exported.call).trace(y).lower(lowering_platforms=(platform,)).as_text()
        # every layer's convolutions, and each layer's time loop
        assert len(re.findall(r"stablehlo\.convolution\b", text)) >= 2 * 2, platform
        assert len(re.findall(r"stablehlo\.while\b", text)) == 2, platform
    with pytest.raises(ValueError, match="exported for platforms"):
        jax.jit(loaded.exported.call).trace(y).lower(lowering_platforms=("rocm",))


# Arguments are checked before any work.


@pytest.fixture
def no_lowering(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("export lowered before checking its arguments")

    monkeypatch.setattr(stablehlo.jax_export, "export", fail)


MODEL = ConvLSTM(2, 3, 3, 1, batch_first=True, unroll=1)
X = jax.ShapeDtypeStruct((2, 3, 6, 5, 2), jnp.float32)
VARIABLES = {"params": {}}
BAD_EXPORTS = {
    "model": ((object(), VARIABLES, X), {}, TypeError, r"model must be one of convlstm_jax\.ConvLSTM, .*got object"),
    "variables type": ((MODEL, [1], X), {}, TypeError, r"variables must be a mapping .*got list"),
    "variables without params": ((MODEL, {"w": 1}, X), {}, ValueError, r"variables must hold 'params'.*\['w'\]"),
    "example type": ((MODEL, VARIABLES, [1.0]), {}, TypeError, r"example_input must be an array, got list"),
    "example dtype": (
        (MODEL, VARIABLES, jnp.zeros((2, 3, 6, 5, 2), jnp.int32)),
        {},
        TypeError,
        r"example_input must have a floating-point dtype, got int32",
    ),
    "example rank": (
        (MODEL, VARIABLES, jnp.zeros((2, 3, 6, 2))),
        {},
        ValueError,
        r"example_input must be 5-D \(B, T, H, W, C\) \(spatial_dims=2\), got shape \(2, 3, 6, 2\)",
    ),
    "example channels": (
        (MODEL, VARIABLES, jnp.zeros((2, 3, 6, 5, 4))),
        {},
        ValueError,
        r"example_input has 4 channels .*input_dim is 2",
    ),
    "example empty": (
        (MODEL, VARIABLES, jnp.zeros((2, 0, 6, 5, 2))),
        {},
        ValueError,
        r"example_input must not have an empty dimension",
    ),
    "example frames too small": (
        (MODEL.clone(padding="valid", kernel_size=7), VARIABLES, jnp.zeros((2, 3, 6, 5, 2))),
        {},
        ValueError,
        r"Frames of 6x5 are too small for the input-to-state convolution",
    ),
    "encoder-forecaster patches": (
        (EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4", patch_size=2), VARIABLES, jnp.zeros((2, 3, 8, 7, 1))),
        {},
        ValueError,
        r"example_input's frames of 8x7 do not cut into 2x2 patches",
    ),
    "encoder-forecaster example": (
        (EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4", patch_size=2), VARIABLES, jnp.zeros((2, 3, 8, 8, 3))),
        {},
        ValueError,
        r"example_input must have shape \(B, T, H, W, 1\), got \(2, 3, 8, 8, 3\)",
    ),
    "platforms as a str": ((MODEL, VARIABLES, X), {"platforms": "cpu"}, TypeError, r"platforms must be a sequence"),
    "unknown platform": (
        (MODEL, VARIABLES, X),
        {"platforms": ("cpu", "gpu")},
        ValueError,
        r"platforms must be among \('cpu', 'cuda', 'rocm', 'tpu'\), got the unknown \['gpu'\]",
    ),
    "no platform": ((MODEL, VARIABLES, X), {"platforms": ()}, ValueError, r"at least one platform"),
    "repeated platform": ((MODEL, VARIABLES, X), {"platforms": ("cpu", "cpu")}, ValueError, r"must not repeat"),
    "symbolic_batch": ((MODEL, VARIABLES, X), {"symbolic_batch": 1}, TypeError, r"symbolic_batch must be True or"),
    "symbolic_time": ((MODEL, VARIABLES, X), {"symbolic_time": "yes"}, TypeError, r"symbolic_time must be True or"),
    "symbolic_frame": ((MODEL, VARIABLES, X), {"symbolic_frame": 0}, TypeError, r"symbolic_frame must be True or"),
    "seq_lengths": ((MODEL, VARIABLES, X), {"seq_lengths": None}, TypeError, r"seq_lengths must be True or False"),
    "weights": (
        (MODEL, VARIABLES, X),
        {"weights": "baked"},
        ValueError,
        r"weights must be one of \('constants', 'arguments'\), got 'baked'",
    ),
    "encoder-forecaster state": (
        (EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4", patch_size=2), VARIABLES, jnp.zeros((2, 3, 8, 8, 1))),
        {"initial_state": True},
        ValueError,
        r"an EncoderForecaster or FramePredictor takes its frames only",
    ),
    "check_finite": (
        (Bidirectional(MODEL.clone(check_finite=True)), VARIABLES, X),
        {},
        ValueError,
        r"check_finite=True raises through `checkify`",
    ),
    "symbolic time with unroll": (
        (MODEL.clone(unroll=3), VARIABLES, X),
        {"symbolic_time": True},
        ValueError,
        r"unroll resolves to 3 \(unroll=3 on the 'cpu' backend\): give the model unroll=1",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_EXPORTS))
def test_export_refuses_bad_arguments_before_any_work(name, no_lowering):
    args, kwargs, error, message = BAD_EXPORTS[name]
    with pytest.raises(error, match=message):
        stablehlo.export(*args, **kwargs)


def test_save_and_load_refuse_bad_arguments(tmp_path):
    exported = jax.export.export(jax.jit(jnp.tanh))(jnp.zeros(3))
    with pytest.raises(TypeError, match=r"exported must be a jax\.export\.Exported \(from `export`\), got dict"):
        stablehlo.save({}, tmp_path / "model.jax_export")
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike, got int"):
        stablehlo.save(exported, 3)
    with pytest.raises(ValueError, match=r"ends in \.mlir, where the StableHLO text would go"):
        stablehlo.save(exported, tmp_path / "model.mlir", text=True)
    assert not (tmp_path / "model.mlir").exists()
    with pytest.raises(TypeError, match=r"text must be True or False"):
        stablehlo.save(exported, tmp_path / "model.jax_export", text="yes")
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike, got NoneType"):
        stablehlo.load(None)
    (tmp_path / "other").write_bytes(b"not an artifact")
    with pytest.raises(ValueError, match=r"'.*other' is not a serialized jax\.export artifact"):
        stablehlo.load(tmp_path / "other")
    with pytest.raises(FileNotFoundError):
        stablehlo.load(tmp_path / "missing")
    with pytest.raises(TypeError, match=r"compiler_options must be a mapping or None, got list"):
        stablehlo.load(tmp_path / "other", compiler_options=[])
    with pytest.raises(TypeError, match=r"exported must be a jax\.export\.Exported, got bytes"):
        stablehlo.ExportedModel(b"")
    with pytest.raises(TypeError, match=r"compiler_options must be a mapping or None, got str"):
        stablehlo.ExportedModel(exported, "O3")


# Symbolic frame sizes: one artifact for every frame size the model's convolutions take.


def frame_variables(model, x, seed=0):
    """`random_variables`, for a `FramePredictor` too (which takes no `deterministic`)."""
    if not isinstance(model, FramePredictor):
        return random_variables(model, x, seed)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    leaves, tree = jax.tree.flatten(shapes)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [jnp.asarray(rng.normal(0, 0.3, s.shape), s.dtype) for s in leaves])


def with_frame(model, shape, frame, batch):
    """`shape` with the frame `frame` and the batch size `batch`, in `model`'s layout."""
    layer = model.layer if isinstance(model, Bidirectional) else model
    channels_last, batch_first = getattr(layer, "channels_last", True), getattr(layer, "batch_first", True)
    shape = list(shape)
    shape[0 if batch_first else 1] = batch
    return (*shape[:2], *frame, shape[-1]) if channels_last else (*shape[:3], *frame)


FRAMES = {
    # name: (model, example shape, the initial state and lengths as inputs, the frames to run at)
    "stack_valid_stride": (
        lambda: ConvLSTM(2, [4, 3], 3, 2, batch_first=True, padding=["valid", "same"], stride=2, unroll=1),
        (2, 3, 9, 8, 2),
        False,
        [(8, 8), (16, 24), (64, 64), (3, 5)],
    ),
    "bidirectional_channels_first_state_lengths": (
        lambda: Bidirectional(ConvLSTM(2, 3, 3, 1, channels_last=False, peephole="conv", unroll=1), "concat"),
        (3, 2, 2, 6, 5),
        True,
        [(8, 8), (16, 24), (64, 64)],
    ),
    "signals_valid_dilation": (
        lambda: ConvLSTM(2, 3, 3, 1, batch_first=True, padding="valid", dilation=2, spatial_dims=1, unroll=1),
        (2, 3, 11, 2),
        False,
        [(8,), (24,), (64,)],
    ),
    "encoder_forecaster": (
        lambda: EncoderForecaster.from_spec("ConvLSTM(3x3)-3x3-4", output_frames=2, patch_size=2, unroll=1),
        (2, 3, 8, 6, 1),
        False,
        [(8, 8), (16, 24), (64, 64)],
    ),
    "frame_predictor": (
        lambda: FramePredictor((4, 3), kernel_size=3, in_channels=1, patch_size=2, pre_seq_length=3, aft_seq_length=2),
        (2, 3, 8, 6, 1),
        False,
        [(8, 8), (16, 24), (64, 64)],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_the_artifact_takes_other_frame_sizes(name):
    build, shape, with_state, frames = FRAMES[name]
    model = build()
    x = random(shape)
    variables = frame_variables(model, x)
    plain = isinstance(model, (ConvLSTM, Bidirectional))
    options = {"initial_state": with_state, "seq_lengths": with_state} if plain else {}
    apply_options = {"deterministic": True} if plain else {}
    with jax.default_matmul_precision("highest"):
        exported = stablehlo.export(model, variables, x, **options)
        rank = len(frames[0])
        names = {1: ["length"], 2: ["height", "width"], 3: ["depth", "height", "width"]}[rank]
        assert all(n in str(exported.in_avals[0].shape) for n in names), exported.in_avals
        restored = jax.export.deserialize(exported.serialize())  # as the target runtime reads it
        direct = jax.jit(lambda v, *a, **k: model.apply(v, *a, **k, **apply_options))
        for seed, frame in enumerate(frames):
            other = with_frame(model, shape, frame, batch=1 + seed % 3)
            args, kwargs = call_inputs(model, other, with_state, seed)
            assert_close(restored.call(*args, **kwargs), direct(variables, *args, **kwargs), f"{name} at {other}")


def test_a_frame_predictor_exports_saves_and_loads(tmp_path):
    model = FramePredictor((3,), kernel_size=3, in_channels=2, patch_size=2, pre_seq_length=2, aft_seq_length=3)
    x = random((2, 5, 4, 6, 2))  # the context and the targets: T = pre_seq_length + aft_seq_length
    variables = frame_variables(model, x)
    with jax.default_matmul_precision("highest"):
        exported = stablehlo.export(model, variables, x)
        assert exported.in_avals[0].shape[1] == 5  # the rollout's length is the model's
        stablehlo.save(exported, tmp_path / "model.jax_export")
        loaded = stablehlo.load(tmp_path / "model.jax_export")
        y = random((3, 5, 10, 4, 2), 1)
        assert_close(loaded(y), jax.jit(model.apply)(variables, y), "a FramePredictor")
    with pytest.raises(ValueError, match=r"symbolic_time=True: a FramePredictor reads T = 2 or 5 frames"):
        stablehlo.export(model, variables, x, symbolic_time=True)
    with pytest.raises(ValueError, match=r"an EncoderForecaster or FramePredictor takes its frames only"):
        stablehlo.export(model, variables, x, seq_lengths=True)


@pytest.mark.slow
@pytest.mark.parametrize("predictor", [False, True])
def test_a_layer_norm_model_keeps_its_frame_size(predictor):
    if predictor:
        model = FramePredictor((3,), kernel_size=3, patch_size=2, pre_seq_length=2, aft_seq_length=2, layer_norm=True)
        x = random((2, 2, 6, 4, 1))
    else:
        model = ConvLSTM(2, 3, 3, 1, batch_first=True, layer_norm=True, unroll=1)
        x = random((2, 3, 6, 5, 2))
    variables = frame_variables(model, x)
    with jax.default_matmul_precision("highest"):
        exported = stablehlo.export(model, variables, x)
        assert exported.in_avals[0].shape[2:] == x.shape[2:]  # the norms' weights are for this frame
        assert str(exported.in_avals[0].shape[0]) == stablehlo.BATCH
        y = random((3, *x.shape[1:]), 1)
        options = {} if predictor else {"deterministic": True}
        assert_close(exported.call(y), jax.jit(lambda v, y: model.apply(v, y, **options))(variables, y), "layer norm")
    with pytest.raises(ValueError, match=r"symbolic_frame=True: .*layer_norm=True.* frames of 6x\d+ only"):
        stablehlo.export(model, variables, x, symbolic_frame=True)


def test_frames_smaller_than_the_convolutions_take_are_refused_by_the_artifact():
    model = ConvLSTM(2, 3, 5, 1, batch_first=True, padding="valid", unroll=1)
    x = random((2, 3, 9, 8, 2))
    exported = stablehlo.export(model, random_variables(model, x), x)
    exported.call(random((1, 2, 5, 7, 2)))  # the smallest frame a 5x5 valid convolution takes
    with pytest.raises(ValueError, match=r"height >= 5"):
        exported.call(random((1, 2, 4, 7, 2)))
