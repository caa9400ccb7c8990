"""The model, the optimiser, the state they train, and the compiled steps: `train_step`, `eval_step`, `predict`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import compiler_options
from ..models import EncoderForecaster
from ..nowcasting import balanced_loss
from . import metrics
from .config import TrainConfig


def build_model(config: TrainConfig, *, in_channels: int = 1) -> EncoderForecaster:
    """The `EncoderForecaster` of `config.spec`, patch size, peephole and output frames."""
    peephole = None if config.peephole == "none" else config.peephole
    return EncoderForecaster.from_spec(
        config.spec,
        in_channels=in_channels,
        patch_size=config.patch_size,
        output_frames=config.output_frames,
        peephole=peephole,
    )


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """RMSProp (learning rate 1e-3, decay 0.9, as Shi et al. 2015, Sec. 4.1) or Adam, with optional
    clipping of the gradient's global norm first.

    Equal settings return the same object, so `train_step`, compiled for one run, serves the next.

    Example:
      >>> make_optimizer(TrainConfig()) is make_optimizer(TrainConfig(steps=10))
      True
    """
    return _optimizer(config.optimizer, config.learning_rate, config.decay, config.clip_norm)


@functools.cache
def _optimizer(name: str, learning_rate: float, decay: float, clip_norm: float | None) -> optax.GradientTransformation:
    if name == "rmsprop":
        optimizer = optax.rmsprop(learning_rate, decay=decay)
    elif name == "adam":
        optimizer = optax.adam(learning_rate)
    else:
        raise ValueError(f"optimizer must be 'rmsprop' or 'adam', got {name!r}.")
    if clip_norm is not None:
        optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
    return optimizer


class _jit:  # a decorator, like jax.jit
    """`jax.jit(fn, compiler_options=convlstm_jax.compiler_options(device))` for the devices the
    steps run on (`placement._placers` places everything on `jax.devices()`), made at the first call,
    so that importing this module starts no backend (`jax.distributed.initialize` must come first)."""

    def __init__(self, fn: Callable) -> None:
        self._fn = fn
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def jitted(self) -> Any:
        return jax.jit(self._fn, compiler_options=compiler_options(jax.devices()[0]))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.jitted(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # lower, trace, eval_shape, ... of the jitted function
        return getattr(self.jitted, name)


# The training losses by name (`TrainConfig.loss`).
LOSSES = {"cross_entropy": metrics.cross_entropy, "balanced": balanced_loss}


@flax.struct.dataclass
class TrainState:
    """The parameters, the optimiser's state and the step count; model and optimiser ride along.

    `model` and `optimizer` are static (not leaves): a checkpoint holds `step`, `params` and
    `opt_state`, and `jax.jit` compiles `train_step` once per model and optimiser.

    Attributes:
      step: updates made so far, an int32 scalar.
      params: the model's parameters (`variables["params"]`).
      opt_state: the optimiser's state.
      model: the `EncoderForecaster`.
      optimizer: the optax transformation.
      loss: the training loss, a key of `LOSSES` (static).
    """

    step: jax.Array
    params: Any
    opt_state: optax.OptState
    model: EncoderForecaster = flax.struct.field(pytree_node=False)
    optimizer: optax.GradientTransformation = flax.struct.field(pytree_node=False)
    loss: str = flax.struct.field(pytree_node=False, default="cross_entropy")


@functools.partial(jax.jit, static_argnums=0)
def _init_params(model: EncoderForecaster, key: jax.Array, frames: jax.Array) -> Any:
    return model.init(key, frames)["params"]


def create_train_state(
    model: EncoderForecaster,
    optimizer: optax.GradientTransformation,
    inputs: np.ndarray,
    *,
    seed: int = 0,
    loss: str = "cross_entropy",
) -> TrainState:
    """A fresh state: parameters initialised from `jax.random.key(seed)`, step 0.

    Args:
      model: the model to train.
      optimizer: its optimiser.
      inputs: example input frames (B, T, H, W, C); only their shape and dtype matter. uint8
        frames are taken as float32.
      seed: the seed of the initial parameters.
      loss: the loss `train_step` minimises, a key of `LOSSES`.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}.")
    dtype = jnp.float32 if np.dtype(inputs.dtype) == np.uint8 else inputs.dtype
    frames = jnp.zeros((1, *inputs.shape[1:]), dtype)
    params = _init_params(model, jax.random.key(seed), frames)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        model=model,
        optimizer=optimizer,
        loss=loss,
    )


def _filled(inputs: jax.Array) -> jax.Array:
    """`inputs` with their missing pixels (NaN) as 0, HKO-7's pixel of no rain (0 mm/h)."""
    return jnp.where(jnp.isnan(inputs), jnp.zeros((), inputs.dtype), inputs)


@_jit
def train_step(state: TrainState, inputs: jax.Array, targets: jax.Array) -> tuple[TrainState, jax.Array]:
    """One update on a batch, by the model's loss (`TrainState.loss`).

    The loss of Shi et al. 2015 is `metrics.cross_entropy`: `optax.sigmoid_binary_cross_entropy` of
    the forecast's logits against the target frames, summed over each sequence's pixels, averaged
    over the batch; `convlstm_jax.nowcasting.balanced_loss` is HKO-7's, for radar.

    Radar frames may miss pixels, NaN in float frames: the model sees a missing input pixel as 0
    (no rain), and the balanced loss leaves missing target pixels out of its mean (the
    cross-entropy takes complete targets).

    Args:
      state: the state before the update.
      inputs: input frames in [0, 1], (B, input_frames, H, W, C); NaN where missing.
      targets: the frames that follow, in [0, 1], (B, output_frames, H, W, C); NaN where missing.

    Returns:
      `(state, loss)`: the state after the update, and the loss before it.
    """

    inputs = _filled(inputs)

    def loss_fn(params: Any) -> jax.Array:
        return LOSSES[state.loss](state.model.apply({"params": params}, inputs), targets)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    # Adam's bias correction raises a Python float to the int32 step count, which strict dtype
    # promotion refuses; every array here is already float32, so standard promotion changes nothing.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = state.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), loss


@_jit
def eval_step(state: TrainState, inputs: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    """`metrics.evaluate` of the forecast of `inputs` (missing pixels, NaN, as 0) against `targets`:
    cross-entropy, MSE, MAE, SSIM."""
    return metrics.evaluate(state.model.apply({"params": state.params}, _filled(inputs)), targets)


@_jit
def predict(state: TrainState, inputs: jax.Array) -> jax.Array:
    """The forecast frames, σ(logits), in [0, 1], of `inputs` whose missing pixels (NaN) are taken as 0."""
    return jax.nn.sigmoid(state.model.apply({"params": state.params}, _filled(inputs)))
