"""Checkpoints: saving a state with the SHA-256 of its arrays and options, and restoring the newest usable
one, checking that the run's options can continue it and setting damaged ones aside."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from .config import SCHEDULE_OPTIONS, ConfigError, TrainConfig
from .steps import TrainState

# A damaged checkpoint `checkpoints/<step>` is renamed `checkpoints/<step>.corrupt-<n>`.
CORRUPT_MARK = ".corrupt-"


class CheckpointError(RuntimeError):
    """A run cannot resume: every checkpoint in its workdir is damaged."""


# What Orbax's restore raises from a damaged checkpoint (measured on truncated, altered and deleted
# files), itself or as the cause of the bare `Exception` it wraps a failed array read in: ValueError
# from TensorStore (DATA_LOSS, OUT_OF_RANGE, NOT_FOUND, ...) and from the JSON and UTF-8 decoders,
# KeyError and AttributeError from metadata that parses but lacks its fields, FileNotFoundError for a
# missing file.
_DAMAGE_ERRORS = (ValueError, KeyError, AttributeError, FileNotFoundError)
# TensorStore statuses that say the storage could not be read, rather than that it holds bad bytes:
# such an error is not damage and propagates.
_UNREADABLE = (
    "PERMISSION_DENIED",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "UNAUTHENTICATED",
    "CANCELLED",
    "ABORTED",
)
# The checkpoint's items: the state, the options, and the SHA-256 digests of both.
STATE_ITEM, CONFIG_ITEM, DIGEST_ITEM = "state", "config", "digest"


class _Damaged(Exception):
    """A checkpoint that cannot be used; the message says why."""


def _tree_digest(tree: Any) -> str:
    """The SHA-256 of a pytree of arrays: each leaf's path, dtype, shape and bytes, in order."""
    sha = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        array = np.ascontiguousarray(jax.device_get(leaf))
        sha.update(f"{jax.tree_util.keystr(path)} {array.dtype.str} {array.shape}\n".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def _options_digest(options: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def save_checkpoint(manager: Any, state: TrainState, config: TrainConfig) -> None:
    """Starts saving `state` and `config`'s options at `state.step`, with their digests.

    Args:
      manager: the run's `orbax.checkpoint.CheckpointManager`.
      state: the state to save.
      config: the run's options.
    """
    import orbax.checkpoint as ocp

    options = dataclasses.asdict(config)
    digest = {STATE_ITEM: _tree_digest(state), CONFIG_ITEM: _options_digest(options)}
    args = ocp.args.Composite(
        **{
            STATE_ITEM: ocp.args.StandardSave(state),
            CONFIG_ITEM: ocp.args.JsonSave(options),
            DIGEST_ITEM: ocp.args.JsonSave(digest),
        }
    )
    manager.save(int(state.step), args=args)


def _reason(error: BaseException) -> str:
    """The first line of an error's message, after its type, cut to 200 characters."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 200 else text[:197] + "..."


def _damage(error: BaseException) -> BaseException | None:
    """The error in `error`'s chain of causes that says the checkpoint is damaged, if one does."""
    while error is not None:
        if isinstance(error, _DAMAGE_ERRORS):
            return None if str(error).startswith(_UNREADABLE) else error
        error = error.__cause__
    return None


def _restore_items(manager: Any, step: int, **items: Any) -> Any:
    """`manager.restore(step)` of the named items, with damage raised as `_Damaged`."""
    import orbax.checkpoint as ocp

    try:
        return manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as error:
        damage = _damage(error)
        if damage is None:
            raise
        raise _Damaged(_reason(damage)) from error


def _restore_options(manager: Any, step: int) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The options saved at `step` and the digests saved with them (None in a checkpoint without any).

    Raises:
      _Damaged: if they cannot be read or the options do not match their digest.
    """
    import orbax.checkpoint as ocp

    with_digest = (pathlib.Path(manager.directory) / str(step) / DIGEST_ITEM).is_dir()
    items = {CONFIG_ITEM: ocp.args.JsonRestore()}
    if with_digest:
        items[DIGEST_ITEM] = ocp.args.JsonRestore()
    restored = _restore_items(manager, step, **items)
    options, digest = restored[CONFIG_ITEM], restored[DIGEST_ITEM] if with_digest else None
    if not isinstance(options, dict) or (digest is not None and not isinstance(digest, dict)):
        raise _Damaged("its options or digests are not JSON objects")
    if digest is not None and digest.get(CONFIG_ITEM) != _options_digest(options):
        raise _Damaged("its options do not match the SHA-256 saved with them")
    return options, digest


def _read_every_value(folder: pathlib.Path) -> None:
    """Reads each value of the OCDBT database in `folder` (where Orbax stores arrays) in turn.

    TensorStore checks the checksums of the database's manifest and tree nodes and the extent of
    each value as it reads them. Damage found here stops cleanly; found during Orbax's restore,
    which reads the arrays concurrently, it would leave reads in flight that print tracebacks once
    the restore has failed.

    Raises:
      _Damaged: if a value cannot be read.
    """
    if not (folder / "manifest.ocdbt").is_file():
        return  # not an OCDBT database (or its manifest is missing, which Orbax reports)
    import tensorstore as ts

    try:
        store = ts.KvStore.open({"driver": "ocdbt", "base": folder.as_uri() + "/"}).result()
        for key in store.list().result():
            store.read(key).result()
    except Exception as error:
        damage = _damage(error)
        if damage is None:
            raise
        raise _Damaged(_reason(damage)) from error


def _restore_state(manager: Any, step: int, like: TrainState, digest: Mapping[str, str] | None) -> TrainState:
    """The state saved at `step`, shaped, typed and placed as `like`.

    Raises:
      _Damaged: if it cannot be read or does not match its digest.
    """
    import orbax.checkpoint as ocp

    _read_every_value(pathlib.Path(manager.directory) / str(step) / STATE_ITEM)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    state = _restore_items(manager, step, **{STATE_ITEM: ocp.args.StandardRestore(abstract)})[STATE_ITEM]
    if digest is not None and digest.get(STATE_ITEM) != _tree_digest(state):
        raise _Damaged("its arrays do not match the SHA-256 saved with them")
    return state


def _set_aside(directory: pathlib.Path, step: int) -> pathlib.Path:
    """Renames `directory/<step>` to the first free `directory/<step>.corrupt-<n>`; returns the new path."""
    n = 1
    while (directory / f"{step}{CORRUPT_MARK}{n}").exists():
        n += 1
    target = directory / f"{step}{CORRUPT_MARK}{n}"
    (directory / str(step)).rename(target)
    return target


def restore_latest(manager: Any, config: TrainConfig, fresh: Callable[[], TrainState]) -> TrainState:
    """The state of the newest usable checkpoint `manager` holds, or `fresh()` when it holds none.

    Each checkpoint, newest first, must hold options that `config` can continue (else `ConfigError`)
    and a state that matches the digests saved with it. A damaged one is reported on stderr (one
    line: its step and what is wrong), renamed `<step>.corrupt-<n>` (by process 0 in a run of
    several) so that it is neither tried again nor counted by `keep_checkpoints`, and the one
    before it is tried.

    Args:
      manager: the run's `orbax.checkpoint.CheckpointManager`.
      config: the run's options.
      fresh: makes the initial state; called at most once, after the options of the newest
        readable checkpoint are checked. Its structure, dtypes and placement are those a restored
        state takes.

    Raises:
      ConfigError: if the newest readable checkpoint holds a run with other options.
      CheckpointError: if every checkpoint is damaged (all are then set aside).
    """
    directory = pathlib.Path(manager.directory)
    damaged = []
    like = None
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            options, digest = _restore_options(manager, step)
            _check_resumable(options, config, step)
            like = fresh() if like is None else like
            state = _restore_state(manager, step, like, digest)
        except _Damaged as error:
            aside = _set_aside(directory, step) if jax.process_index() == 0 else directory / str(step)
            damaged.append(f"{step} ({aside.name})")
            print(f"Checkpoint {step} in {directory} is damaged ({error}); moved to {aside.name}.", file=sys.stderr)
            continue
        if damaged:
            manager.reload()
        return state
    if damaged:
        manager.reload()
        raise CheckpointError(
            f"No usable checkpoint in {directory}: each one is damaged and was set aside (steps "
            f"{', '.join(damaged)}). The same command now starts the run afresh; or put back a copy of the "
            "checkpoints and run it again."
        )
    return fresh() if like is None else like


def _check_resumable(saved: Mapping[str, Any], config: TrainConfig, step: int) -> None:
    """Raises `ConfigError` unless a checkpoint at `step`, written with options `saved`, can continue
    as `config` says."""
    if step > config.steps:
        raise ConfigError(
            f"{config.workdir} holds a checkpoint at step {step}, past steps={config.steps}: "
            f"pass --steps {step} or more to resume it."
        )
    current = dataclasses.asdict(config)
    changed = [
        f"{name}: {saved.get(name)!r} in the checkpoint, {current[name]!r} now"
        for name in current
        if name not in SCHEDULE_OPTIONS and saved.get(name) != current[name]
    ]
    if changed:
        raise ConfigError(
            f"{config.workdir} holds a checkpoint (step {step}) of a run with other options, which cannot be "
            "resumed with these:\n  " + "\n  ".join(changed) + "\nPass the same options to continue that run, "
            "or another --workdir to start a new one."
        )
