"""`convlstm-parity --checkpoint` on every kind of checkpoint the reference saves, and its failures."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs torch, the reference (not installed in this virtualenv)")

import torch

import convlstm_torch
from convlstm_torch.models import EncoderForecaster
from parity_tests import check, cli

RUN_ROWS = ("  torch              float32", "  jax                float64", "  jax                float32")
"""The rows of a checkpoint's table: torch float64 computes the expected values and is no row."""


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """`model` with every weight drawn at random (the Hadamard peepholes start at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.rand(parameter.shape, generator=generator) - 0.5)
    return model


def _save(tmp_path, model: torch.nn.Module, name: str = "model.pt"):
    path = tmp_path / name
    torch.save(_randomised(model).state_dict(), path)
    return str(path)


def _config(tmp_path, content, name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


# (model, --config or None, --shape, what the table's first line says)
PASSING = {
    "input_kernel_hadamard_no_bias_layers": (
        lambda: convlstm_torch.ConvLSTM(2, [4, 3], 3, 2, input_kernel_size=[5, 1], peephole="hadamard", bias=False),
        None,
        "1,2,6,6",
        "in=2, layers=[4@3x3, 3@3x3; input kernels 5x5, 1x1], peephole='hadamard', no bias",
    ),
    "valid_padding_dilation_no_peephole": (
        lambda: convlstm_torch.ConvLSTM(1, 3, 3, 1, peephole=None, padding="valid", dilation=2),
        {"padding": "valid", "dilation": 2},
        "1,2,7,7",
        "peephole=None, bias, batch_first, all layers, B=1 T=2 7x7, initial state, padding=['valid'], "
        "dilation=[[2, 2]]",
    ),
    "stride_per_layer": (
        lambda: convlstm_torch.ConvLSTM(2, [4, 3], 3, 2, stride=[2, 1]),
        {"stride": [[2, 2], [1, 1]]},
        "1,2,6,5",
        "layers=[4@3x3, 3@3x3], peephole='conv', bias, batch_first, all layers, B=1 T=2 6x5, initial state, "
        "stride=[[2, 2], [1, 1]]",
    ),
    "signals": (
        lambda: convlstm_torch.ConvLSTM(2, 3, 5, 1, input_kernel_size=3, stride=2, spatial_dims=1),
        {"stride": 2},
        "1,2,9",
        "layers=[3@5; input kernels 3], peephole='conv', bias, batch_first, all layers, B=1 T=2 9, initial "
        "state, stride=[[2]]",
    ),
    "volumes": (
        lambda: convlstm_torch.ConvLSTM(1, 2, (3, 1, 3), 1, peephole="hadamard", dilation=(1, 1, 2), spatial_dims=3),
        {"dilation": [[1, 1, 2]]},
        "1,2,3,2,5",
        "layers=[2@3x1x3], peephole='hadamard', bias, batch_first, all layers, B=1 T=2 3x2x5, initial state, "
        "dilation=[[1, 1, 2]]",
    ),
    "time_first_reverse_last_layer": (
        lambda: convlstm_torch.ConvLSTM(2, [3, 2], 3, 2, peephole=None),
        {"batch_first": False, "reverse": True, "keep_order": False, "return_all_layers": False},
        "2,3,4,4",
        "peephole=None, bias, time_first, last layer, B=2 T=3 4x4, initial state, reverse (computed order)",
    ),
    "bidirectional_read_from_its_keys": (
        lambda: convlstm_torch.Bidirectional(convlstm_torch.ConvLSTM(2, 3, 3, 1, input_kernel_size=5)),
        None,
        "1,2,5,5",
        "layers=[3@3x3; input kernels 5x5], peephole='conv', bias, batch_first, all layers, B=1 T=2 5x5, zero "
        "state, bidirectional (concat)",
    ),
    "bidirectional_sum_strided": (
        lambda: convlstm_torch.Bidirectional(convlstm_torch.ConvLSTM(2, 3, 3, 1, peephole="hadamard", stride=2), "sum"),
        {"bidirectional": {"merge": "sum"}, "stride": 2},
        "1,2,5,5",
        "zero state, bidirectional (sum), stride=[[2, 2]]",
    ),
    "layer_norm_forget_bias": (  # OpenSTL's cell: norms read from the weights; Flax's forget bias given
        lambda: convlstm_torch.ConvLSTM(2, [4, 3], 3, 2, peephole=None, bias=False, layer_norm=True, frame_size=(6, 5)),
        {"forget_bias": 1.0},
        "1,2,6,5",
        "peephole=None, no bias, batch_first, all layers, B=1 T=2 6x5, initial state, forget_bias=1.0, "
        "layer_norm (frames 6x5)",
    ),
}


@pytest.mark.parametrize("name", PASSING)
def test_a_checkpoint_of_each_option_passes(tmp_path, capsys, name):
    build, config, shape, description = PASSING[name]
    torch.manual_seed(0)
    args = ["--checkpoint", _save(tmp_path, build()), "--shape", shape]
    if config is not None:
        args += ["--config", _config(tmp_path, config)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert description in out
    rows = [line for line in out.splitlines() if line.startswith("  ") and line.rstrip().endswith("pass")]
    assert [row[: len(RUN_ROWS[0])] for row in rows] == list(RUN_ROWS)
    assert "3 passed, 0 failed (1 cases" in out


def _encoder_forecaster(tmp_path) -> str:
    torch.manual_seed(0)
    return _save(tmp_path, EncoderForecaster.from_spec("ConvLSTM(5x5)-3x3-4-3x3-3", patch_size=2, output_frames=2))


def test_an_encoder_forecaster_is_named_with_what_runs(tmp_path, capsys):
    assert cli.main(["--checkpoint", _encoder_forecaster(tmp_path), "--shape", "1,2,4,4"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("convlstm-parity: ")
    assert "holds a convlstm_torch.models.EncoderForecaster (keys encoder.*, forecaster.*, output.*)" in captured.err
    assert "--prefix encoder. and --prefix forecaster." in captured.err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("prefix", "layers"), [("encoder.", "in=4, layers=[4@3x3, 3@3x3; input kernels 5x5, 5x5]"), ("forecaster.", "in=0")]
)
def test_an_encoder_forecasters_stacks_pass_one_by_one(tmp_path, capsys, prefix, layers):
    path = _encoder_forecaster(tmp_path)
    assert cli.main(["--checkpoint", path, "--prefix", prefix, "--shape", "1,2,4,4"]) == 0
    out = capsys.readouterr().out
    assert f"model.pt: {layers}" in out and "3 passed, 0 failed" in out


def test_equal_kernels_of_their_own_are_checked_valid_and_said_so(tmp_path, capsys):
    torch.manual_seed(0)
    path = _save(tmp_path, convlstm_torch.ConvLSTM(2, [3, 2], 3, 2, padding=["valid", "same"], peephole=None))
    assert cli.main(["--checkpoint", path, "--shape", "1,2,5,5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("note: layer 0 has conv_x and conv_h of equal kernels") and "layer 1" not in out
    assert "padding=['valid', 'same']" in out and "3 passed, 0 failed" in out


def test_failing_numbers_exit_one(tmp_path, capsys, monkeypatch):
    run_jax = check.run_jax

    def off_by_a_little(config, arrays, dtype, **options):
        results = run_jax(config, arrays, dtype, **options)
        return results | {"c/0": results["c/0"] + 1e-3}

    monkeypatch.setattr(check, "run_jax", off_by_a_little)
    torch.manual_seed(0)
    path = _save(tmp_path, convlstm_torch.ConvLSTM(2, 3, 3, 1, input_kernel_size=1))
    assert cli.main(["--checkpoint", path, "--shape", "1,2,4,4"]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL at c/0") == 2 and "1 passed, 2 failed" in out


def _plain(tmp_path) -> str:
    """Two image layers, the first strided (conv_x and conv_h), the second the seed's one conv."""
    torch.manual_seed(0)
    return _save(tmp_path, convlstm_torch.ConvLSTM(2, [4, 3], 3, 2, stride=[2, 1]), "plain.pt")


def _bidirectional(tmp_path) -> str:
    torch.manual_seed(0)
    return _save(tmp_path, convlstm_torch.Bidirectional(convlstm_torch.ConvLSTM(2, 3, 3, 1)), "bidirectional.pt")


# (checkpoint, --config content (None: no --config), words of the message)
FAILING = {
    "missing_config_file": (_plain, "missing", "--config {tmp}/missing.json: no such file."),
    "config_not_json": (_plain, "stride: 2", "is not JSON (Expecting value: line 1 column 1"),
    "config_not_an_object": (_plain, "[2]", 'must hold a JSON object such as {"stride": 2}, got a JSON array.'),
    "unknown_key": (_plain, {"strides": 2}, "unknown key(s) 'strides'; the keys are convlstm_torch.ConvLSTM's"),
    "flag_not_a_bool": (_plain, {"batch_first": "yes"}, 'batch_first must be true or false, got "yes".'),
    "size_of_the_wrong_type": (_plain, {"stride": "2"}, "stride must be an int or a pair (kh, kw), or a list of 2"),
    "size_per_axis_not_nested": (
        _plain,
        {"dilation": [1, 2, 1]},
        "dilation must have one entry per layer: num_layers is 2, got 3 entries ([1, 2, 1]); or be an int or a "
        "pair (kh, kw), for every layer. (in --config, a list gives one value per layer; one size per axis is a "
        "list inside it: [[1, 2]])",
    ),
    "rate_out_of_range": (_plain, {"dropout": 1.5}, "dropout must be a rate in [0, 1), got 1.5."),
    "bidirectional_not_an_object": (
        _bidirectional,
        {"bidirectional": True},
        'bidirectional must be an object {"merge": "concat" or "sum"} ({}: "concat"), got true.',
    ),
    "bidirectional_unknown_merge": (
        _bidirectional,
        {"bidirectional": {"merge": "max"}},
        "bidirectional merge must be one of ('concat', 'sum'), got \"max\".",
    ),
    "contradicts_hidden_dim": (
        _plain,
        {"hidden_dim": [4, 5]},
        "layer 1's hidden_dim 5 does not fit the weights' 3.",
    ),
    "contradicts_peephole": (_plain, {"peephole": None}, "peephole None does not fit the weights' 'conv'."),
    "contradicts_num_layers": (_plain, {"num_layers": 3}, "says num_layers=3; the checkpoint has 2 layer(s)."),
    "contradicts_spatial_dims": (
        _plain,
        {"spatial_dims": 1},
        "says spatial_dims=1; the checkpoint's convolutions are 2-D.",
    ),
    "contradicts_the_stride": (
        _plain,
        {"stride": 2},
        "layer 1's stride (2, 2) needs separate input and state convolutions (conv_x, conv_h); the weights have one",
    ),
    "bidirectional_on_a_plain_stack": (
        _plain,
        {"bidirectional": {}},
        "holds a ConvLSTM's keys (cell_list.*), not a Bidirectional's (forward_layer.*, backward_layer.*).",
    ),
    "reverse_on_a_bidirectional": (
        _bidirectional,
        {"reverse": True},
        "a Bidirectional runs its layer both ways: reverse and keep_order do not apply.",
    ),
}


@pytest.mark.parametrize("name", FAILING)
def test_a_config_that_does_not_fit_exits_two(tmp_path, capsys, name):
    make, content, message = FAILING[name]
    checkpoint = make(tmp_path)
    config = str(tmp_path / "missing.json") if content == "missing" else _config(tmp_path, content)
    assert cli.main(["--checkpoint", checkpoint, "--config", config, "--shape", "1,2,6,6"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("convlstm-parity: ")
    assert captured.err.count("convlstm-parity") == 1 and message.replace("{tmp}", str(tmp_path)) in captured.err


def _save_state_dict(tmp_path, state_dict, name="model.pt") -> str:
    torch.save(state_dict, tmp_path / name)
    return str(tmp_path / name)


def _mis_shaped(tmp_path) -> str:
    state_dict = _randomised(convlstm_torch.ConvLSTM(2, 3, 3, 1, input_kernel_size=5)).state_dict()
    state_dict["cell_list.0.conv_x.weight"] = state_dict["cell_list.0.conv_x.weight"].transpose(0, 1)
    return _save_state_dict(tmp_path, state_dict)


def _one_direction_missing(tmp_path) -> str:
    state_dict = _randomised(convlstm_torch.Bidirectional(convlstm_torch.ConvLSTM(2, 3, 3, 1))).state_dict()
    return _save_state_dict(tmp_path, {k: v for k, v in state_dict.items() if k.startswith("forward_layer.")})


def _directions_unequal(tmp_path) -> str:
    forward = _randomised(convlstm_torch.Bidirectional(convlstm_torch.ConvLSTM(2, 3, 3, 1))).state_dict()
    backward = _randomised(convlstm_torch.Bidirectional(convlstm_torch.ConvLSTM(2, 4, 3, 1))).state_dict()
    state_dict = {k: v for k, v in forward.items() if k.startswith("forward_layer.")}
    state_dict |= {k: v for k, v in backward.items() if k.startswith("backward_layer.")}
    return _save_state_dict(tmp_path, state_dict)


def _bidirectional_and_more(tmp_path) -> str:
    state_dict = _randomised(convlstm_torch.Bidirectional(convlstm_torch.ConvLSTM(2, 3, 3, 1))).state_dict()
    return _save_state_dict(tmp_path, state_dict | {"head.weight": torch.zeros(2)})


def _damaged(tmp_path) -> str:
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    return str(tmp_path / "model.pt")


def _valid_padding(tmp_path) -> str:
    return _save(tmp_path, convlstm_torch.ConvLSTM(1, 2, 3, 1, padding="valid", stride=2))


# (checkpoint, --config or None, --shape, words of the message)
BAD_CHECKPOINTS = {
    "missing_file": (lambda tmp: str(tmp / "none.pt"), None, "1,2,6,6", "--checkpoint {tmp}/none.pt: no such file."),
    "damaged_file": (_damaged, None, "1,2,6,6", "--checkpoint {tmp}/model.pt cannot be read: UnpicklingError"),
    "mis_shaped_key": (
        _mis_shaped,
        None,
        "1,2,6,6",
        "(3 problem(s)):\n  - missing key 'cell_list.0.conv_h.bias'",
    ),
    "one_direction_missing": (
        _one_direction_missing,
        None,
        "1,2,6,6",
        "backward_layer.*: The state_dict holds no ConvLSTM layer (no 'cell_list.<l>.' key)",
    ),
    "directions_unequal": (
        _directions_unequal,
        None,
        "1,2,6,6",
        "backward_layer.*: The state_dict does not match a ConvLSTM with 1 layer(s) [2->3 3x3]",
    ),
    "bidirectional_and_more": (
        _bidirectional_and_more,
        None,
        "1,2,6,6",
        "has a Bidirectional's keys (forward_layer.*, backward_layer.*) and 1 other(s): ['head.weight']",
    ),
    "frames_too_small": (
        _valid_padding,
        {"padding": "valid", "stride": 2},
        "1,2,2,4",
        "--shape 1,2,2,4: Frames of 2x4 are too small for the input-to-state convolution (3x3 kernel, "
        "padding='valid', dilation=(1, 1)): its output would be 0x1.",
    ),
    "prefix_matches_nothing": (_plain, None, "1,2,6,6", "No key of {tmp}/plain.pt starts with --prefix 'module.'"),
}


@pytest.mark.parametrize("name", BAD_CHECKPOINTS)
def test_a_checkpoint_that_does_not_fit_exits_two(tmp_path, capsys, name):
    make, content, shape, message = BAD_CHECKPOINTS[name]
    args = ["--checkpoint", make(tmp_path), "--shape", shape]
    if content is not None:
        args += ["--config", _config(tmp_path, content)]
    if name == "prefix_matches_nothing":
        args += ["--prefix", "module."]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("convlstm-parity: ")
    assert message.replace("{tmp}", str(tmp_path)) in captured.err


def test_a_config_needs_a_checkpoint(tmp_path):
    with pytest.raises(SystemExit) as info:
        cli.main(["--config", _config(tmp_path, {"stride": 2})])
    assert info.value.code == 2


def test_the_help_documents_the_config():
    help_text = cli._parser().format_help()
    assert "--config FILE.json" in help_text and '{"bidirectional": {"merge": "sum"}}' in help_text
    assert "--prefix encoder. and --prefix forecaster." in help_text


def test_a_config_list_is_per_layer_and_a_list_inside_it_per_axis(tmp_path):
    config = cli.read_config(Path(_config(tmp_path, {"stride": [[1, 2], 2], "kernel_size": [3, [1, 3]]})))
    assert config == {"stride": [(1, 2), 2], "kernel_size": [3, (1, 3)]}


# --- one configuration format, shared with convlstm-convert ---------------------------------------------------


def test_the_configuration_convlstm_convert_writes_is_a_config(tmp_path, capsys):
    from convlstm_jax.interop import convert

    checkpoint = _save(tmp_path, convlstm_torch.ConvLSTM(2, [4, 3], 3, 2, stride=[2, 1]), "strided.pt")
    options = _config(tmp_path, {"stride": [[2, 2], [1, 1]]}, "options.json")
    dest = tmp_path / "strided.msgpack"
    assert convert.main([checkpoint, str(dest), "--config", options, "--shape", "1,2,6,5"]) == 0
    written = [path for path in tmp_path.glob("strided.*json") if path.name != "options.json"]
    assert len(written) == 1 and json.loads(written[0].read_text())["kind"] == "ConvLSTM"
    capsys.readouterr()
    assert cli.main(["--checkpoint", checkpoint, "--config", str(written[0]), "--shape", "1,2,6,5"]) == 0
    assert "stride=[[2, 2], [1, 1]]" in capsys.readouterr().out


def test_a_flat_size_list_that_could_mean_both_is_refused_with_both_spellings(tmp_path, capsys):
    checkpoint = _save(tmp_path, convlstm_torch.ConvLSTM(2, [4, 3], [(5, 5), (3, 3)], 2))
    config = _config(tmp_path, {"kernel_size": [5, 3]})
    assert cli.main(["--checkpoint", checkpoint, "--config", config, "--shape", "1,2,6,6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kernel_size [5, 3] could be one (5, 3) kernel for every layer" in err, err
    assert "[[5, 3], [5, 3]]" in err and "[[5, 5], [3, 3]]" in err, err
    per_layer = _config(tmp_path, {"kernel_size": [[5, 5], [3, 3]]}, "per_layer.json")
    assert cli.main(["--checkpoint", checkpoint, "--config", per_layer, "--shape", "1,2,6,6"]) == 0


@pytest.mark.parametrize("layers", [1, 3])
def test_a_flat_size_list_of_one_size_per_axis_is_one_kernel_where_that_is_all_it_can_mean(tmp_path, capsys, layers):
    checkpoint = _save(tmp_path, convlstm_torch.ConvLSTM(2, 3, (5, 3), layers))
    config = _config(tmp_path, {"kernel_size": [5, 3]})
    assert cli.main(["--checkpoint", checkpoint, "--config", config, "--shape", "1,2,6,6"]) == 0, capsys.readouterr()
    assert "3@5x3" in capsys.readouterr().out


# (checkpoint, --config, the whole message after "convlstm-parity: --config FILE: ")
CONTRADICTIONS = {
    "kernel": (
        lambda: convlstm_torch.ConvLSTM(2, 3, (5, 3), 1),
        {"kernel_size": 5},
        "kernel_size (5, 5) does not fit the weights' (5, 3)",
    ),
    "hidden_dim_of_a_layer": (
        lambda: convlstm_torch.ConvLSTM(2, [4, 3], 3, 2),
        {"hidden_dim": [4, 5]},
        "layer 1's hidden_dim 5 does not fit the weights' 3",
    ),
    "peephole": (
        lambda: convlstm_torch.ConvLSTM(2, 3, 3, 1),
        {"peephole": None},
        "peephole None does not fit the weights' 'conv'",
    ),
    "padding_on_one_convolution": (
        lambda: convlstm_torch.ConvLSTM(2, 3, 3, 1),
        {"padding": "valid"},
        "padding 'valid' needs separate input and state convolutions (conv_x, conv_h); the weights have one (conv)",
    ),
    "stride_of_a_layer_on_one_convolution": (
        lambda: convlstm_torch.ConvLSTM(2, [4, 3], 3, 2, stride=[2, 1]),
        {"stride": 2},
        "layer 1's stride (2, 2) needs separate input and state convolutions (conv_x, conv_h); the weights have "
        "one (conv)",
    ),
}


@pytest.mark.parametrize("name", CONTRADICTIONS)
def test_a_config_that_contradicts_the_weights_names_the_option_and_both_values(tmp_path, capsys, name):
    build, content, message = CONTRADICTIONS[name]
    config = _config(tmp_path, content)
    assert cli.main(["--checkpoint", _save(tmp_path, build()), "--config", config, "--shape", "1,2,6,6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip("\n").endswith(f"--config {config}: {message}."), err


# --- the messages met first: checkpoints of other modules, prefixes, damaged files ----------------------------


def test_checkpoints_that_make_no_convlstm_exit_2_with_one_line_saying_why(tmp_path, capsys):
    from convlstm_jax.tests.interop.test_convert_command import _unreadable_checkpoints

    for name, phrase in _unreadable_checkpoints(tmp_path).items():
        assert cli.main(["--checkpoint", str(tmp_path / name)]) == 2, name
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("convlstm-parity: "), name + captured.err
        assert captured.err.count("\n") == 1 and phrase in captured.err, name + captured.err
