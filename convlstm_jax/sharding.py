"""Data-parallel and spatial sharding of a batch of frames across devices.

A train step needs no change to run on several devices: place its inputs with a sharding and call
the same `jax.jit`-compiled function. Computation follows data: XLA's SPMD partitioner reads the
shardings of the arguments, propagates them through the program and inserts the communication it
needs.

- `"data"` splits the batch (B) across the devices of a one-axis mesh named "data". Parameters
  and optimiser state are replicated (`replicate`); each device runs the model on B / n
  sequences, and the partitioner sums the gradients across devices with an all-reduce before the
  (replicated) update, so every device keeps the same parameters.
- `"spatial"` splits the frame rows (H) across a one-axis mesh named "height", for frames too large
  for one device. Every convolution then needs the rows of its neighbours' blocks within half its
  kernel: the partitioner exchanges these halos between neighbouring devices (collective
  permutes) before each convolution, and all-reduces the gradients of the weights, which every
  device computes from its own rows. For the sharding to survive the cut into p x p patches,
  H / p should be a multiple of the number of devices as well. Both convolution gradients
  (`conv_gradient`) keep every activation split: nothing is gathered to full height.

The mesh axes are `jax.sharding.AxisType.Auto`: shardings are hints the partitioner propagates,
not part of the arrays' types, so the model's code (reshapes, scans) stays as written.

On several hosts, every process calls `jax.distributed.initialize(coordinator_address,
num_processes, process_id)` first; `jax.devices()` then lists the devices of all processes and
`make_mesh` builds the same global mesh in each. No process holds the global batch: each loads its
own B / num_processes sequences and assembles the global array with
`jax.make_array_from_process_local_data(NamedSharding(mesh, batch_spec(mesh)), local_batch)`
instead of `shard_batch`. The jitted step is the same, run by every process (see
`examples/multihost.py`).

Example:
  >>> import numpy as np
  >>> from convlstm_jax.sharding import make_mesh, shard_batch
  >>> mesh = make_mesh("data", 1)
  >>> frames = shard_batch(np.zeros((4, 3, 16, 16, 1), np.float32), mesh)
  >>> tuple(frames.sharding.spec)
  ('data',)
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

_AXES = {"data": "data", "spatial": "height"}  # each mode and the name of its mesh axis


def make_mesh(mode: str, num_devices: int | None = None) -> Mesh:
    """A one-axis mesh over the first `num_devices` devices, for `mode` "data" or "spatial".

    Args:
      mode: "data" (axis "data": the batch is split across devices) or "spatial" (axis "height":
        the frame rows are split across devices).
      num_devices: how many devices; all of `jax.devices()` (of every process) if None.

    Returns:
      A `jax.sharding.Mesh` with one `Auto` axis of `num_devices` devices.

    Raises:
      ValueError: for an unknown mode, or more devices than there are.

    Example:
      >>> from convlstm_jax.sharding import make_mesh
      >>> mesh = make_mesh("spatial", 1)
      >>> mesh.axis_names, mesh.devices.shape
      (('height',), (1,))
    """
    if mode not in _AXES:
        raise ValueError(f"mode must be one of {tuple(_AXES)}, got {mode!r}.")
    available = jax.device_count()
    if num_devices is None:
        num_devices = available
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"num_devices must be a positive int or None, got {num_devices!r}.")
    if num_devices > available:
        raise ValueError(
            f"A {mode} mesh of {num_devices} devices was asked for, but there are {available} "
            f"{jax.default_backend()} device(s): {jax.devices()}."
        )
    return jax.make_mesh((num_devices,), (_AXES[mode],), axis_types=(AxisType.Auto,))


def _mode(mesh: Mesh) -> str:
    """The mode of a mesh made by `make_mesh`; ValueError for any other mesh."""
    for mode, axis in _AXES.items():
        if tuple(mesh.axis_names) == (axis,):
            return mode
    raise ValueError(
        f"Expected a mesh from make_mesh, with one axis named {' or '.join(map(repr, _AXES.values()))}; "
        f"got axes {tuple(mesh.axis_names)}."
    )


def batch_spec(mesh: Mesh) -> PartitionSpec:
    """How arrays of shape (B, T, H, W, C) are split on `mesh`: along B ("data") or H ("spatial").

    Example:
      >>> from convlstm_jax.sharding import batch_spec, make_mesh
      >>> tuple(batch_spec(make_mesh("data", 1))), tuple(batch_spec(make_mesh("spatial", 1)))
      (('data',), (None, None, 'height'))
    """
    if _mode(mesh) == "data":
        return PartitionSpec("data")
    return PartitionSpec(None, None, "height")


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Places every (B, T, H, W, C) array of `tree` on `mesh`, split as `batch_spec(mesh)` says.

    Args:
      tree: a pytree of arrays (NumPy or JAX) of shape (B, T, H, W, C), such as (inputs, targets).
      mesh: a mesh from `make_mesh`.

    Returns:
      The same tree of `jax.Array`s, each with sharding `NamedSharding(mesh, batch_spec(mesh))`.

    Raises:
      ValueError: if an array is not 5-D, or the size it is split along (B on a "data" mesh, H on
        a "spatial" one) is not a multiple of the number of devices.

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.sharding import make_mesh, shard_batch
      >>> batch = np.zeros((2, 3, 8, 8, 1), np.float32), np.zeros((2, 1, 8, 8, 1), np.float32)
      >>> inputs, targets = shard_batch(batch, make_mesh("spatial", 1))
      >>> tuple(inputs.sharding.spec), len(inputs.addressable_shards)
      ((None, None, 'height'), 1)
    """
    mode = _mode(mesh)
    axis, size_name = (0, "batch size B") if mode == "data" else (2, "height H")
    devices = mesh.devices.size
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    for path, leaf in leaves:
        where = f"the array at {jax.tree_util.keystr(path)}" if path else "the array"
        shape = tuple(getattr(leaf, "shape", ()))
        if len(shape) != 5:
            raise ValueError(f"shard_batch places arrays of shape (B, T, H, W, C); {where} has shape {shape}.")
        if shape[axis] % devices:
            raise ValueError(
                f"The {size_name} = {shape[axis]} of {where} (shape {shape}) does not divide by "
                f"the {devices} devices of the {mode} mesh."
            )
    return jax.device_put(tree, NamedSharding(mesh, batch_spec(mesh)))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places a full copy of every array of `tree` on each device of `mesh` (parameters, optimiser state).

    Example:
      >>> import numpy as np
      >>> from convlstm_jax.sharding import make_mesh, replicate
      >>> replicate({"w": np.ones(3)}, make_mesh("data", 1))["w"].sharding.is_fully_replicated
      True
    """
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


__all__ = ["batch_spec", "make_mesh", "replicate", "shard_batch"]
