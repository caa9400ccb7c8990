"""Recording the dropout masks a model draws, to replay them as explicit `dropout_masks`."""

import contextlib
from unittest import mock

import jax
import jax.numpy as jnp


@contextlib.contextmanager
def recorded_masks():
    """Yields a list that, once the block ends, holds every mask `jax.random.bernoulli` drew in it,
    as the explicit mask it stands for: keep / (1 - rate), float32, in the order drawn."""
    draws, masks = [], []
    bernoulli = jax.random.bernoulli

    def recording(key, p, shape):
        draws.append((key, p, shape))
        return bernoulli(key, p, shape)

    with mock.patch.object(jax.random, "bernoulli", recording):
        yield masks
    masks.extend(bernoulli(key, p, shape).astype(jnp.float32) / p for key, p, shape in draws)
