"""The trainer where jobs fail and get preempted (2 CPU processes under torchrun, gloo, the tiny model):
a process that fails takes the whole job down at once; a worker killed mid-run is restarted by torchrun
and `--resume auto` continues from the newest complete checkpoint to the uninterrupted run's exact
weights; SIGTERM saves at the next step boundary and exits 0; a resume that would change the
learning-rate schedule is refused unless allowed, and then recorded."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch

from train.checkpoint import latest_checkpoint, list_checkpoints, read_weights
from train.config import apply_overrides, preset
from train.model import Transformer
from train.run_dir import load_run_config
from train.synthetic import write_markov_dataset
from train.trainer import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 40
OVERRIDES = {"tensorboard": "false", "log_every": "1", "max_steps": str(STEPS), "warmup_steps": "2",
             "checkpoint_every": "4", "keep_checkpoints": "20", "seq_len": "32", "global_batch_tokens": "256",
             "micro_batch_size": "4"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def torchrun(data, output, *extra, restarts=0):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--max-restarts", str(restarts), "--monitor-interval", "0.1", "-m", "train", "--config", "tiny",
           "--data", data, "--output", output, "--resume", "auto", *[f"{k}={v}" for k, v in OVERRIDES.items()],
           *extra]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, limit_s=120):
    try:
        out, _ = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):   # workers hold the output pipe too
            child.kill()
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the job was still running after {limit_s} s:\n{out}")
    return proc.returncode, out


def wait_for_checkpoint(run_dir, proc):
    """Poll the run directory until a complete checkpoint exists (while the job runs)."""
    while latest_checkpoint(os.path.join(run_dir, "checkpoints")) is None:
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.005)


def workers(proc):
    """The training processes torchrun started, by rank."""
    found = {}
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            rank = child.environ().get("RANK")
        except psutil.Error:
            continue
        if rank is not None:
            found[int(rank)] = child
    return found


def final_weights(run_dir):
    step, path = latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    assert step == STEPS
    shapes = {n: p.shape for n, p in Transformer(load_run_config(run_dir)).named_parameters()}
    return read_weights(path, shapes)


def assert_same_weights(a, b):
    assert sorted(a) == sorted(b)
    assert all(torch.equal(a[n], b[n]) for n in a)


@pytest.fixture(scope="module")
def markov(tmp_path_factory):
    return write_markov_dataset(str(tmp_path_factory.mktemp("markov")), 40_000, vocab_size=128, seed=5,
                                shard_tokens=256)["directory"]


@pytest.fixture(scope="module")
def uninterrupted(markov, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("whole") / "run")
    code, out = finish(torchrun(markov, run))
    assert code == 0, out
    return final_weights(run)


def test_a_failing_process_stops_every_process_at_once(tmp_path):
    # shards of 256 tokens = one step's batch: rank 0 reads the first half of shard k at step k, rank 1 the
    # second half and the first token of shard k + 1, so only rank 1 (at step 3) reads the damaged shard 3
    data = write_markov_dataset(str(tmp_path / "data"), 10_000, vocab_size=128, seed=2, shard_tokens=256)["directory"]
    shard = os.path.join(data, "shard-00003.bin")
    with open(shard, "r+b") as f:
        f.seek(10)
        f.write(b"\x07\x00")
    start = time.monotonic()
    code, out = finish(torchrun(data, str(tmp_path / "run"), "pg_timeout_s=600"), limit_s=60)
    assert code != 0
    assert "shard-00003.bin: checksum" in out and "the file is damaged" in out
    assert time.monotonic() - start < 60          # long before the 600 s process-group timeout


def test_a_killed_worker_is_restarted_and_resumes_to_the_same_weights(markov, uninterrupted, tmp_path):
    run = str(tmp_path / "run")
    proc = torchrun(markov, run, restarts=1)
    wait_for_checkpoint(run, proc)
    workers(proc)[1].send_signal(signal.SIGKILL)
    code, out = finish(proc)
    assert code == 0, out
    with open(os.path.join(run, "metrics.jsonl")) as f:
        steps = [r["step"] for r in map(json.loads, f) if r["kind"] == "step"]
    assert steps == list(range(1, STEPS + 1))     # the restart dropped the records past its checkpoint
    assert "resumed from" in out                  # a second generation of workers continued the run
    assert_same_weights(final_weights(run), uninterrupted)


def test_sigterm_saves_at_the_next_step_and_exits_0_and_the_same_command_resumes(markov, uninterrupted, tmp_path):
    run = str(tmp_path / "run")
    proc = torchrun(markov, run)
    wait_for_checkpoint(run, proc)
    workers(proc)[1].send_signal(signal.SIGTERM)  # one process: the other learns it at the step boundary
    code, out = finish(proc)
    assert code == 0, out
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    assert summary["stopped_by_signal"] and summary["steps"] < STEPS
    saved = [s for s, _ in list_checkpoints(os.path.join(run, "checkpoints"))]
    assert saved[-1] == summary["steps"]          # saved at the step it stopped after, not the last multiple of 4
    code, out = finish(torchrun(markov, run))     # the same command again
    assert code == 0, out
    assert_same_weights(final_weights(run), uninterrupted)


def tiny(**overrides):
    base = {k: v for k, v in OVERRIDES.items()}
    return apply_overrides(preset("tiny"), {**base, "max_steps": "6", **{k: str(v) for k, v in overrides.items()}})


def test_a_schedule_change_on_resume_is_refused_unless_allowed_and_then_recorded(markov, tmp_path, caplog):
    run = str(tmp_path / "run")
    train(tiny(), markov, run, stop_at_step=4)
    with pytest.raises(ValueError, match=r"change the learning-rate schedule \(lr 0.003 -> 0.001, max_steps 6 -> 8\)"):
        train(tiny(lr=1e-3, max_steps=8), markov, run, resume=True)
    assert load_run_config(run).lr == 3e-3        # the refused resume left the run's configuration alone
    with caplog.at_level("WARNING", logger="smallgiant.train"):
        summary = train(tiny(lr=1e-3, max_steps=8), markov, run, resume=True, allow_schedule_change=True)
    assert summary["steps"] == 8
    assert "changed learning-rate schedule" in caplog.text and "lr 0.003 -> 0.001" in caplog.text
    with open(os.path.join(run, "metrics.jsonl")) as f:
        events = [r for r in map(json.loads, f) if r["kind"] == "schedule_change"]
    assert events == [{"kind": "schedule_change", "step": 4, "changes": ["lr 0.003 -> 0.001", "max_steps 6 -> 8"]}]
    assert load_run_config(run).lr == 1e-3


def test_resume_auto_starts_afresh_then_resumes(markov, tmp_path):
    run = str(tmp_path / "run")
    assert train(tiny(), markov, run, resume="auto", stop_at_step=2)["steps"] == 2
    assert train(tiny(), markov, run, resume="auto")["steps"] == 6
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        train(tiny(), markov, str(tmp_path / "empty"), resume=True)   # plain --resume still means "must resume"


def test_an_asynchronous_save_that_fails_leaves_the_previous_checkpoint(markov, tmp_path, monkeypatch):
    import train.checkpoint as checkpoint_module
    run = str(tmp_path / "run")
    cfg = tiny(async_checkpoint="on", checkpoint_every=2)
    train(cfg, markov, run, stop_at_step=2)
    real = checkpoint_module.dcp.async_save

    def failing(state, **kwargs):
        future = real(state, **kwargs)
        future.result()
        broken = type(future)()
        broken.set_exception(OSError("disk full"))
        return broken
    monkeypatch.setattr(checkpoint_module.dcp, "async_save", failing)
    with pytest.raises(OSError, match="disk full"):
        train(cfg, markov, run, resume=True)
    assert [s for s, _ in list_checkpoints(os.path.join(run, "checkpoints"))] == [2]
    monkeypatch.setattr(checkpoint_module.dcp, "async_save", real)
    assert train(cfg, markov, run, resume=True)["steps"] == 6


def test_sigusr1_in_one_process_stops_after_the_step_with_a_checkpoint(markov, tmp_path, monkeypatch):
    import train.trainer as trainer_module
    real_log = trainer_module.Run._log

    def log_then_signal(self, *args):
        real_log(self, *args)
        if self.progress.step == 3:
            os.kill(os.getpid(), signal.SIGUSR1)
    monkeypatch.setattr(trainer_module.Run, "_log", log_then_signal)
    run = str(tmp_path / "run")
    summary = train(tiny(), markov, run, resume="auto")
    assert summary["stopped_by_signal"] and summary["steps"] == 3
    assert [s for s, _ in list_checkpoints(os.path.join(run, "checkpoints"))] == [3]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL      # the handler is gone with the run


def test_a_time_based_interval_saves_between_the_step_interval(markov, tmp_path):
    run = str(tmp_path / "run")
    train(tiny(checkpoint_every=100, checkpoint_every_s=1e-9), markov, run)   # always due: every step saves
    assert [s for s, _ in list_checkpoints(os.path.join(run, "checkpoints"))] == [1, 2, 3, 4, 5, 6]
