"""The shared cases: small configurations that, together, cover every option of the model."""

from __future__ import annotations

from typing import Any


def _case(
    input_dim: int = 2,
    hidden_dim: tuple[int, ...] = (4,),
    kernel_size: tuple[tuple[int, int], ...] = ((3, 3),),
    *,
    batch_first: bool = False,
    bias: bool = True,
    return_all_layers: bool = False,
    peephole: str | None = "conv",
    batch: int = 2,
    steps: int = 3,
    height: int = 6,
    width: int = 5,
    initial_state: bool = False,
    input_kernel_size: tuple[tuple[int, int], ...] | None = None,
    frame: tuple[int, ...] | None = None,
    **options: Any,
) -> dict[str, Any]:
    config = {
        "input_dim": input_dim,
        "hidden_dim": list(hidden_dim),
        "kernel_size": [list(k) for k in kernel_size],
        "num_layers": len(hidden_dim),
        "batch_first": batch_first,
        "bias": bias,
        "return_all_layers": return_all_layers,
        "peephole": peephole,
        "batch": batch,
        "steps": steps,
        "height": height,
        "width": width,
        "initial_state": initial_state,
    }
    if input_kernel_size is not None:
        config["input_kernel_size"] = [list(k) for k in input_kernel_size]
    if frame is not None:  # signals (L,) or volumes (D, H, W): one size per axis, in place of height and width
        del config["height"], config["width"]
        config["frame"] = list(frame)
    # Options beyond KL4805/ConvLSTM-Pytorch's, present only when set: reverse (bool), keep_order (bool),
    # seq_lengths (one int per sequence), dropout_masks (bool: dropout on, masks given),
    # bidirectional ("concat" or "sum"), and the input-to-state convolutions' padding ("same",
    # "valid"), stride and dilation (an int, a tuple, or a list with one per layer).
    return config | options


CASES: dict[str, dict[str, Any]] = {
    # One layer, each peephole variant, bias on and off.
    "conv_peephole": _case(),
    "hadamard_peephole": _case(peephole="hadamard", initial_state=True),
    "no_peephole": _case(peephole=None, batch_first=True),
    "conv_peephole_no_bias": _case(bias=False, initial_state=True, batch_first=True),
    "hadamard_peephole_no_bias": _case(peephole="hadamard", bias=False),
    "no_peephole_no_bias": _case(peephole=None, bias=False, initial_state=True),
    # Stacks with a hidden dim and a kernel per layer: 1x1, 5x5 and rectangular.
    "two_layers_all": _case(3, (5, 3), ((3, 3), (1, 1)), batch_first=True, return_all_layers=True, initial_state=True),
    "three_layers_all": _case(
        2, (4, 6, 3), ((5, 5), (3, 5), (1, 1)), return_all_layers=True, peephole="hadamard", height=7, width=6
    ),
    "three_layers_last": _case(
        1, (3, 5, 2), ((1, 1), (5, 5), (3, 5)), peephole=None, initial_state=True, batch_first=True, steps=4
    ),
    # Edges: one step, batch of one, a tall frame with a wide kernel, a single input channel.
    "one_step": _case(steps=1, batch=1, initial_state=True),
    "batch_one_tall_frame": _case(
        1, (3,), ((3, 5),), batch=1, height=9, width=4, peephole="hadamard", batch_first=True, steps=4
    ),
    "rectangular_stack": _case(
        4, (2, 4), ((5, 3), (3, 5)), peephole="conv", height=5, width=8, return_all_layers=True, bias=False
    ),
    # Shi et al. 2015's networks: input-to-state kernels other than the state-to-state ones
    # ("ConvLSTM(5x5)-1x1-4-3x3-3"), and a stack without input (the forecaster's, on its states).
    "input_kernels": _case(
        2, (4, 3), ((1, 1), (3, 3)), input_kernel_size=((5, 5), (5, 5)), peephole="hadamard", batch_first=True
    ),
    "input_kernels_conv_peephole": _case(1, (3,), ((3, 3),), input_kernel_size=((1, 3),), initial_state=True),
    "no_input": _case(0, (4, 3), ((3, 3), (1, 1)), peephole="hadamard", initial_state=True, return_all_layers=True),
    "no_input_other_kernels": _case(
        0, (3, 2), ((3, 3), (3, 3)), input_kernel_size=((5, 5), (5, 5)), peephole=None, initial_state=True
    ),
    # Direction, variable lengths, dropout with explicit masks, both directions.
    "reverse": _case(2, (4, 3), ((3, 3), (1, 1)), reverse=True, return_all_layers=True, initial_state=True),
    "reverse_computed_order": _case(peephole=None, reverse=True, keep_order=False, batch_first=True),
    "seq_lengths": _case(2, (4,), batch=3, steps=4, seq_lengths=[4, 1, 0], initial_state=True, batch_first=True),
    "reverse_seq_lengths": _case(
        1, (3, 2), ((3, 3), (3, 3)), batch=3, steps=4, reverse=True, seq_lengths=[2, 4, 3], peephole="hadamard"
    ),
    "dropout_masks": _case(2, (4, 3), ((3, 3), (1, 1)), dropout_masks=True, return_all_layers=True),
    "bidirectional_concat": _case(batch_first=True, bidirectional="concat", seq_lengths=[3, 2]),
    "bidirectional_sum": _case(2, (3, 4), ((3, 3), (1, 1)), peephole="hadamard", bidirectional="sum"),
    # The input-to-state convolution's padding, stride and dilation (the state takes its output's size).
    "valid_padding": _case(2, (4, 3), ((3, 3), (3, 3)), padding="valid", height=7, width=6, initial_state=True),
    "stride": _case(
        2, (4, 3), ((3, 3), (1, 1)), stride=[2, [1, 2]], height=8, width=7, peephole="hadamard", return_all_layers=True
    ),
    "dilation": _case(1, (3,), ((3, 3),), dilation=[[2, 1]], input_kernel_size=((3, 5),), height=7, width=7),
    "valid_stride_dilation_dropout": _case(
        2,
        (3, 2),
        ((3, 3), (3, 3)),
        padding=["valid", "same"],
        stride=2,
        dilation=[1, 2],
        height=9,
        width=8,
        dropout_masks=True,
        batch_first=True,
        peephole=None,
    ),
    # Sequences of signals (1-D frames) and of volumes (3-D), the same cell in another rank.
    "signals": _case(
        2, (4, 3), ((3,), (5,)), frame=(11,), batch_first=True, return_all_layers=True, initial_state=True
    ),
    "signals_options": _case(
        1,
        (3, 2),
        ((3,), (1,)),
        input_kernel_size=((5,), (3,)),
        frame=(13,),
        padding=["valid", "same"],
        stride=[2, 1],
        dilation=[2, 1],
        peephole="hadamard",
        bias=False,
        batch=3,
        steps=4,
        reverse=True,
        seq_lengths=[4, 2, 0],
        dropout_masks=True,
    ),
    "volumes": _case(2, (4, 3), ((3, 3, 3), (1, 3, 3)), frame=(3, 4, 5), return_all_layers=True, initial_state=True),
    "volumes_options": _case(
        1,
        (3,),
        ((3, 1, 3),),
        input_kernel_size=((3, 3, 5),),
        frame=(4, 5, 7),
        stride=[[1, 2, 2]],
        peephole="hadamard",
        batch_first=True,
        seq_lengths=[3, 1],
        dropout_masks=True,
    ),
    "volumes_bidirectional": _case(
        2, (3,), ((3, 3, 3),), frame=(3, 4, 4), peephole=None, bidirectional="concat", batch_first=True
    ),
    # A constant on the forget gate (Flax's nn.ConvLSTMCell adds 1), and layer norms on the two
    # convolutions' outputs (OpenSTL's ConvLSTM: no biases, no peepholes), with every rank's options.
    "forget_bias": _case(2, (4, 3), ((3, 3), (1, 1)), peephole="hadamard", forget_bias=1.0, initial_state=True),
    "layer_norm": _case(
        2, (4, 3), ((3, 3), (3, 3)), peephole=None, bias=False, layer_norm=True, frame_size=[6, 5], batch_first=True
    ),
    "layer_norm_options": _case(
        2,
        (3, 4),
        ((3, 3), (1, 1)),
        input_kernel_size=((5, 5), (3, 3)),
        layer_norm=True,
        frame_size=[7, 6],
        height=7,
        width=6,
        stride=[1, 2],
        forget_bias=0.5,
        initial_state=True,
        return_all_layers=True,
        seq_lengths=[3, 1],
    ),
    "layer_norm_no_input": _case(
        0, (3,), ((3, 3),), peephole="conv", layer_norm=True, frame_size=[6, 5], initial_state=True
    ),
    "layer_norm_signals": _case(
        1, (3,), ((3,),), frame=(11,), layer_norm=True, frame_size=[11], peephole="hadamard", reverse=True
    ),
}
"""Case name -> configuration: the model's hyperparameters, the input's size, and whether an
initial state is passed."""
