"""Data-parallel training of the encoder-forecaster across processes (one per host).

Every process runs this same program. `jax.distributed.initialize` connects it to the others;
`jax.devices()` then lists the devices of all processes, and `make_mesh("data")` lays one global
"data" axis over them. Each process builds only its own rows of each global batch, and
`jax.make_array_from_process_local_data` assembles the rows of all processes into one global
array, split along the batch. The train step is a plain `jax.jit`: given global arrays, every
process runs its part of it, and the gradients are all-reduced across processes.

On one machine, as two CPU processes (the coordinator is process 0's address, any free port):

    python examples/multihost.py --process-id 0 --num-processes 2 --coordinator 127.0.0.1:12355 &
    python examples/multihost.py --process-id 1 --num-processes 2 --coordinator 127.0.0.1:12355

`--num-processes 1` (the default) trains the same model on the same global batches in one process,
without `jax.distributed`; its losses are those of the two-process run, up to the order of the sums.
`--local-devices N` gives each process N CPU devices. Without command-line arguments, the
coordinator, the number of processes and the process id come from `JAX_COORDINATOR_ADDRESS`,
`JAX_NUM_PROCESSES` and `JAX_PROCESS_ID`. On CPU the processes talk through gloo, JAX's default
CPU collectives (`jax_cpu_collectives_implementation`); on GPU and TPU through NCCL and the ICI.

Process 0 prints the loss of each step; every process prints its last loss at the end.
"""

from __future__ import annotations

import argparse
import os

import jax
import numpy as np
import optax
from jax.sharding import NamedSharding

from convlstm_jax.models import EncoderForecaster
from convlstm_jax.sharding import batch_spec, make_mesh, replicate
from convlstm_jax.training import batch_indices, bouncing_digits, split_sequences, to_unit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    env = os.environ.get
    parser.add_argument("--coordinator", default=env("JAX_COORDINATOR_ADDRESS", "127.0.0.1:12355"))
    parser.add_argument("--num-processes", type=int, default=int(env("JAX_NUM_PROCESSES", "1")))
    parser.add_argument("--process-id", type=int, default=int(env("JAX_PROCESS_ID", "0")))
    parser.add_argument("--local-devices", type=int, default=None, help="CPU devices per process")
    parser.add_argument("--spec", default="ConvLSTM(3x3)-3x3-8", help="the network, in the paper's notation")
    parser.add_argument("--size", type=int, default=32, help="frame side, in pixels")
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--input-frames", type=int, default=2)
    parser.add_argument("--output-frames", type=int, default=2)
    parser.add_argument("--num-sequences", type=int, default=32, help="the training set")
    parser.add_argument("--batch-size", type=int, default=8, help="the global batch, over all processes")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def local_rows(sharding: NamedSharding, global_shape: tuple[int, ...]) -> slice:
    """The rows of the global batch that live on this process's devices: one contiguous block."""
    indices = sharding.addressable_devices_indices_map(global_shape).values()
    blocks = sorted({index[0].indices(global_shape[0])[:2] for index in indices})
    rows = slice(blocks[0][0], blocks[-1][1])
    if sum(stop - start for start, stop in blocks) != rows.stop - rows.start:
        raise ValueError(f"The rows of this process's devices, {blocks}, are not one block.")
    return rows


def main(argv: list[str] | None = None) -> list[float]:
    args = parse_args(argv)
    if args.local_devices is not None:
        jax.config.update("jax_num_cpu_devices", args.local_devices)
    if args.num_processes > 1:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    mesh = make_mesh("data")  # every device of every process
    sharding = NamedSharding(mesh, batch_spec(mesh))
    if args.batch_size % mesh.devices.size:
        raise ValueError(f"--batch-size {args.batch_size} does not divide by the {mesh.devices.size} devices.")

    model = EncoderForecaster.from_spec(
        args.spec, in_channels=1, patch_size=args.patch_size, output_frames=args.output_frames
    )
    frames = args.input_frames + args.output_frames
    # The same small training set in every process; a process reads only the sequences of its rows.
    sequences = bouncing_digits(args.num_sequences, frames, size=args.size, digit_size=args.size // 2, seed=args.seed)
    input_shape = (args.batch_size, args.input_frames, args.size, args.size, 1)
    target_shape = (args.batch_size, args.output_frames, args.size, args.size, 1)
    rows = local_rows(sharding, input_shape)

    # Every process draws the same parameters from the same key; `replicate` places a copy on each device.
    sample = np.zeros((1, *input_shape[1:]), np.float32)
    params = replicate(jax.jit(model.init)(jax.random.key(args.seed), sample)["params"], mesh)
    optimizer = optax.rmsprop(args.learning_rate, decay=0.9)
    opt_state = replicate(optimizer.init(params), mesh)

    def loss_fn(params, inputs, targets):
        logits = model.apply({"params": params}, inputs)
        return optax.sigmoid_binary_cross_entropy(logits, targets).sum(axis=(1, 2, 3, 4)).mean()

    @jax.jit
    def train_step(params, opt_state, inputs, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    losses = []
    for step in range(args.steps):
        indices = batch_indices(args.num_sequences, args.batch_size, step, seed=args.seed)[rows]
        inputs, targets = (to_unit(part) for part in split_sequences(sequences[indices], args.input_frames))
        inputs = jax.make_array_from_process_local_data(sharding, inputs, input_shape)
        targets = jax.make_array_from_process_local_data(sharding, targets, target_shape)
        params, opt_state, loss = train_step(params, opt_state, inputs, targets)
        losses.append(float(loss))  # the loss is replicated: every process holds it
        if jax.process_index() == 0:
            print(f"step {step}: loss {losses[-1]!r}", flush=True)
    print(
        f"process {jax.process_index()} of {jax.process_count()} "
        f"(rows {rows.start}:{rows.stop} of {args.batch_size}, {len(jax.local_devices())} of "
        f"{jax.device_count()} devices): final loss {losses[-1]!r}",
        flush=True,
    )
    return losses


if __name__ == "__main__":
    main()
