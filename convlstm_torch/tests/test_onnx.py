"""`to_onnx`: the exported models, run in onnxruntime, compute what the reference computes.

Every shared vector case that fits an inference model is exported with its weights in float32 and
held to its expected values (float64 reference) at the float32 tolerance. Left out: the cases with
explicit dropout masks (`dropout_masks`), a training-time input that the ONNX model, exported in
eval mode, does not take. Initial states and `seq_lengths` are inputs of the exported model.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from convlstm_common.tolerance import tolerance_for
from parity_tests.runs import _params, build_torch, result_names
from parity_tests.vectors import load_case, load_manifest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx", reason="to_onnx needs onnx (pip install convlstm-jax[interop])")
pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript (pip install convlstm-jax[interop])")
ort = pytest.importorskip("onnxruntime", reason="the exported models run in onnxruntime (convlstm-jax[interop])")

from convlstm_torch import Bidirectional, ConvLSTM  # noqa: E402
from convlstm_torch._onnx import fixed_frame_reason, onnx_input_names, onnx_output_names, to_onnx  # noqa: E402

pytestmark = pytest.mark.needs_torch

TOLERANCE = tolerance_for("float32")
MANIFEST = load_manifest()

FAST = {
    "two_layers_all",  # the seed's fused convolution and conv peepholes, a stack, all layers, batch-first, h0
    "no_peephole_no_bias",  # no peepholes, no bias, time-major, h0
    "reverse_seq_lengths",  # Hadamard peepholes, reverse with lengths
    "dilation",  # input kernels, dilation
    "no_input_other_kernels",  # a stack without input
    "valid_padding",
    "stride",
    "bidirectional_concat",  # with lengths
    "signals",  # 1-D frames
    "volumes_bidirectional",  # 3-D frames
    "layer_norm_options",  # layer norm, forget bias, with lengths
}
"""The cases run by default: with the tests below (`keep_order=False`, a "sum" merge, batch 1 and
one step, against the reference in float64), every option and rank at least once. The others are `slow`."""


def _case_params():
    return [pytest.param(name, marks=() if name in FAST else pytest.mark.slow) for name in sorted(MANIFEST["cases"])]


def _reference(config, arrays):
    """The case's model in float32 with its weights."""
    model = build_torch(config).float()
    model.load_state_dict({key: torch.from_numpy(value).float() for key, value in _params(arrays).items()})
    return model


def _onnx_name(result: str) -> str:
    """The ONNX output holding a case's result (`output/1` -> `output1`, `h/backward/0` -> `h0_backward_out`)."""
    kind, *rest = result.split("/")
    if kind == "output":
        return f"output{rest[-1]}"
    return f"{kind}{rest[-1]}{'_backward' if rest[0] == 'backward' else ''}_out"


def _float32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, feed: dict) -> dict[str, np.ndarray]:
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))


def test_the_fast_cases_are_cases():
    assert FAST <= set(MANIFEST["cases"])


@pytest.mark.parametrize("name", _case_params())
def test_the_exported_model_computes_the_shared_vectors(name, tmp_path):
    config = MANIFEST["cases"][name]["config"]
    if config.get("dropout_masks"):
        pytest.skip("explicit dropout masks are a training-time input; the ONNX model is exported in eval mode")
    arrays = load_case(name, manifest=MANIFEST)
    model = _reference(config, arrays)
    lengths = "seq_lengths" in config
    path = to_onnx(
        model, tmp_path / f"{name}.onnx", arrays["input"], initial_state=config["initial_state"], seq_lengths=lengths
    )
    feed = {"x": _float32(arrays["input"])}
    if config["initial_state"]:
        for layer in range(config["num_layers"]):
            feed[f"h{layer}"] = _float32(arrays[f"h0/{layer}"])
            feed[f"c{layer}"] = _float32(arrays[f"c0/{layer}"])
    if lengths:
        feed["seq_lengths"] = np.asarray(config["seq_lengths"], np.int64)
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == list(feed)
    assert [i.name for i in session.get_inputs()] == onnx_input_names(
        model, initial_state=config["initial_state"], seq_lengths=lengths
    )
    results = _run(session, feed)
    assert list(results) == onnx_output_names(model)
    assert sorted(results) == sorted(_onnx_name(r) for r in result_names(config))
    for result in result_names(config):
        expected = arrays[f"expected/{result}"]
        actual = results[_onnx_name(result)]
        assert actual.shape == expected.shape, result
        assert TOLERANCE.score(actual, expected) <= 1, (result, TOLERANCE.score(actual, expected))


@pytest.mark.parametrize(("name", "example"), [("two_layers_all", "frame"), ("reverse", "sequence")])
def test_the_step_model_steps_through_a_sequence(name, example, tmp_path):
    # Step by step from the case's initial state, over the case's input (last frame first for a
    # reverse model), the step model gives every layer's output and final state.
    config = MANIFEST["cases"][name]["config"]
    arrays = load_case(name, manifest=MANIFEST)
    model = _reference(config, arrays)
    x = arrays["input"] if config["batch_first"] else np.swapaxes(arrays["input"], 0, 1)  # (B, T, ...)
    # The example has batch 1: the model runs at the case's batch size.
    if example == "frame":
        example_input = x[:1, 0]
    else:  # a sequence in the model's layout, taken to its first frame
        example_input = arrays["input"][:1] if config["batch_first"] else arrays["input"][:, :1]
    session = _session(to_onnx(model, tmp_path / "step.onnx", example_input, step=True))
    layers = range(config["num_layers"])
    assert [i.name for i in session.get_inputs()] == onnx_input_names(model, step=True)
    state = {}
    for layer in layers:
        state[f"h{layer}"] = _float32(arrays[f"h0/{layer}"])
        state[f"c{layer}"] = _float32(arrays[f"c0/{layer}"])
    steps = range(x.shape[1])
    outputs = {layer: [None] * len(steps) for layer in layers}
    for t in reversed(steps) if config.get("reverse") else steps:
        results = _run(session, {"x": _float32(x[:, t]), **state})
        assert list(results) == onnx_output_names(model, step=True)
        state = {name.removesuffix("_out"): value for name, value in results.items()}
        for layer in layers:
            outputs[layer][t] = state[f"h{layer}"]
    for layer in layers:
        expected = arrays[f"expected/output/{layer}"]
        assert TOLERANCE.score(np.stack(outputs[layer], axis=1), expected) <= 1
        for kind in "hc":
            assert TOLERANCE.score(state[f"{kind}{layer}"], arrays[f"expected/{kind}/{layer}"]) <= 1


def _model():
    torch.manual_seed(0)
    model = ConvLSTM(
        2, [4, 3], [3, (1, 3)], 2, return_all_layers=True, peephole="hadamard", reverse=True, keep_order=False
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.5)  # Hadamard peepholes start at zero: give them values
    return model


def _torch_results(model, x, state=None, lengths=None):
    """The model's outputs and final states in float64, named as the ONNX outputs."""
    model = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        outputs, states = model(torch.from_numpy(x).double(), state, seq_lengths=lengths)
    names = onnx_output_names(model)
    return dict(zip(names, [y.numpy() for y in outputs] + [t.numpy() for pair in states for t in pair]))


def test_batch_size_and_length_are_dynamic(tmp_path):
    model = _model()
    rng = np.random.default_rng(0)
    # Traced from a batch of one sequence of one step: it runs at any batch size and length.
    path = to_onnx(model, tmp_path / "model.onnx", torch.zeros(1, 1, 2, 7, 6), initial_state=True, seq_lengths=True)
    session = _session(path)
    for steps, batch in [(5, 3), (1, 1), (8, 2)]:
        x = rng.normal(size=(steps, batch, 2, 7, 6)).astype(np.float32)
        state = [tuple(rng.normal(size=(batch, d, 7, 6)).astype(np.float32) for _ in "hc") for d in (4, 3)]
        lengths = rng.integers(0, steps + 1, size=batch)
        feed = {"x": x, "seq_lengths": lengths.astype(np.int64)}
        feed.update({f"{k}{layer}": s for layer, pair in enumerate(state) for k, s in zip("hc", pair)})
        expected = _torch_results(
            model, x, [tuple(torch.from_numpy(s).double() for s in pair) for pair in state], torch.from_numpy(lengths)
        )
        results = _run(session, feed)
        assert list(results) == list(expected)
        for name, value in expected.items():
            assert TOLERANCE.score(results[name], value) <= 1, (steps, batch, name)


def test_fixed_shapes_an_older_opset_and_eval_mode(tmp_path):
    import onnx

    model = _model()
    model.dropout = model.recurrent_dropout = 0.5
    model.train()
    model.cell_list[1].eval()
    x = np.random.default_rng(1).normal(size=(3, 2, 2, 7, 6)).astype(np.float32)
    path = to_onnx(model, tmp_path / "model.onnx", x, dynamic=False, opset=18)
    # Each module's mode is back; the export ran in eval mode (no dropout).
    assert model.training and model.cell_list[0].training and not model.cell_list[1].training
    assert onnx.load(str(path)).opset_import[0].version == 18
    session = _session(path)
    results = _run(session, {"x": x})
    for name, value in _torch_results(model, x).items():
        assert TOLERANCE.score(results[name], value) <= 1, name
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="dimension"):
        session.run(None, {"x": np.concatenate([x, x], axis=1)})


def test_an_export_at_fixed_sizes_leaves_the_next_one_dynamic(tmp_path):
    # The same sizes as the dynamic axes' tracing sizes (a batch of 2, 3 steps), fixed first.
    model = _model()
    x = np.random.default_rng(4).normal(size=(3, 2, 2, 7, 6)).astype(np.float32)
    to_onnx(model, tmp_path / "fixed.onnx", x, dynamic=False, seq_lengths=True)
    session = _session(to_onnx(model, tmp_path / "dynamic.onnx", x, seq_lengths=True))
    assert [d for d in session.get_inputs()[0].shape[:2]] == ["steps", "batch"]
    x = np.random.default_rng(5).normal(size=(4, 3, 2, 7, 6)).astype(np.float32)
    lengths = np.array([4, 0, 2])
    results = _run(session, {"x": x, "seq_lengths": lengths})
    for name, value in _torch_results(model, x, lengths=torch.from_numpy(lengths)).items():
        assert TOLERANCE.score(results[name], value) <= 1, name


def test_a_bidirectional_model_takes_both_initial_states(tmp_path):
    torch.manual_seed(3)
    model = Bidirectional(ConvLSTM(2, 3, 3, 1, batch_first=True, peephole=None), merge="sum")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 2, 5, 6)).astype(np.float32)
    forward, backward = ([tuple(rng.normal(size=(2, 3, 5, 6)).astype(np.float32) for _ in "hc")] for _ in range(2))
    path = to_onnx(model, tmp_path / "model.onnx", x, initial_state=True)
    feed = {
        "x": x,
        "h0": forward[0][0],
        "c0": forward[0][1],
        "h0_backward": backward[0][0],
        "c0_backward": backward[0][1],
    }
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == list(feed) == onnx_input_names(model, initial_state=True)
    results = _run(session, feed)
    twin = copy.deepcopy(model).double()
    with torch.no_grad():
        outputs, (states_f, states_b) = twin(
            torch.from_numpy(x).double(),
            [
                [tuple(torch.from_numpy(s).double() for s in pair) for pair in initial]
                for initial in (forward, backward)
            ],
        )
    expected = [outputs[0], *states_f[0], *states_b[0]]
    assert list(results) == ["output0", "h0_out", "c0_out", "h0_backward_out", "c0_backward_out"]
    for (name, actual), value in zip(results.items(), expected):
        assert TOLERANCE.score(actual, value.numpy()) <= 1, name


def _bad(**changes):
    arguments = {"model": ConvLSTM(2, 4, 3, 1, batch_first=True), "path": "model.onnx", "example_input": None}
    arguments["example_input"] = torch.zeros(2, 3, 2, 8, 8)
    return arguments | changes


BAD = {
    "model": (
        _bad(model=torch.nn.Linear(2, 2)),
        TypeError,
        "model must be a convlstm_torch.ConvLSTM or Bidirectional, got Linear",
    ),
    "path": (_bad(path=3), TypeError, "path must be a str or os.PathLike, got int"),
    "directory": (
        _bad(path="no/such/directory/model.onnx"),
        ValueError,
        "path's directory 'no/such/directory' does not exist",
    ),
    "step": (_bad(step="yes"), TypeError, "step must be a bool, got str"),
    "seq_lengths": (_bad(seq_lengths=1), TypeError, "seq_lengths must be a bool, got int"),
    "opset type": (_bad(opset=18.0), TypeError, "opset must be None or an int, got float"),
    "old opset": (_bad(opset=17), ValueError, r"opset must lie in \[18, 25\].*got 17"),
    "bidirectional step": (
        _bad(model=Bidirectional(ConvLSTM(2, 4, 3, 1, batch_first=True)), step=True),
        ValueError,
        "step=True exports one step of a unidirectional ConvLSTM",
    ),
    "step with a state": (
        _bad(step=True, initial_state=True),
        ValueError,
        "the step model always takes each layer's state",
    ),
    "example type": (
        _bad(example_input=[1.0]),
        TypeError,
        "example_input must be a torch.Tensor or a NumPy array, got list",
    ),
    "int example": (
        _bad(example_input=torch.zeros(2, 3, 2, 8, 8, dtype=torch.int64)),
        TypeError,
        "floating-point dtype, got torch.int64",
    ),
    "int array": (
        _bad(example_input=np.zeros((2, 3, 2, 8, 8), np.int32)),
        TypeError,
        "floating-point dtype, got int32",
    ),
    "frame": (
        _bad(example_input=torch.zeros(2, 2, 8, 8)),
        ValueError,
        r"example_input must be a sequence \(B, T, C, H, W\) \(spatial_dims=2\), got shape \(2, 2, 8, 8\)",
    ),
    "step rank": (
        _bad(example_input=torch.zeros(2, 8, 8), step=True),
        ValueError,
        r"a sequence \(B, T, C, H, W\) or one frame \(B, C, H, W\)",
    ),
    "channels": (
        _bad(example_input=torch.zeros(2, 3, 5, 8, 8)),
        ValueError,
        r"example_input has 5 channels \(dim 2 of \(2, 3, 5, 8, 8\)\); the model's input_dim is 2",
    ),
    "empty": (_bad(example_input=torch.zeros(2, 0, 2, 8, 8)), ValueError, "must not have an empty dimension"),
    "small frame": (
        _bad(model=ConvLSTM(2, 4, 3, 1, batch_first=True, padding="valid"), example_input=torch.zeros(2, 3, 2, 2, 8)),
        ValueError,
        "too small",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_arguments_are_refused_before_any_export(name, tmp_path, monkeypatch):
    arguments, error, message = BAD[name]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.export, "export", lambda *a, **k: pytest.fail("exported"))
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("exported"))
    with pytest.raises(error, match=message):
        to_onnx(**arguments)
    assert not list(tmp_path.iterdir())


FRAME_MODELS = {
    # name: (model, the example, options): each runs at frames of other sizes than the example's
    "valid_stride_stack": (
        lambda: ConvLSTM(2, [4, 3], 3, 2, batch_first=True, padding=["valid", "same"], stride=2, peephole="conv"),
        (2, 3, 2, 9, 8),
        {"seq_lengths": True},
    ),
    "step": (lambda: ConvLSTM(2, [4, 3], 3, 2, batch_first=True, peephole="hadamard"), (2, 2, 9, 8), {"step": True}),
    "initial_state_bidirectional": (
        lambda: Bidirectional(ConvLSTM(2, 3, 3, 1, batch_first=True), merge="concat"),
        (2, 3, 2, 9, 8),
        {"initial_state": True},
    ),
}


@pytest.mark.parametrize(
    "name", [name if name == "step" else pytest.param(name, marks=pytest.mark.slow) for name in sorted(FRAME_MODELS)]
)
def test_the_frame_size_is_dynamic(name, tmp_path):
    build, example, options = FRAME_MODELS[name]
    torch.manual_seed(0)
    model = build()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.5)
    path = to_onnx(model, tmp_path / "model.onnx", torch.zeros(example), **options)
    session = _session(path)
    assert [d for d in session.get_inputs()[0].shape[-2:]] == ["height", "width"]
    twin = copy.deepcopy(model).double().eval()
    rng = np.random.default_rng(1)
    step = options.get("step", False)
    for frame in [(8, 8), (16, 24), (64, 64)]:
        batch = 3
        x = rng.normal(size=(batch, *((2,) if step else (4, 2)), *frame)).astype(np.float32)
        feed = {"x": x}
        stacks = [twin.forward_layer, twin.backward_layer] if isinstance(twin, Bidirectional) else [twin]
        states = None
        if step or options.get("initial_state"):
            states = [
                [tuple(rng.normal(size=(batch, d, *frame)).astype(np.float32) for _ in "hc") for d in s.hidden_dim]
                for s in stacks
            ]
            names = onnx_input_names(model, step=step, initial_state=not step)[1:]
            feed.update(zip(names, [t for direction in states for pair in direction for t in pair]))
        if options.get("seq_lengths"):
            feed["seq_lengths"] = np.array([4, 0, 2], np.int64)
        with torch.no_grad():
            double = [[tuple(torch.from_numpy(t).double() for t in p) for p in d] for d in states] if states else None
            if step:
                h, c, new = torch.from_numpy(x).double(), None, []
                for cell, (h0, c0) in zip(twin.cell_list, double[0]):
                    h, c = cell(h, (h0, c0))
                    new += [h, c]
                expected = [t.numpy() for t in new]
            else:
                lengths = torch.from_numpy(feed["seq_lengths"]) if "seq_lengths" in feed else None
                initial = (double if isinstance(twin, Bidirectional) else double[0]) if double else None
                outputs, finals = twin(torch.from_numpy(x).double(), initial, seq_lengths=lengths)
                if isinstance(twin, Bidirectional):
                    finals = [pair for direction in finals for pair in direction]
                expected = [y.numpy() for y in outputs] + [t.numpy() for pair in finals for t in pair]
        results = session.run(None, feed)
        assert len(results) == len(expected)
        for actual, value in zip(results, expected):
            assert actual.shape == value.shape, (frame, actual.shape, value.shape)
            assert TOLERANCE.score(actual, value) <= 1, frame


@pytest.mark.parametrize(
    ("model", "options", "why"),
    [
        (lambda: ConvLSTM(2, 3, 3, 1, batch_first=True, layer_norm=True, frame_size=(9, 8)), {}, "layer norms"),
        (lambda: ConvLSTM(2, 3, 3, 1, batch_first=True, padding="valid"), {"initial_state": True}, "padding"),
    ],
)
def test_the_frame_size_stays_fixed_where_it_must(model, options, why, tmp_path):
    model = model()
    path = to_onnx(model, tmp_path / "model.onnx", torch.zeros(2, 3, 2, 9, 8), **options)
    shape = _session(path).get_inputs()[0].shape
    assert shape[:2] == ["batch", "steps"] and shape[-2:] == [9, 8]
    assert why in fixed_frame_reason(model, initial_state=options.get("initial_state", False))
