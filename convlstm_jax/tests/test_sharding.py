"""Sharded training on 8 simulated CPU devices gives the one-device result.

XLA reads `--xla_force_host_platform_device_count` once, when JAX starts, and this process's JAX
has started with one device; the 8-device runs are subprocesses with that flag, the strictness of
`conftest.py`, and warnings as errors. Each trains a tiny `EncoderForecaster` for a few RMSProp
steps on one device, then data-parallel and spatially sharded from the same start, and hands back
the losses, parameters, predictions and what it saw of the shardings and the compiled collectives.
XLA's backend optimisations are off in these processes (`--xla_backend_optimization_level=0`):
they halve the compile time that dominates these runs, and both sides of each comparison share them.
"""

import os
import pickle
import subprocess
import sys
import textwrap

import chex
import jax
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec

from convlstm_jax.sharding import batch_spec, make_mesh, replicate, shard_batch

DEVICES = 8

# One layer whose 5x5 input-to-state and 3x3 state-to-state kernels reach 2 and 1 rows of patches
# beyond a device's own when 32 rows (8 rows of 4x4 patches) are split across 8 devices: both need
# rows of the neighbours (halo exchange), the 5x5 from two devices on each side.
TRAIN = textwrap.dedent(
    """
    import collections, pickle, re, sys

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_threefry_partitionable", False)

    from convlstm_jax.models import EncoderForecaster
    from convlstm_jax.sharding import batch_spec, make_mesh, replicate, shard_batch

    conv_gradient, path = sys.argv[1], sys.argv[2]
    assert jax.device_count() == 8, jax.devices()
    model = EncoderForecaster.from_spec(
        "ConvLSTM(5x5)-3x3-4", in_channels=1, patch_size=4, output_frames=2, conv_gradient=conv_gradient
    )
    rng = np.random.default_rng(0)
    frames = (rng.random((8, 4, 32, 32, 1)) < 0.3).astype(np.float32)
    inputs, targets = frames[:, :2], frames[:, 2:]
    # Any parameters will do: drawn with NumPy (scaled by fan-in) they cost no compilation.
    shapes = jax.eval_shape(model.init, jax.random.key(0), inputs[:1])["params"]
    params = jax.tree.map(
        lambda s: (rng.standard_normal(s.shape) / np.sqrt(np.prod(s.shape[:-1]) or 1)).astype(np.float32), shapes
    )
    optimizer = optax.rmsprop(1e-3, decay=0.9)


    def loss_fn(params, inputs, targets):
        logits = model.apply({"params": params}, inputs)
        per_sequence = optax.sigmoid_binary_cross_entropy(logits, targets).sum(axis=(1, 2, 3, 4))
        return per_sequence.mean(), logits


    @jax.jit
    def step(params, opt_state, inputs, targets):
        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, inputs, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, logits


    def train(params, opt_state, inputs, targets, steps=3):
        compiled = step.lower(params, opt_state, inputs, targets).compile()
        losses = []
        for _ in range(steps):
            params, opt_state, loss, logits = compiled(params, opt_state, inputs, targets)
            losses.append(loss)
        collectives = re.findall(r" (all-reduce|all-gather|collective-permute|all-to-all|reduce-scatter)(?:-start)?\\(",
                                 compiled.as_text())
        result = {"losses": np.array(losses), "params": jax.device_get(params), "logits": np.asarray(logits)}
        return result, dict(collectives=collections.Counter(collectives), params=params, loss=losses[-1], logits=logits)


    with jax.default_matmul_precision("highest"):
        results = {"single": train(params, optimizer.init(params), jnp.asarray(inputs), jnp.asarray(targets))[0]}
        for mode in ("data", "spatial"):
            mesh = make_mesh(mode)
            expected = jax.sharding.NamedSharding(mesh, batch_spec(mesh))
            sharded_inputs, sharded_targets = shard_batch((inputs, targets), mesh)
            result, out = train(replicate(params, mesh), replicate(optimizer.init(params), mesh),
                                sharded_inputs, sharded_targets)
            result["facts"] = {
                "input_spec": sharded_inputs.sharding.spec,
                "input_shards": sorted({s.data.shape for s in sharded_inputs.addressable_shards}),
                "input_devices": len({s.device for s in sharded_inputs.addressable_shards}),
                "params_replicated": all(p.sharding.is_fully_replicated for p in jax.tree.leaves(out["params"])),
                "loss_replicated": out["loss"].sharding.is_fully_replicated,
                "logits_split_as_batch": out["logits"].sharding.is_equivalent_to(expected, 5),
                "collectives": out["collectives"],
            }
            results[mode] = result
    with open(path, "wb") as file:
        pickle.dump(results, file)
    """
)


def _run_on_devices(code: str, *args: str) -> subprocess.CompletedProcess:
    """Runs Python `code` with `args` in a fresh process that has 8 CPU devices."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    flags = f"--xla_force_host_platform_device_count={DEVICES} --xla_backend_optimization_level=0"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flags}".strip()
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"The {DEVICES}-device run failed:\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module", params=["tapwise", "xla"])
def trained(request, tmp_path_factory):
    """What 3 train steps gave on 1 device and sharded on 8, with the conv gradient of the param."""
    path = tmp_path_factory.mktemp("sharding") / f"{request.param}.pickle"
    _run_on_devices(TRAIN, request.param, str(path))
    with open(path, "rb") as file:
        return pickle.load(file)


@pytest.mark.parametrize(
    ("mode", "spec", "shard_shape", "communication"),
    [
        # The batch of 8 is split: one sequence per device; the gradients are summed across devices.
        pytest.param("data", PartitionSpec("data"), (1, 2, 32, 32, 1), "all-reduce", id="data"),
        # The 32 rows are split: 4 rows (one row of patches) per device; halos come from the neighbours.
        pytest.param(
            "spatial", PartitionSpec(None, None, "height"), (8, 2, 4, 32, 1), "collective-permute", id="spatial"
        ),
    ],
)
def test_sharded_training_matches_one_device(trained, mode, spec, shard_shape, communication):
    single, sharded = trained["single"], trained[mode]
    facts = sharded["facts"]
    assert facts["input_spec"] == spec
    assert facts["input_shards"] == [shard_shape]
    assert facts["input_devices"] == DEVICES
    assert facts["params_replicated"] and facts["loss_replicated"]
    assert facts["logits_split_as_batch"]  # the predictions keep the inputs' sharding
    assert facts["collectives"][communication] > 0, facts["collectives"]
    assert facts["collectives"]["all-gather"] == 0, facts["collectives"]  # nothing is gathered whole
    # float32 at "highest" precision; only the order of the sums differs (per device, then across).
    # Measured: losses (~1600, summed over 2048 pixels) within 7.4e-4 (5e-7 relative), parameters
    # within 6e-8, logits within 1.2e-7, for both gradients.
    chex.assert_trees_all_close(sharded["losses"], single["losses"], rtol=1e-5)
    chex.assert_trees_all_close(sharded["params"], single["params"], rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(sharded["logits"], single["logits"], rtol=1e-5, atol=1e-5)


def test_sizes_that_do_not_divide_by_the_devices():
    code = textwrap.dedent(
        """
        import numpy as np
        from convlstm_jax.sharding import make_mesh, shard_batch

        for mode, shape in [("data", (6, 2, 32, 32, 1)), ("spatial", (8, 2, 20, 32, 1))]:
            try:
                shard_batch({"inputs": np.zeros(shape, np.float32)}, make_mesh(mode))
            except ValueError as error:
                print(error)
        """
    )
    lines = _run_on_devices(code).stdout.splitlines()
    assert lines == [
        "The batch size B = 6 of the array at ['inputs'] (shape (6, 2, 32, 32, 1)) does not divide by the 8 "
        "devices of the data mesh.",
        "The height H = 20 of the array at ['inputs'] (shape (8, 2, 20, 32, 1)) does not divide by the 8 "
        "devices of the spatial mesh.",
    ]


def test_a_mesh_of_more_devices_than_there_are():
    count = jax.device_count()
    with pytest.raises(ValueError, match=rf"A data mesh of {count + 1} devices was asked for, but there are {count} "):
        make_mesh("data", count + 1)


@pytest.mark.parametrize(
    ("mode", "num_devices", "match"),
    [
        ("model", None, r"mode must be one of \('data', 'spatial'\), got 'model'"),
        ("data", 0, "num_devices must be a positive int or None, got 0"),
        ("spatial", 1.0, "num_devices must be a positive int or None, got 1.0"),
    ],
)
def test_bad_mesh_requests(mode, num_devices, match):
    with pytest.raises(ValueError, match=match):
        make_mesh(mode, num_devices)


def test_one_device_meshes():
    batch = {"inputs": np.ones((2, 3, 8, 4, 1), np.float32), "targets": np.zeros((2, 1, 8, 4, 1), np.float32)}
    for mode, spec in [("data", PartitionSpec("data")), ("spatial", PartitionSpec(None, None, "height"))]:
        mesh = make_mesh(mode, 1)
        assert batch_spec(mesh) == spec
        placed = shard_batch(batch, mesh)
        assert {leaf.sharding.spec for leaf in jax.tree.leaves(placed)} == {spec}
        chex.assert_trees_all_equal(placed, batch)
        params = replicate({"kernel": np.ones((3, 3, 2, 4), np.float32), "step": np.int32(0)}, mesh)
        assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(params))


def test_what_shard_batch_does_not_place():
    mesh = make_mesh("data", 1)
    with pytest.raises(ValueError, match=r"arrays of shape \(B, T, H, W, C\); the array at \[1\] has shape \(2, 3\)"):
        shard_batch((np.zeros((2, 1, 4, 4, 1)), np.zeros((2, 3))), mesh)
    with pytest.raises(ValueError, match=r"one axis named 'data' or 'height'; got axes \('x',\)"):
        batch_spec(Mesh(np.array(jax.devices()[:1]), ("x",)))
