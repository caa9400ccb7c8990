import pytest

from convlstm_common import LayerSpec, check_peephole, resolve_cell, resolve_kernel, resolve_layers


def test_one_value_applies_to_every_layer():
    assert resolve_layers(3, 8, 5, 2) == (LayerSpec(3, 8, (5, 5)), LayerSpec(8, 8, (5, 5)))


def test_lists_give_one_entry_per_layer():
    specs = resolve_layers(1, [4, 6, 2], [(3, 3), (1, 1), (3, 5)], 3)
    assert specs == (LayerSpec(1, 4, (3, 3)), LayerSpec(4, 6, (1, 1)), LayerSpec(6, 2, (3, 5)))


def test_a_tuple_is_one_kernel_and_a_list_is_per_layer():
    assert resolve_layers(1, 4, (3, 5), 2)[1].kernel_size == (3, 5)
    assert resolve_layers(1, 4, [3, 5], 2)[1].kernel_size == (5, 5)


def test_inferred_input_dim_is_zero_until_known():
    assert resolve_layers(None, [4, 2], 3, 2)[0].input_dim == 0
    assert resolve_cell(None, 4, 3) == LayerSpec(0, 4, (3, 3))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((1, [4, 4], 3, 3), ValueError, "hidden_dim must have one entry per layer: num_layers is 3, got 2"),
        ((1, 4, [(3, 3)], 2), ValueError, "kernel_size must have one entry per layer"),
        ((1, 0, 3, 1), ValueError, "hidden_dim must be a positive int, got 0"),
        ((1, 4, 3, 0), ValueError, "num_layers must be a positive int, got 0"),
        ((-2, 4, 3, 1), ValueError, "input_dim must be a positive int, got -2"),
        ((1, 4, (3, -1), 1), ValueError, "kernel_size must be a positive int, got -1"),
        ((1, 4, 4, 1), ValueError, r"kernel_size must be odd in both dimensions .* got \(4, 4\)"),
        ((1, 4, (3, 2), 1), ValueError, "must be odd"),
        ((1, 4.0, 3, 1), TypeError, r"hidden_dim must be an int, or a list of 1 \(one per layer\), got 4.0"),
        ((1, 4, "3", 1), TypeError, r"kernel_size must be an int or a \(kh, kw\) tuple, or a list"),
        ((1, 4, 3, True), TypeError, "num_layers must be a positive int"),
        ((1, 4, [(3, 3, 3)], 1), TypeError, r"kernel_size must be an int or a pair \(kh, kw\)"),
    ],
)
def test_bad_hyperparameters_are_named(args, error, match):
    with pytest.raises(error, match=match):
        resolve_layers(*args)


def test_kernel_forms():
    assert resolve_kernel(1) == (1, 1)
    assert resolve_kernel([3, 5]) == (3, 5)


def test_peephole_must_be_known():
    assert check_peephole("hadamard") == "hadamard"
    with pytest.raises(ValueError, match=r"peephole must be one of \('conv', 'hadamard', None\), got 'paper'"):
        check_peephole("paper")
