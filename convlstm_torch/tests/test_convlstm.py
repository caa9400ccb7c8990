import pytest
import torch

from convlstm_torch import ConvLSTM, ConvLSTMCell


def _model(**kwargs):
    torch.manual_seed(0)
    options = {"input_dim": 2, "hidden_dim": [4, 3], "kernel_size": [(3, 3), (1, 5)], "num_layers": 2}
    return ConvLSTM(**(options | kwargs))


@pytest.mark.parametrize("batch_first", [True, False])
def test_outputs_are_batch_first_whatever_the_input_layout(batch_first):
    model = _model(batch_first=batch_first, return_all_layers=True)
    x = torch.randn(5, 7, 2, 6, 4) if batch_first else torch.randn(7, 5, 2, 6, 4)
    outputs, states = model(x)
    assert [tuple(o.shape) for o in outputs] == [(5, 7, 4, 6, 4), (5, 7, 3, 6, 4)]
    assert [tuple(t.shape) for h_c in states for t in h_c] == [(5, 4, 6, 4)] * 2 + [(5, 3, 6, 4)] * 2
    assert torch.equal(outputs[-1][:, -1], states[-1][0])


def test_only_the_last_layer_by_default():
    outputs, states = _model()(torch.randn(3, 2, 2, 5, 5))
    assert len(outputs) == len(states) == 1
    assert outputs[0].shape[2] == 3


@pytest.mark.parametrize(
    ("peephole", "names"),
    [
        ("conv", ["conv.weight", "conv.bias", "conv_c.weight", "conv_c.bias", "conv_cnext.weight", "conv_cnext.bias"]),
        ("hadamard", ["w_ci", "w_cf", "w_co", "conv.weight", "conv.bias"]),
        (None, ["conv.weight", "conv.bias"]),
    ],
)
def test_state_dict_keys_are_the_seeds(peephole, names):
    keys = _model(peephole=peephole).state_dict().keys()
    assert sorted(keys) == sorted(f"cell_list.{layer}.{name}" for layer in (0, 1) for name in names)


def _checkpoint(layers, peephole):
    """A state_dict as the seed's (peephole="conv") or ndrplz's (None) code saves it, from their shapes."""
    state_dict, input_dim = {}, layers[0][0]
    for index, (_, hid, k) in enumerate(layers):
        shapes = {"conv": (4 * hid, input_dim + hid)}
        if peephole == "conv":
            shapes |= {"conv_c": (2 * hid, hid), "conv_cnext": (hid, hid)}
        for name, (out_ch, in_ch) in shapes.items():
            state_dict[f"cell_list.{index}.{name}.weight"] = torch.randn(out_ch, in_ch, k, k)
            state_dict[f"cell_list.{index}.{name}.bias"] = torch.randn(out_ch)
        input_dim = hid
    return state_dict


@pytest.mark.parametrize("peephole", ["conv", None])
def test_seed_and_ndrplz_checkpoints_load_strictly(peephole):
    model = ConvLSTM(3, [8, 4], 3, 2, peephole=peephole)
    model.load_state_dict(_checkpoint([(3, 8, 3), (8, 4, 3)], peephole), strict=True)


def test_the_initial_state_continues_a_sequence():
    model = _model(batch_first=True, return_all_layers=True)
    x = torch.randn(2, 6, 2, 5, 4)
    full_outputs, full_states = model(x)
    head_outputs, head_states = model(x[:, :4])
    tail_outputs, tail_states = model(x[:, 4:], head_states)
    for layer in range(2):
        torch.testing.assert_close(torch.cat([head_outputs[layer], tail_outputs[layer]], 1), full_outputs[layer])
        torch.testing.assert_close(tail_states[layer], full_states[layer])


def test_a_zero_initial_state_is_the_default():
    model = _model(peephole="hadamard")
    x = torch.randn(3, 2, 2, 5, 5)
    zeros = [(torch.zeros(2, h, 5, 5), torch.zeros(2, h, 5, 5)) for h in (4, 3)]
    assert torch.equal(model(x)[0][0], model(x, zeros)[0][0])


def test_the_cell_is_the_stacks_step():
    model = _model(num_layers=1, hidden_dim=4, kernel_size=3)
    x, h, c = torch.randn(2, 2, 5, 5), torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    cell_state = model.cell_list[0](x, (h, c))
    _, stack_state = model(x[None], [(h, c)])
    torch.testing.assert_close(list(cell_state), stack_state[0])


def test_gradients_reach_every_parameter():
    for peephole in ("conv", "hadamard", None):
        model = _model(peephole=peephole)
        outputs, states = model(torch.randn(2, 2, 2, 5, 5))
        (outputs[0].sum() + states[0][1].sum()).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_float64_runs_in_float64():
    model = _model().double()
    outputs, _ = model(torch.randn(2, 2, 2, 5, 5, dtype=torch.float64))
    assert outputs[0].dtype == torch.float64


@pytest.mark.parametrize(
    ("x", "hidden_state", "error", "match"),
    [
        (
            torch.randn(2, 2, 5, 5),
            None,
            ValueError,
            r"input_tensor must be 5-D \(T, B, C, H, W\), got shape \(2, 2, 5, 5\)",
        ),
        (torch.randn(3, 2, 1, 5, 5), None, ValueError, r"input_tensor has 1 channels .* input_dim is 2"),
        (torch.randn(0, 2, 2, 5, 5), None, ValueError, "must not have an empty dimension but channels"),
        (
            torch.ones(3, 2, 2, 5, 5, dtype=torch.int64),
            None,
            TypeError,
            "input_tensor must have a floating-point dtype",
        ),
        ([[1.0]], None, TypeError, "input_tensor must be a torch.Tensor, got list"),
        (
            torch.randn(3, 2, 2, 5, 5),
            [(torch.zeros(2, 4, 5, 5),) * 2],
            ValueError,
            "list of 2 .* pairs, one per layer; got 1",
        ),
        (
            torch.randn(3, 2, 2, 5, 5),
            [(torch.zeros(2, 4, 5, 5),) * 2, (torch.zeros(2, 4, 5, 5),) * 2],
            ValueError,
            r"hidden_state\[1\] h must have shape \(B, hidden_dim, H, W\) = \(2, 3, 5, 5\), got \(2, 4, 5, 5\)",
        ),
        (
            torch.randn(3, 2, 2, 5, 5),
            [(torch.zeros(2, 4, 5, 5),) * 3] * 2,
            ValueError,
            r"hidden_state\[0\] must be a pair",
        ),
    ],
)
def test_bad_input_is_explained(x, hidden_state, error, match):
    with pytest.raises(error, match=match):
        _model()(x, hidden_state)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"peephole": "paper"}, ValueError, "peephole must be one of"),
        ({"kernel_size": (2, 3)}, ValueError, "must be odd"),
        ({"hidden_dim": [4]}, ValueError, "hidden_dim must have one entry per layer"),
        ({"input_dim": None}, TypeError, "input_dim must be a non-negative int \\(0: no input\\), got None"),
    ],
)
def test_bad_hyperparameters_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        _model(**kwargs)


def test_cell_checks_its_step():
    cell = ConvLSTMCell(2, 4, 3)
    with pytest.raises(ValueError, match=r"cur_state c must have shape \(2, 4, 5, 5\), got \(2, 4, 5, 6\)"):
        cell(torch.randn(2, 2, 5, 5), (torch.zeros(2, 4, 5, 5), torch.zeros(2, 4, 5, 6)))
    with pytest.raises(ValueError, match=r"input_tensor must have shape \(B, 2, H, W\)"):
        cell(torch.randn(2, 3, 5, 5), cell.init_hidden(2, (5, 5)))


@pytest.mark.parametrize(
    ("input_dim", "input_kernel_size", "layer0", "layer1"),
    [
        (3, 5, ["conv_x.weight", "conv_x.bias", "conv_h.weight"], ["conv_x.weight", "conv_x.bias", "conv_h.weight"]),
        (3, [5, 3], ["conv_x.weight", "conv_x.bias", "conv_h.weight"], ["conv.weight", "conv.bias"]),
        (0, None, ["conv_h.weight", "conv_h.bias"], ["conv.weight", "conv.bias"]),
        (0, 1, ["conv_h.weight", "conv_h.bias"], ["conv_x.weight", "conv_x.bias", "conv_h.weight"]),
    ],
)
def test_input_kernels_and_no_input_keep_one_bias(input_dim, input_kernel_size, layer0, layer1):
    model = ConvLSTM(input_dim, [8, 4], 3, 2, peephole=None, input_kernel_size=input_kernel_size)
    expected = [f"cell_list.0.{n}" for n in layer0] + [f"cell_list.1.{n}" for n in layer1]
    assert sorted(model.state_dict()) == sorted(expected)
    if "conv_x.weight" in layer0:
        assert model.cell_list[0].conv_x.weight.shape[-2:] == (5, 5)
    outputs, _ = model(torch.zeros(2, 3, input_dim, 6, 5))
    assert tuple(outputs[0].shape) == (3, 2, 4, 6, 5)  # (T, B, ...) in, batch-first out


def test_a_stack_without_input_is_driven_by_its_state():
    torch.manual_seed(0)
    model = ConvLSTM(0, 4, 3, 1, batch_first=True, peephole="hadamard")
    x = torch.zeros(1, 3, 0, 5, 5)
    state = [(torch.randn(1, 4, 5, 5), torch.randn(1, 4, 5, 5))]
    outputs, _ = model(x, state)
    cell = model.cell_list[0]
    h, c = state[0]
    for t in range(3):
        h, c = cell(x[:, t], (h, c))
        torch.testing.assert_close(outputs[0][:, t], h)
    with pytest.raises(ValueError, match="input_tensor has 1 channels"):
        model(torch.zeros(1, 3, 1, 5, 5))


def test_print_shows_the_module_tree_with_each_cells_options():
    text = repr(_model(peephole="hadamard", bias=False))
    assert "(cell_list): ModuleList(" in text
    cell = "input_dim=2, hidden_dim=4, kernel_size=(3, 3), bias=False, peephole='hadamard'"
    assert f"(0): ConvLSTMCell(\n      {cell}" in text
    assert "(conv): Conv2d(6, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)" in text


@pytest.mark.parametrize(
    ("model_dtype", "x_dtype", "state_dtype", "match"),
    [
        (
            torch.float32,
            torch.float64,
            None,
            r"input_tensor must have the weights' dtype torch\.float32, got torch\.float64",
        ),
        (
            torch.float64,
            torch.float32,
            None,
            r"input_tensor must have the weights' dtype torch\.float64, got torch\.float32",
        ),
        (
            torch.float32,
            torch.float16,
            None,
            r"input_tensor must have the weights' dtype torch\.float32, got torch\.float16",
        ),
        (
            torch.float32,
            torch.float32,
            torch.float64,
            r"hidden_state\[0\] h must have the weights' dtype torch\.float32, got torch\.float64",
        ),
    ],
)
def test_frames_or_states_of_another_float_dtype_than_the_weights_are_a_type_error(
    model_dtype, x_dtype, state_dtype, match
):
    model = _model(batch_first=True).to(model_dtype)
    x = torch.randn(2, 3, 2, 5, 5, dtype=x_dtype)
    state = None
    if state_dtype is not None:
        state = [(torch.zeros(2, h, 5, 5, dtype=state_dtype),) * 2 for h in model.hidden_dim]
    with pytest.raises(TypeError, match=match):
        model(x, state)
    with pytest.raises(TypeError, match=match.replace("hidden_state\\[0\\]", "cur_state")):
        model.cell_list[0](x[:, 0], state[0] if state else model.cell_list[0].init_hidden(2, (5, 5)))


def test_under_autocast_frames_of_the_weights_dtype_and_the_autocast_dtype_both_run():
    model = _model(batch_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for dtype in (torch.float32, torch.bfloat16):
            outputs, _ = model(torch.randn(2, 3, 2, 5, 5, dtype=dtype))
            assert torch.isfinite(outputs[0].float()).all()
