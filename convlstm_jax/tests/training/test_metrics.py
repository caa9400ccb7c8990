import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convlstm_jax.training import cross_entropy, evaluate, mae, mse, ssim


def _frames(seed, shape=(2, 3, 12, 12, 1)):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_mse_and_mae_against_numpy():
    predictions, targets = _frames(0), _frames(1)
    error = predictions.astype(np.float64) - targets
    np.testing.assert_allclose(mse(predictions, targets), np.mean(error**2), rtol=1e-6)
    np.testing.assert_allclose(mae(predictions, targets), np.mean(np.abs(error)), rtol=1e-6)


def test_mse_and_mae_exact():
    # Every pixel off by 0.5 in one sequence and exact in the other: MSE 0.125, MAE 0.25 exactly.
    targets = np.zeros((2, 2, 4, 4, 1), np.float32)
    predictions = targets.copy()
    predictions[0] = 0.5
    assert mse(predictions, targets) == 0.125
    assert mae(predictions, targets) == 0.25


def test_ssim_of_identical_and_differing_frames():
    frames = _frames(0)
    chex.assert_trees_all_close(ssim(frames, frames), jnp.float32(1), atol=1e-6)
    assert ssim(frames, _frames(1)) < 0.5
    assert ssim(frames, np.clip(frames + np.float32(0.05), 0, 1)) < 1


def test_ssim_is_the_mean_over_frames():
    # Each frame's SSIM by itself, then their mean, equals the SSIM of the batch.
    predictions, targets = _frames(0), _frames(1)
    predictions[0, 0] = targets[0, 0]
    frames = [(b, t) for b in range(2) for t in range(3)]
    per_frame = [ssim(predictions[b : b + 1, t : t + 1], targets[b : b + 1, t : t + 1]) for b, t in frames]
    assert per_frame[0] == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(ssim(predictions, targets), np.mean(per_frame), rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 2, 6, 9, 1), (1, 2, 1, 1, 1), (1, 1, 4, 30, 2)])
def test_ssim_of_frames_smaller_than_the_window(shape):
    frames = _frames(0, shape)
    value = ssim(frames, _frames(1, shape))
    assert np.isfinite(value) and value < 1
    chex.assert_trees_all_close(ssim(frames, frames), jnp.float32(1), atol=1e-6)


def test_ssim_rejects_a_bad_window():
    with pytest.raises(ValueError, match="filter_size must be a positive int, got 0"):
        ssim(_frames(0), _frames(1), filter_size=0)
    with pytest.raises(TypeError, match="filter_size must be an int, got float"):
        ssim(_frames(0), _frames(1), filter_size=7.0)


def test_cross_entropy_against_numpy():
    logits = np.random.default_rng(2).normal(0, 3, (3, 2, 5, 5, 1)).astype(np.float32)
    targets = _frames(3, logits.shape)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    per_pixel = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    expected = per_pixel.sum(axis=(1, 2, 3, 4)).mean()
    np.testing.assert_allclose(cross_entropy(logits, targets), expected, rtol=1e-5)


def test_cross_entropy_is_summed_over_pixels_and_averaged_over_sequences():
    # Logit 0 costs log 2 a pixel, whatever the target: 2 x 8 x 8 pixels a sequence.
    targets = np.zeros((4, 2, 8, 8, 1), np.float32)
    targets[1] = 1
    np.testing.assert_allclose(cross_entropy(np.zeros_like(targets), targets), 128 * np.log(2), rtol=1e-6)


def test_evaluate_returns_the_four_metrics_under_jit():
    logits = np.random.default_rng(4).normal(0, 2, (2, 3, 12, 12, 1)).astype(np.float32)
    targets = _frames(5)
    scores = jax.jit(evaluate)(logits, targets)
    assert sorted(scores) == ["cross_entropy", "mae", "mse", "ssim"]
    predictions = jax.nn.sigmoid(logits)
    expected = {
        "cross_entropy": cross_entropy(logits, targets),
        "mse": mse(predictions, targets),
        "mae": mae(predictions, targets),
        "ssim": ssim(predictions, targets),
    }
    chex.assert_trees_all_close(scores, expected, rtol=1e-5)
    assert all(value.shape == () and value.dtype == jnp.float32 for value in scores.values())


def test_low_precision_inputs_are_measured_in_float32():
    logits, targets = jnp.zeros((1, 2, 8, 8, 1), jnp.bfloat16), jnp.ones((1, 2, 8, 8, 1), jnp.bfloat16)
    scores = jax.jit(evaluate)(logits, targets)
    assert all(value.dtype == jnp.float32 for value in scores.values())
    np.testing.assert_allclose(scores["cross_entropy"], 128 * np.log(2), rtol=1e-6)


@pytest.mark.parametrize("metric", [mse, mae, ssim, cross_entropy, evaluate])
@pytest.mark.parametrize(
    ("first", "second", "error", "match"),
    [
        (np.zeros((1, 2, 4, 4, 1), np.float32), np.zeros((1, 2, 4, 5, 1), np.float32), ValueError, "same shape"),
        (np.zeros((2, 4, 4, 1), np.float32), np.zeros((2, 4, 4, 1), np.float32), ValueError, r"5-D \(B, T, H, W, C\)"),
        (np.zeros((1, 2, 4, 4, 1), np.float32), np.zeros((1, 2, 4, 4, 1), np.float64), TypeError, "same dtype"),
        (np.zeros((1, 2, 4, 4, 1), np.float32), np.zeros((1, 2, 4, 4, 1), np.uint8), TypeError, "floating-point"),
        ([[0.0]], np.zeros((1, 1), np.float32), TypeError, "must be an array, got list"),
    ],
)
def test_mismatched_inputs_are_rejected(metric, first, second, error, match):
    with pytest.raises(error, match=match):
        metric(first, second)


def test_the_training_step_takes_missing_pixels():
    from convlstm_jax.nowcasting import balanced_loss
    from convlstm_jax.training import TrainConfig, build_model, create_train_state, make_optimizer, predict, train_step

    config = TrainConfig(spec="ConvLSTM(1x1)-1x1-4", size=8, input_frames=2, output_frames=2, loss="balanced")
    rng = np.random.default_rng(0)
    inputs, targets = rng.random((2, 2, 2, 8, 8, 1), dtype=np.float32) * np.float32(0.8)
    inputs[rng.random(inputs.shape) < 0.2] = np.nan
    targets[rng.random(targets.shape) < 0.2] = np.nan
    filled = np.nan_to_num(inputs, nan=0.0)  # a missing input pixel is no rain, pixel 0
    state = create_train_state(build_model(config), make_optimizer(config), inputs, loss="balanced")
    expected = balanced_loss(state.model.apply({"params": state.params}, jnp.asarray(filled)), jnp.asarray(targets))
    after, loss = train_step(state, jnp.asarray(inputs), jnp.asarray(targets))
    assert np.isfinite(float(loss)) and all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(after.params))
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    # The same update as from the filled inputs, and the forecast of the filled inputs.
    chex.assert_trees_all_close(after.params, train_step(state, jnp.asarray(filled), jnp.asarray(targets))[0].params)
    chex.assert_trees_all_close(predict(state, jnp.asarray(inputs)), predict(state, jnp.asarray(filled)))


def _with_missing(seed, shape=(2, 3, 16, 16, 1)):
    """Random targets with some pixels missing (NaN): a corner block of every frame, and one pixel of one."""
    targets = _frames(seed, shape)
    targets[:, :, :3, :3] = np.nan
    targets[1, 2, 8, 15] = np.nan
    return targets


def test_mse_mae_and_cross_entropy_count_observed_pixels_only():
    predictions, targets = _frames(0, (2, 3, 16, 16, 1)), _with_missing(1)
    observed = ~np.isnan(targets)
    error = (predictions.astype(np.float64) - targets)[observed]
    np.testing.assert_allclose(mse(predictions, targets), np.mean(error**2), rtol=1e-6)
    np.testing.assert_allclose(mae(predictions, targets), np.mean(np.abs(error)), rtol=1e-6)
    logits = np.random.default_rng(2).normal(0, 3, targets.shape).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    per_pixel = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    expected = np.where(observed, per_pixel, 0).sum(axis=(1, 2, 3, 4)).mean()
    np.testing.assert_allclose(cross_entropy(logits, targets), expected, rtol=1e-5)
    scores = jax.jit(evaluate)(logits, targets)
    assert all(np.isfinite(float(value)) for value in scores.values()), scores


def test_ssim_leaves_out_the_windows_that_hold_a_missing_pixel():
    # 3 x 3 windows on 6 x 6 frames: with pixel (0, 0) missing, window (0, 0) is left out, and the
    # mean is over the other windows of dm_pix's map, computed here frame by frame.
    import dm_pix

    predictions, targets = _frames(0, (1, 2, 6, 6, 1)), _frames(1, (1, 2, 6, 6, 1))
    targets[0, 0, 0, 0] = np.nan
    maps = []
    for t in range(2):
        with jax.numpy_dtype_promotion("standard"):
            full = np.asarray(
                dm_pix.ssim(predictions[0, t], np.nan_to_num(targets[0, t]), filter_size=3, return_map=True)
            )
        maps.append(full.ravel()[1:] if t == 0 else full.ravel())
    np.testing.assert_allclose(ssim(predictions, targets, filter_size=3), np.mean(np.concatenate(maps)), rtol=1e-5)
    chex.assert_trees_all_close(ssim(np.nan_to_num(targets), targets, filter_size=3), jnp.float32(1), atol=1e-6)
