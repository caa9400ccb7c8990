"""`balanced_loss` with missing pixels: NaN targets are left out, and the loss and its gradients stay finite."""

import jax
import jax.numpy as jnp
import numpy as np

from convlstm_jax.nowcasting import balanced_loss

# HKO-7's balancing (Shi et al. 2017) written out here rather than read from the module: weights 1, 2, 5,
# 10 and 30 from 0, 2, 5, 10 and 30 mm/h, as pixels (dBZ + 10) / 70 with Marshall-Palmer's Z = 200 R^1.6.
THRESHOLDS = np.array([2.0, 5.0, 10.0, 30.0])
EDGES = (10 * np.log10(200 * THRESHOLDS**1.6) + 10) / 70
WEIGHTS = np.array([1.0, 2.0, 5.0, 10.0, 30.0])


def _numpy_loss(logits, targets):
    """The weighted squared plus absolute error, averaged over the observed (not NaN) pixels alone and
    scaled to a sequence's pixels, in float64."""
    logits, targets = np.asarray(logits, np.float64), np.asarray(targets, np.float64)
    observed = ~np.isnan(targets)
    p, y = 1 / (1 + np.exp(-logits[observed])), targets[observed]
    weights = WEIGHTS[(y[:, np.newaxis] >= EDGES).sum(axis=1)]
    error = p - y
    return float(np.mean(weights * (error**2 + np.abs(error))) * np.prod(targets.shape[1:]))


def _batch(seed, shape=(3, 2, 6, 6, 1), missing=0.3):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape).astype(np.float32)
    targets = rng.random(shape, dtype=np.float32) * np.float32(0.9)  # up to 53 dBZ: every weight
    targets[rng.random(shape) < missing] = np.nan
    return logits, targets


def test_missing_targets_are_left_out_of_the_mean():
    logits, targets = _batch(0)
    assert np.isnan(targets).any() and not np.isnan(targets).all()
    np.testing.assert_allclose(balanced_loss(logits, targets), _numpy_loss(logits, targets), rtol=1e-5)
    # With nothing missing, the mean over observed pixels times a sequence's pixels is the sum over each
    # sequence's pixels averaged over the sequences.
    full = np.nan_to_num(targets, nan=0.25)
    np.testing.assert_allclose(balanced_loss(logits, full), _numpy_loss(logits, full), rtol=1e-5)
    # What is predicted at a missing pixel does not count.
    changed = np.where(np.isnan(targets), np.float32(5.0), logits)
    assert balanced_loss(changed, targets) == balanced_loss(logits, targets)


def test_the_gradients_are_finite_with_missing_targets():
    logits, targets = _batch(1)
    grads = jax.grad(balanced_loss)(jnp.asarray(logits), jnp.asarray(targets))
    assert np.isfinite(grads).all()
    assert (np.asarray(grads)[np.isnan(targets)] == 0).all()  # nothing pulls a missing pixel
    assert (np.asarray(grads)[~np.isnan(targets)] != 0).any()
    jitted = jax.jit(jax.value_and_grad(balanced_loss))(jnp.asarray(logits), jnp.asarray(targets))
    assert np.isfinite(jitted[0]) and np.isfinite(jitted[1]).all()


def test_a_batch_entirely_missing_gives_zero_loss():
    logits, targets = _batch(2, missing=1.0)
    assert np.isnan(targets).all()
    loss, grads = jax.value_and_grad(balanced_loss)(jnp.asarray(logits), jnp.asarray(targets))
    assert float(loss) == 0.0
    assert (np.asarray(grads) == 0).all()
