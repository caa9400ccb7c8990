"""A ConvLSTM run forwards and a copy of it run backwards, their outputs merged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ._convlstm import ConvLSTM

MERGES = ("concat", "sum")


# The wrapper's logic, shared by the Linen `Bidirectional` below and the NNX one (`convlstm_jax.nnx`).


def check_merge(merge: Any) -> str:
    """Returns `merge` if it is one of `MERGES`, else raises ValueError."""
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {MERGES}, got {merge!r}.")
    return merge


def split_initial_state(hidden_state: Any) -> tuple[Any, Any]:
    """`(forward_initial, backward_initial)` from a wrapper's `hidden_state` (None: both None)."""
    if hidden_state is None:
        return None, None
    if not isinstance(hidden_state, (tuple, list)) or len(hidden_state) != 2:
        raise ValueError("hidden_state must be None or a pair (forward_initial, backward_initial).")
    return hidden_state[0], hidden_state[1]


def merge_outputs(outputs_f: list, outputs_b: list, merge: str, channels_last: bool) -> list:
    """Each layer's outputs of both directions, summed or concatenated along the channels."""
    if merge == "sum":
        return [f + b for f, b in zip(outputs_f, outputs_b)]
    axis = -1 if channels_last else 2
    return [jnp.concatenate([f, b], axis=axis) for f, b in zip(outputs_f, outputs_b)]


class Bidirectional(nn.Module):
    """Runs `layer` forwards and a copy of it (with its own weights) backwards; merges the outputs.

    The backward copy is `layer` with `reverse=True, keep_order=True`: its outputs are in the
    input's time order, so step t of the merged output sees the whole sequence. With
    `seq_lengths`, each sequence is reversed within its own length.

    Attributes:
      layer: the `ConvLSTM` to run both ways (its `reverse` and `keep_order` are overridden).
      merge: `"concat"` (default: hidden channels side by side, forward first) or `"sum"`.

    Returns from `__call__`:
      `(outputs, (forward_states, backward_states))`: `outputs[l]` merges the two directions'
      `layer_outputs[l]`; the states are each direction's `last_states`.

    Params are `forward_layer/...` and `backward_layer/...`, each a `ConvLSTM`'s; the torch twin
    `convlstm_torch.Bidirectional` has the state_dict keys `forward_layer.*` and `backward_layer.*`
    (`convlstm_jax.torch_to_flax(state_dict, prefix="forward_layer.")` converts one direction).

    Example:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> from convlstm_jax import Bidirectional, ConvLSTM
      >>> model = Bidirectional(ConvLSTM(None, 8, 3, 1, batch_first=True))
      >>> x = jnp.zeros((2, 5, 16, 16, 3))
      >>> variables = model.init(jax.random.key(0), x)
      >>> outputs, (forward, backward) = model.apply(variables, x)
      >>> outputs[0].shape
      (2, 5, 16, 16, 16)
    """

    layer: ConvLSTM
    merge: str = "concat"

    def __post_init__(self) -> None:
        if not isinstance(self.layer, ConvLSTM):
            raise TypeError(f"layer must be a convlstm_jax.ConvLSTM, got {type(self.layer).__name__}.")
        check_merge(self.merge)
        super().__post_init__()

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        hidden_state: tuple[Sequence[Any] | None, Sequence[Any] | None] | None = None,
        *,
        seq_lengths: jax.Array | None = None,
        deterministic: bool | None = None,
    ):
        """Runs both directions.

        Args:
          x: the input, in `layer`'s layout.
          hidden_state: None, or `(forward_initial, backward_initial)`, each None or a list of
            `(h, c)` per layer as `ConvLSTM` takes it.
          seq_lengths: None, or an int array (B,) of lengths; see `ConvLSTM`.
          deterministic: see `ConvLSTM`.
        """
        initial_f, initial_b = split_initial_state(hidden_state)
        options = {"seq_lengths": seq_lengths, "deterministic": deterministic}
        forward = self.layer.clone(parent=self, name="forward_layer", reverse=False)
        backward = self.layer.clone(parent=self, name="backward_layer", reverse=True, keep_order=True)
        outputs_f, states_f = forward(x, initial_f, **options)
        outputs_b, states_b = backward(x, initial_b, **options)
        outputs = merge_outputs(outputs_f, outputs_b, self.merge, self.layer.channels_last)
        return outputs, (states_f, states_b)
