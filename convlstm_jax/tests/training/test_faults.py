"""`convlstm-train` under faults: SIGTERM and SIGINT stop it with a checkpoint at the step reached,
SIGKILL at any moment (even mid-save) costs only the steps a restart redoes, and a damaged checkpoint
is reported and passed over. Each run then ends with the parameters and the log of an uninterrupted
run, bit for bit.

The signals go to real `convlstm-train` processes, run with conftest's JAX settings (the random
stream of the initial parameters depends on them) so that their bits are comparable with runs in
this process. The tests wait for a process to reach a step by reading its `metrics.jsonl` or its
`checkpoints/` folder.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tensorstore

from convlstm_jax.tests.training.test_train import TINY, TINY_ARGS, _assert_trees_equal, _records
from convlstm_jax.training import TrainConfig, main, train

STEPS = 400
SCHEDULE = {"steps": STEPS, "eval_every": 100}
ARGS = [*TINY_ARGS, f"--steps={STEPS}", "--eval-every=100"]
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # Orbax's folder for a checkpoint being written


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run every interrupted one must end as."""
    return train(TrainConfig(**TINY, **SCHEDULE, workdir=str(tmp_path_factory.mktemp("uninterrupted"))))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment of a `convlstm-train` process: conftest's JAX settings, and a compilation
    cache shared by this file's processes (only the first one compiles)."""
    return {
        **os.environ,
        "JAX_THREEFRY_PARTITIONABLE": "false",
        "JAX_DEFAULT_MATMUL_PRECISION": "highest",
        "JAX_NUMPY_DTYPE_PROMOTION": "strict",
        "JAX_NUMPY_RANK_PROMOTION": "raise",
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("compilation_cache")),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


class Run:
    """A `convlstm-train` process on `workdir`, its output in files beside it."""

    def __init__(self, workdir, env, *options):
        self.workdir = workdir
        self.err_path = workdir.parent / f"{workdir.name}.err"
        command = [sys.executable, "-m", "convlstm_jax.training", *ARGS, *options, f"--workdir={workdir}"]
        # The process inherits SIGINT ignored if this one ignores it (as a shell's background jobs
        # do), and would then rightly ignore it; a handler here leaves it the default instead.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with open(workdir.parent / f"{workdir.name}.out", "w") as out, open(self.err_path, "w") as err:
                self.process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        finally:
            signal.signal(signal.SIGINT, previous)

    def wait_for(self, condition, what):
        """Returns once `condition()` holds; fails if the process ends first."""
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"convlstm-train exited ({self.process.returncode}) before {what}:\n{self.stderr()}")
            time.sleep(0.005)

    def logged_step(self):
        """The last step `metrics.jsonl` records (0 before the first)."""
        path = self.workdir / "metrics.jsonl"
        steps = [0]
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                steps.append(json.loads(line)["step"])
            except json.JSONDecodeError:  # a line being written
                break
        return steps[-1]

    def saving(self, after):
        """The folders of checkpoints past step `after` being written."""
        folder = self.workdir / "checkpoints"
        names = [p.name for p in folder.iterdir()] if folder.exists() else []
        return [name for name in names if TMP_SUFFIX in name and int(name.split(".")[0]) > after]

    def kill_while_saving(self, after):
        """SIGKILLs the process while it writes a checkpoint past step `after`: stopped (SIGSTOP) when
        such a folder appears, it is killed if the folder is still unfinished, else let go on."""
        while True:
            self.wait_for(lambda: self.saving(after), f"a checkpoint past step {after}")
            self.process.send_signal(signal.SIGSTOP)
            if self.saving(after):
                self.process.kill()
                assert self.process.wait() == -signal.SIGKILL
                return
            self.process.send_signal(signal.SIGCONT)

    def stdout(self):
        return self.err_path.with_suffix(".out").read_text()

    def stderr(self):
        return self.err_path.read_text()


def _config(workdir, **changes):
    return TrainConfig(**{**TINY, **SCHEDULE, **changes}, workdir=str(workdir))


def _checkpoints(workdir):
    return sorted((p.name for p in (workdir / "checkpoints").iterdir()), key=lambda name: (len(name), name))


# --- SIGTERM and SIGINT -------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_checkpoints_the_step_reached_and_the_same_command_resumes(tmp_path, env, uninterrupted, signum):
    workdir = tmp_path / "run"
    run = Run(workdir, env, "--checkpoint-every=0")  # no checkpoint but the one the signal asks for
    run.wait_for(lambda: run.logged_step() >= 20, "step 20")
    run.process.send_signal(signum)
    assert run.process.wait() == 128 + signum  # 143 for SIGTERM, 130 for SIGINT

    err = run.stderr()
    message = re.search(
        rf"convlstm-train: stopped by {signum.name} after step (\d+) of {STEPS}; checkpoint saved in (\S+)\. "
        "The same command resumes the run from there.",
        err,
    )
    assert message, err
    step = int(message[1])
    assert 20 <= step < STEPS
    assert message[2] == str(workdir / "checkpoints" / str(step))
    assert _checkpoints(workdir) == [str(step)]
    # The log holds what the uninterrupted run logged up to that step, and nothing after it.
    assert _records(workdir) == [r for r in _records(uninterrupted.workdir) if r["step"] <= step]

    resumed = train(_config(workdir, checkpoint_every=0))
    assert resumed.steps_run == STEPS - step
    _assert_trees_equal(resumed.state, uninterrupted.state)
    assert _records(workdir) == _records(uninterrupted.workdir)


# --- SIGKILL ------------------------------------------------------------------------------------------


def test_a_run_killed_while_saving_resumes_as_if_uninterrupted(tmp_path, env, uninterrupted):
    workdir = tmp_path / "run"
    run = Run(workdir, env, "--checkpoint-every=10")
    run.kill_while_saving(after=100)
    left = _checkpoints(workdir)
    assert any(TMP_SUFFIX in name for name in left), left  # the kill left a checkpoint half written
    newest = max(int(name) for name in left if name.isdigit())

    # Resumed with checkpoints at the end only, so that no save of the same step replaces the
    # unfinished one: only the cleanup on restart can remove it.
    resumed = train(_config(workdir, checkpoint_every=0))
    assert resumed.steps_run == STEPS - newest  # from the newest complete checkpoint
    _assert_trees_equal(resumed.state, uninterrupted.state)
    assert _records(workdir) == _records(uninterrupted.workdir)
    assert _checkpoints(workdir) == [str(newest - 10), str(newest), str(STEPS)]  # the unfinished one is gone


@pytest.mark.slow
def test_a_run_killed_again_and_again_ends_as_an_uninterrupted_one(tmp_path, env, uninterrupted):
    # Four kills at random steps, each while saving or while training; the same command restarts it.
    workdir = tmp_path / "run"
    rng = random.Random(20150613)
    for after in sorted(rng.sample(range(5, STEPS - 20), 4)):
        run = Run(workdir, env, "--checkpoint-every=5")
        if rng.random() < 0.5:
            run.kill_while_saving(after)
        else:
            run.wait_for(lambda run=run, after=after: run.logged_step() > after, f"step {after}")
            run.process.kill()
            assert run.process.wait() == -signal.SIGKILL
    run = Run(workdir, env, "--checkpoint-every=5")
    assert run.process.wait() == 0, run.stderr()
    assert re.search(rf"resumed {re.escape(str(workdir))} at step [1-9]", run.stdout())

    finished = train(_config(workdir, checkpoint_every=5))
    assert finished.steps_run == 0
    _assert_trees_equal(finished.state, uninterrupted.state)
    assert _records(workdir) == _records(uninterrupted.workdir)
    assert _checkpoints(workdir) == ["390", "395", "400"]


# --- Damaged checkpoints ------------------------------------------------------------------------------

# A run stopped at step 6 with checkpoints at 2, 4 and 6, resumed to step 8.
SHORT = {"steps": 8, "eval_every": 2, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """`(stopped, uninterrupted)`: the workdir of the run stopped at step 6, the result of the run
    that went to step 8 at once."""
    stopped = tmp_path_factory.mktemp("stopped")
    train(_config(stopped, **{**SHORT, "steps": 6}))
    return stopped, train(_config(tmp_path_factory.mktemp("short"), **SHORT))


@pytest.fixture
def stopped(tmp_path, short_runs):
    """A copy of the run stopped at step 6."""
    workdir = tmp_path / "run"
    shutil.copytree(short_runs[0], workdir)
    assert _checkpoints(workdir) == ["2", "4", "6"]
    return workdir


def _data_file(workdir, step):
    """The file of the checkpoint at `step` that holds its arrays (TensorStore's OCDBT tree)."""
    return max((workdir / "checkpoints" / str(step) / "state" / "d").iterdir(), key=lambda p: p.stat().st_size)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _edit_json(path, edit):
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _report(workdir, step, reason):
    folder = workdir / "checkpoints"
    return rf"Checkpoint {step} in {re.escape(str(folder))} is damaged \({reason}\); moved to {step}\.corrupt-1\."


def _resume_and_compare(workdir, short_runs):
    resumed = train(_config(workdir, **SHORT))
    _assert_trees_equal(resumed.state, short_runs[1].state)
    assert _records(workdir) == _records(short_runs[1].workdir)
    return resumed


def test_a_truncated_and_a_corrupted_checkpoint_are_reported_and_the_one_before_is_used(stopped, short_runs, capsys):
    _truncate(_data_file(stopped, 6))
    _flip_a_byte(_data_file(stopped, 4))
    resumed = _resume_and_compare(stopped, short_runs)
    assert resumed.steps_run == 6  # from step 2
    # One line each on stderr, and nothing else.
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert re.fullmatch(_report(stopped, 6, r"ValueError: OUT_OF_RANGE: .+"), err[0]), err[0]
    assert re.fullmatch(_report(stopped, 4, r"ValueError: DATA_LOSS: .+"), err[1]), err[1]
    # Set aside, they count neither as checkpoints nor towards keep_checkpoints (3).
    assert resumed.checkpoint_steps == (4, 6, 8)
    assert _checkpoints(stopped) == ["4", "6", "8", "4.corrupt-1", "6.corrupt-1"]


def _change_the_options(checkpoint):
    _edit_json(checkpoint / "config" / "metadata", lambda options: {**options, "seed": 1})


def _change_an_array(checkpoint):
    """Writes another value into one array through TensorStore, which keeps the storage's own
    checksums valid, as silent corruption would."""
    store = {"driver": "ocdbt", "base": (checkpoint / "state").as_uri() + "/", "path": "params.output.bias/"}
    array = tensorstore.open({"driver": "zarr", "kvstore": store}).result()
    array[0].write(array[0].read().result() + 1).result()


@pytest.mark.parametrize(
    ("alter", "reason"),
    [
        (_change_the_options, "its options do not match the SHA-256 saved with them"),
        (_change_an_array, "its arrays do not match the SHA-256 saved with them"),
    ],
    ids=["options", "array"],
)
def test_a_checkpoint_altered_but_readable_is_reported(stopped, short_runs, capsys, alter, reason):
    alter(stopped / "checkpoints" / "6")
    assert _resume_and_compare(stopped, short_runs).steps_run == 4  # from step 4
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and re.fullmatch(_report(stopped, 6, reason), err[0]), err


def test_a_log_line_cut_short_by_a_kill_is_dropped(stopped, short_runs):
    with open(stopped / "metrics.jsonl", "a") as log:
        log.write('{"step": 7, "kind": "train", "lo')
    assert _resume_and_compare(stopped, short_runs).steps_run == 2


def test_with_every_checkpoint_damaged_the_command_exits_with_a_message(stopped, short_runs, capsys):
    for step in (2, 4, 6):
        _truncate(_data_file(stopped, step))
    args = [*TINY_ARGS, *(f"--{name.replace('_', '-')}={value}" for name, value in SHORT.items())]
    assert main([*args, f"--workdir={stopped}"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4, err
    for step, line in zip((6, 4, 2), err):
        assert re.fullmatch(_report(stopped, step, r"ValueError: OUT_OF_RANGE: .+"), line), line
    assert err[3] == (
        f"convlstm-train: error: No usable checkpoint in {stopped / 'checkpoints'}: each one is damaged and was set "
        "aside (steps 6 (6.corrupt-1), 4 (4.corrupt-1), 2 (2.corrupt-1)). The same command now starts the run "
        "afresh; or put back a copy of the checkpoints and run it again."
    )
    # As it says: the same command now trains from the start, to the same end.
    assert main([*args, f"--workdir={stopped}"]) == 0
    _assert_trees_equal(train(_config(stopped, **SHORT)).state, short_runs[1].state)
    assert _records(stopped) == _records(short_runs[1].workdir)
