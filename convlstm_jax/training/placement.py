"""Where a run's batches and state go: one device, or a mesh split by sequences or by frame rows."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

from .config import ConfigError, TrainConfig

# Puts a pytree of arrays (a batch, a state) on the devices.
Placer = Callable[[Any], Any]


def _placers(config: TrainConfig) -> tuple[Placer, Placer]:
    """Functions placing a batch and a state on the devices for `config.sharding`, after checking
    that the batches split evenly."""
    if config.sharding == "none":
        # Committed to the default device, as Orbax restores arrays: a fresh state and a restored one
        # then share the compiled steps instead of compiling them twice.
        device = jax.devices()[0]
        return (lambda batch: batch), (lambda state: jax.device_put(state, device))
    from .. import sharding

    mesh = sharding.make_mesh(config.sharding)
    devices = mesh.devices.size
    if config.sharding == "data" and config.batch_size % devices:
        raise ConfigError(
            f"--sharding data splits each batch over the {devices} devices: batch_size ({config.batch_size}) "
            f"must be a multiple of {devices}."
        )
    rows = config.size // config.patch_size
    if config.sharding == "spatial" and rows % devices:
        raise ConfigError(
            f"--sharding spatial splits the {rows} rows of patches (size / patch_size) over the {devices} "
            f"devices: they must be a multiple of {devices}."
        )

    def place_batch(batch: Any) -> Any:
        # An evaluation batch that does not split evenly (the last one) is copied to every device.
        if config.sharding == "data" and len(jax.tree.leaves(batch)[0]) % devices:
            return sharding.replicate(batch, mesh)
        return sharding.shard_batch(batch, mesh)

    return place_batch, functools.partial(sharding.replicate, mesh=mesh)
