import pytest

from convlstm_common import (
    LayerSpec,
    NetworkSpec,
    check_peephole,
    parse_network,
    resolve_cell,
    resolve_kernel,
    resolve_layers,
)


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
        ((-2, 4, 3, 1), ValueError, r"input_dim must be a non-negative int \(0: no input\), got -2"),
        ((1, 4, 3, 2, [3]), ValueError, "input_kernel_size must have one entry per layer"),
        ((1, 4, 3, 1, 2), ValueError, "input_kernel_size must be odd"),
        ((1, 4, (3, -1), 1), ValueError, "kernel_size must be a positive int, got -1"),
        ((1, 4, 4, 1), ValueError, r"kernel_size must be odd on every axis .* got \(4, 4\)"),
        ((1, 4, (3, 2), 1), ValueError, "must be odd"),
        ((1, 4.0, 3, 1), TypeError, r"hidden_dim must be an int, or a list of 1 \(one per layer\), got 4.0"),
        ((1, 4, "3", 1), TypeError, r"kernel_size must be an int or a pair \(kh, kw\), or a list"),
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


def test_input_kernels_default_to_the_state_kernels():
    (spec,) = resolve_layers(2, 4, (3, 5), 1)
    assert spec.input_kernel_size == (3, 5) and spec.fused
    first, second = resolve_layers(2, [4, 6], [1, 3], 2, input_kernel_size=5)
    assert (first.input_kernel_size, first.kernel_size) == ((5, 5), (1, 1)) and not first.fused
    assert (second.input_kernel_size, second.kernel_size) == ((5, 5), (3, 3))
    assert resolve_cell(2, 4, 3, (1, 5)) == LayerSpec(2, 4, (3, 3), (1, 5))


def test_a_layer_without_input_has_no_fused_convolution():
    first, second = resolve_layers(0, [4, 6], 3, 2)
    assert first.input_dim == 0 and not first.fused
    assert second.input_dim == 4 and second.fused


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ConvLSTM(5x5)-5x5-256", NetworkSpec((5, 5), ((5, 5),), (256,))),
        ("ConvLSTM(5x5)-5x5-128-5x5-128", NetworkSpec((5, 5), ((5, 5), (5, 5)), (128, 128))),
        ("ConvLSTM(9x9)-1x1-128-1x1-64-1x1-64", NetworkSpec((9, 9), ((1, 1),) * 3, (128, 64, 64))),
        ("ConvLSTM(3x5) - 1x3-8", NetworkSpec((3, 5), ((1, 3),), (8,))),
    ],
)
def test_the_papers_notation(spec, expected):
    assert parse_network(spec) == expected
    assert parse_network(str(expected)) == expected


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("ConvLSTM(5x5)", ValueError, "notation of Shi et al. 2015"),
        ("5x5-128", ValueError, "notation of Shi et al. 2015"),
        ("ConvLSTM(5x5)-5x5-128-5x5", ValueError, "notation of Shi et al. 2015"),
        ("ConvLSTM(4x4)-5x5-128", ValueError, r"the input-to-state kernel must be odd .* got \(4, 4\)"),
        ("ConvLSTM(5x5)-5x5-0", ValueError, "hidden states must be a positive int, got 0"),
        (128, TypeError, "spec must be a string"),
    ],
)
def test_bad_notation_is_explained(spec, error, match):
    with pytest.raises(error, match=match):
        parse_network(spec)


def test_padding_stride_and_dilation_set_the_state_size():
    (same,) = resolve_layers(2, 4, 3, 1)
    assert same.state_size((9, 8)) == (9, 8) and same.input_padding == (1, 1)
    (strided,) = resolve_layers(2, 4, 3, 1, stride=2)
    assert strided.state_size((9, 8)) == (5, 4) and not strided.fused  # ceil(H / stride)
    (valid,) = resolve_layers(2, 4, 3, 1, padding="valid", dilation=(2, 1))
    assert valid.state_size((9, 8)) == (5, 6) and valid.input_padding == (0, 0)
    first, second = resolve_layers(2, [4, 3], 3, 2, padding=["valid", "same"], stride=[1, (2, 1)])
    assert (first.padding, second.padding, second.stride) == ("valid", "same", (2, 1))
    assert resolve_layers(0, 4, 3, 1, stride=2)[0].state_size((9, 8)) == (9, 8)  # no input, no convolution


def test_too_small_frames_and_bad_convolution_options_are_explained():
    (valid,) = resolve_layers(2, 4, 5, 1, padding="valid")
    with pytest.raises(ValueError, match=r"Frames of 3x9 are too small for the input-to-state convolution \(5x5"):
        valid.state_size((3, 9))
    with pytest.raises(ValueError, match=r"padding must be one of \('same', 'valid'\), got 'full'"):
        resolve_layers(2, 4, 3, 1, padding="full")
    with pytest.raises(ValueError, match="stride must be a positive int, got 0"):
        resolve_layers(2, 4, 3, 1, stride=0)
    with pytest.raises(TypeError, match=r"dilation must be an int or a pair of ints"):
        resolve_cell(2, 4, 3, dilation=(1, 2, 3))


def test_signals_and_volumes_have_one_size_per_axis():
    first, second = resolve_layers(2, [4, 3], [5, (3,)], 2, stride=[2, 1], spatial_dims=1)
    assert (first.kernel_size, first.stride, first.dilation, first.spatial_dims) == ((5,), (2,), (1,), 1)
    assert second.kernel_size == (3,) and second.fused and not first.fused
    assert first.state_size((11,)) == (6,) and second.input_padding == (1,)
    (volume,) = resolve_layers(2, 4, (3, 1, 5), 1, input_kernel_size=3, dilation=(1, 2, 1), spatial_dims=3)
    assert (volume.kernel_size, volume.input_kernel_size, volume.spatial_dims) == ((3, 1, 5), (3, 3, 3), 3)
    assert volume.input_padding == (1, 2, 1) and volume.state_size((4, 5, 6)) == (4, 5, 6)
    assert resolve_cell(None, 4, 3, spatial_dims=3) == LayerSpec(0, 4, (3, 3, 3))
    assert resolve_kernel(3, spatial_dims=1) == (3,) and resolve_kernel((1, 3, 5), spatial_dims=3) == (1, 3, 5)


def test_a_tuple_of_the_rank_is_one_kernel():
    # A triple is one kernel for volumes, and one kernel per layer for images with three layers.
    assert {s.kernel_size for s in resolve_layers(1, 4, (3, 1, 5), 3, spatial_dims=3)} == {(3, 1, 5)}
    assert [s.kernel_size for s in resolve_layers(1, 4, (3, 1, 5), 3)] == [(3, 3), (1, 1), (5, 5)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"spatial_dims": 4}, ValueError, r"spatial_dims must be 1 \(signals\), 2 \(images\) or 3 \(volumes\), got 4"),
        ({"spatial_dims": 2.0}, TypeError, "spatial_dims must be 1, 2 or 3"),
        ({"spatial_dims": 3, "kernel_size": (3, 3)}, ValueError, r"one entry per layer.* or be an int or a triple"),
        ({"spatial_dims": 1, "kernel_size": [(3, 3)]}, TypeError, r"a 1-tuple \(k,\) of ints \(spatial_dims=1\)"),
        ({"spatial_dims": 3, "stride": (1, 2)}, ValueError, "stride must have one entry per layer"),
        ({"spatial_dims": 3, "stride": [(1, 2)]}, TypeError, r"stride must be an int or a triple of ints"),
        ({"spatial_dims": 1, "kernel_size": 4}, ValueError, r"odd on every axis.* got \(4,\)"),
    ],
)
def test_bad_ranks_are_named(kwargs, error, match):
    arguments = {"input_dim": 1, "hidden_dim": 4, "kernel_size": 3, "num_layers": 1} | kwargs
    with pytest.raises(error, match=match):
        resolve_layers(**arguments)


def test_too_small_volumes_are_explained():
    (valid,) = resolve_layers(2, 4, 3, 1, padding="valid", spatial_dims=3)
    with pytest.raises(ValueError, match=r"Frames of 4x2x5 are too small .* \(3x3x3 kernel.* would be 2x0x3"):
        valid.state_size((4, 2, 5))
