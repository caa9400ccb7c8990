"""`examples/multihost.py` as two CPU processes gives the losses of one process with the whole batch."""

import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "multihost.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_process_losses() -> list[float]:
    """The example's `main` in this process: one process, no `jax.distributed`."""
    spec = importlib.util.spec_from_file_location("multihost", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(["--num-processes", "1"])


@pytest.mark.slow
def test_two_processes_train_as_one():
    # The settings of conftest.py, through the environment, where JAX reads its flags too: the same
    # strictness, and the same random stream for the parameters as the one-process run below.
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAX_NUMPY_RANK_PROMOTION="raise",
        JAX_NUMPY_DTYPE_PROMOTION="strict",
        JAX_DEFAULT_MATMUL_PRECISION="highest",
        JAX_THREEFRY_PARTITIONABLE="false",
    )
    coordinator = f"127.0.0.1:{_free_port()}"
    command = [sys.executable, "-W", "error", str(EXAMPLE), "--num-processes", "2", "--coordinator", coordinator]
    processes = [
        subprocess.Popen(
            [*command, "--process-id", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr[-4000:]
            outputs.append(stdout)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    step_losses = [float(x) for x in re.findall(r"^step \d+: loss (\S+)$", outputs[0], re.MULTILINE)]
    assert not re.search("^step", outputs[1], re.MULTILINE)  # only process 0 prints the steps
    finals = [float(re.search(r"^process \d of 2 .*: final loss (\S+)$", out, re.MULTILINE)[1]) for out in outputs]
    assert "rows 0:4 of 8, 1 of 2 devices" in outputs[0] and "rows 4:8 of 8, 1 of 2 devices" in outputs[1]
    assert len(step_losses) == 3 and finals == [step_losses[-1]] * 2

    # One process sums over the batch in another order: float32 rounding, ~1e-7 of a loss of ~1400.
    assert step_losses == pytest.approx(_one_process_losses(), rel=1e-5)
