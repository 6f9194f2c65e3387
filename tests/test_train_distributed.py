"""Data-parallel training with FSDP2 over 2 CPU processes (torchrun, gloo): it trains, matches a one-process
run with the same global batch within float tolerance, and its checkpoint resumes on one process
(DCP reshards the model and optimizer state)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from helpers import checkpoint_weights, run_losses
from train.config import apply_overrides, preset
from train.synthetic import write_markov_dataset
from train.trainer import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERRIDES = {"tensorboard": "false", "log_every": "1", "max_steps": "8", "warmup_steps": "2",
             "checkpoint_every": "100", "seq_len": "32", "global_batch_tokens": "256", "micro_batch_size": "4"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_two_processes_match_one_and_their_checkpoint_resumes_on_one(tmp_path):
    data = write_markov_dataset(str(tmp_path / "data"), 20_000, vocab_size=128, seed=3)["directory"]
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "train",
           "--config", "tiny", "--data", data, "--output", two, "--stop-at-step", "5",
           *[f"{k}={v}" for k, v in OVERRIDES.items()]]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cfg = apply_overrides(preset("tiny"), OVERRIDES)
    train(cfg, data, one)                               # the one-process run, while the two processes work
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "on 2 x cpu; 1 micro-steps of 4 x 32 tokens per step" in out

    ref, dist = run_losses(one), run_losses(two)
    assert sorted(dist) == [1, 2, 3, 4, 5]
    assert dist[5] < dist[1] - 0.3                      # it trains
    for step in dist:
        assert dist[step] == pytest.approx(ref[step], rel=1e-5, abs=1e-6)

    summary = train(cfg, data, two, resume=True)        # 2 processes -> 1: DCP reshards on load
    resumed = run_losses(two)
    assert summary["steps"] == 8 and sorted(resumed) == list(range(1, 9))
    for step in (6, 7, 8):
        assert resumed[step] == pytest.approx(ref[step], rel=1e-5, abs=1e-6)
    a, b = checkpoint_weights(one, 8), checkpoint_weights(two, 8)
    assert all(torch.allclose(a[n], b[n], rtol=1e-4, atol=1e-6) for n in a)
