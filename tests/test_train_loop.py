"""The training loop on CPU: it learns (loss far below the data's unigram entropy), resumes exactly
(bitwise-equal losses and weights), skips non-finite steps and stops after too many, writes checkpoints
atomically and keeps the last K, and refuses resumes that cannot be right."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from train import checkpoint as checkpoint_module
from train import trainer as trainer_module
from train.checkpoint import list_checkpoints, read_weights
from train.config import apply_overrides, preset
from train.model import Transformer
from train.run_dir import load_run_config
from train.synthetic import write_markov_dataset
from train.trainer import NonFiniteLossError, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def markov(tmp_path_factory):
    return write_markov_dataset(str(tmp_path_factory.mktemp("markov")), 60_000, vocab_size=128, branching=3,
                                seed=0, shard_tokens=8192)


def tiny(**overrides):
    base = {"tensorboard": "false", "log_every": "1", "max_steps": "12", "warmup_steps": "3",
            "checkpoint_every": "5", "keep_checkpoints": "10", "seq_len": "32", "global_batch_tokens": "256",
            "micro_batch_size": "4"}
    return apply_overrides(preset("tiny"), {**base, **{k: str(v) for k, v in overrides.items()}})


def step_records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["kind"] == "step"]


def weights(checkpoint_dir, run_dir):
    cfg = load_run_config(run_dir)
    return read_weights(checkpoint_dir, {n: p.shape for n, p in Transformer(cfg).named_parameters()})


def test_tiny_model_learns_far_below_the_unigram_entropy(markov, tmp_path, capsys):
    cfg = apply_overrides(preset("tiny"), {"tensorboard": "false", "max_steps": "200", "log_every": "50",
                                           "micro_batch_size": "16", "checkpoint_every": "200"})
    summary = train(cfg, markov["directory"], str(tmp_path / "run"))
    losses = [r["loss"] for r in step_records(tmp_path / "run")]
    out = capsys.readouterr().out
    print(f"unigram entropy {markov['unigram_entropy']:.3f} nats, chain entropy <= {markov['max_entropy_rate']:.3f}, "
          f"losses {[round(x, 3) for x in losses]}")
    assert summary["steps"] == 200 and summary["tokens"] == 200 * 1024
    assert losses[-1] < 0.4 * markov["unigram_entropy"]          # ~4.4 nats: the model uses the context
    assert losses[-1] < markov["max_entropy_rate"] + 0.3
    assert "step 200/200 [########################] 100%" in out and "final loss" in out


def test_resume_repeats_the_uninterrupted_run_bitwise(markov, tmp_path):
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    train(tiny(), markov["directory"], whole)
    train(tiny(), markov["directory"], parts, stop_at_step=7)          # checkpoints at 5 and 7
    shutil.rmtree(os.path.join(parts, "checkpoints", "step-00000007"))  # as if it died after step 7 unsaved
    summary = train(tiny(), markov["directory"], parts, resume=True)    # redoes 6 and 7 from step 5
    a, b = step_records(whole), step_records(parts)
    assert [r["step"] for r in b] == list(range(1, 13))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]             # exact float equality
    assert [r["grad_norm"] for r in a] == [r["grad_norm"] for r in b]
    wa = weights(os.path.join(whole, "checkpoints", "step-00000012"), whole)
    wb = weights(os.path.join(parts, "checkpoints", "step-00000012"), parts)
    assert all(torch.equal(wa[n], wb[n]) for n in wa)
    assert summary["steps"] == 12 and summary["tokens"] == 12 * 256


def _poison_forward(monkeypatch, bad_calls):
    """Make the model's output NaN on the given forward calls (0-based), a real NaN through backward."""
    real_build = trainer_module.build_model

    def build(cfg, rt):
        model = real_build(cfg, rt)
        calls = {"n": 0}

        def hook(module, inputs, output):
            calls["n"] += 1
            return output * float("nan") if calls["n"] - 1 in bad_calls else output
        model.register_forward_hook(hook)
        return model
    monkeypatch.setattr(trainer_module, "build_model", build)


def test_a_non_finite_step_is_skipped_without_an_update(markov, tmp_path, monkeypatch):
    # 2 micro-steps per step: forward calls 4 and 5 are step 3's
    _poison_forward(monkeypatch, {4})
    run = str(tmp_path / "run")
    train(tiny(checkpoint_every=1, max_steps=5, micro_batch_size=4, global_batch_tokens=256), markov["directory"], run)
    ckpts = dict(list_checkpoints(os.path.join(run, "checkpoints")))
    w2, w3, w4 = (weights(ckpts[s], run) for s in (2, 3, 4))
    assert all(torch.equal(w2[n], w3[n]) for n in w2)                  # step 3 changed nothing
    assert not all(torch.equal(w3[n], w4[n]) for n in w3)              # step 4 trained again
    with open(os.path.join(run, "metrics.jsonl")) as f:
        skipped = [r for r in map(json.loads, f) if r["kind"] == "skipped"]
    assert [r["step"] for r in skipped] == [3] and skipped[0]["loss"] == "nan"
    with open(os.path.join(run, "summary.json")) as f:
        assert json.load(f)["skipped_steps"] == 1


def test_too_many_non_finite_steps_in_a_row_stop_the_run(markov, tmp_path, monkeypatch):
    _poison_forward(monkeypatch, set(range(4, 100)))
    run = str(tmp_path / "run")
    with pytest.raises(NonFiniteLossError, match="3 steps in a row \\(up to step 5\\)"):
        train(tiny(checkpoint_every=2, max_steps=10, max_bad_steps=3), markov["directory"], run)
    ckpts = dict(list_checkpoints(os.path.join(run, "checkpoints")))
    assert sorted(ckpts) == [2, 4]                                      # step 4's holds step 2's weights
    w2, w4 = weights(ckpts[2], run), weights(ckpts[4], run)
    assert all(torch.equal(w2[n], w4[n]) for n in w2)


def test_a_crash_during_a_save_leaves_the_last_checkpoint_loadable(markov, tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    cfg = tiny(checkpoint_every=2, max_steps=8, keep_checkpoints=2)
    train(cfg, markov["directory"], run, stop_at_step=4)
    real_write = checkpoint_module.write_json_atomic

    def crash(path, data):
        if data.get("step") == 6:
            raise OSError("disk full")
        real_write(path, data)
    monkeypatch.setattr(checkpoint_module, "write_json_atomic", crash)
    with pytest.raises(OSError, match="disk full"):
        train(cfg, markov["directory"], run, resume=True)
    ckpt_dir = os.path.join(run, "checkpoints")
    assert [s for s, _ in list_checkpoints(ckpt_dir)] == [2, 4]
    assert ".tmp-step-00000006" in os.listdir(ckpt_dir)                 # the half-written save
    monkeypatch.setattr(checkpoint_module, "write_json_atomic", real_write)
    summary = train(cfg, markov["directory"], run, resume=True)
    assert summary["steps"] == 8
    assert sorted(os.listdir(ckpt_dir)) == ["step-00000006", "step-00000008"]   # last 2 kept, debris gone


def test_resumes_that_cannot_be_right_are_refused(markov, tmp_path):
    run = str(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        train(tiny(), markov["directory"], run, resume=True)
    train(tiny(max_steps=2, warmup_steps=1, checkpoint_every=2), markov["directory"], run)
    with pytest.raises(ValueError, match="already holds checkpoints: pass --resume"):
        train(tiny(max_steps=2, warmup_steps=1), markov["directory"], run)
    with pytest.raises(ValueError, match="cannot resume with a different dim 64 -> 96"):
        train(tiny(dim=96, max_steps=4), markov["directory"], run, resume=True)
    other = write_markov_dataset(str(tmp_path / "other"), 20_000, vocab_size=128, seed=1)
    with pytest.raises(ValueError, match="the checkpoint's data has num_tokens"):
        train(tiny(max_steps=4), other["directory"], run, resume=True)
    with pytest.raises(ValueError, match="vocabulary \\(128\\) is larger than the model's vocab_size 100"):
        train(tiny(vocab_size=100), markov["directory"], str(tmp_path / "small-vocab"))


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_loading_refuses_pickles_that_are_not_checkpoint_bookkeeping(markov, tmp_path):
    import io
    import pickle

    from torch.distributed.checkpoint.api import CheckpointException

    from train.safe_reader import SafeLoadPlanner
    run = str(tmp_path / "run")
    train(tiny(max_steps=2, warmup_steps=1, checkpoint_every=2), markov["directory"], run)
    meta = os.path.join(run, "checkpoints", "step-00000002", ".metadata")
    with open(meta, "wb") as f:
        pickle.dump(Exploit(), f)
    with pytest.raises(CheckpointException, match="posix.system, which is not checkpoint bookkeeping"):
        train(tiny(max_steps=4, warmup_steps=1), markov["directory"], run, resume=True)
    buf = io.BytesIO()
    torch.save(Exploit(), buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        SafeLoadPlanner().load_bytes(None, buf)
    assert not os.path.exists("pwned") and not os.path.exists(tmp_path / "pwned")


def test_metadata_unpickler_refuses_classes_that_dcp_modules_only_import():
    import io
    import pickle

    from train.safe_reader import MetadataUnpickler
    for module, name in (("torch.distributed.checkpoint.filesystem", "Tensor"),
                         ("torch.distributed.checkpoint.metadata", "Enum")):
        crafted = f"c{module}\n{name}\n)R.".encode()           # GLOBAL, empty tuple, REDUCE: call it
        with pytest.raises(pickle.UnpicklingError, match=f"refers to {module}.{name}"):
            MetadataUnpickler(io.BytesIO(crafted)).load()
    own = MetadataUnpickler(io.BytesIO(b"ctorch.distributed.checkpoint.metadata\nStorageMeta\n)R.")).load()
    assert type(own).__name__ == "StorageMeta"


def test_checkpoint_storage_outside_its_directory_is_refused(tmp_path):
    import dataclasses
    import pickle
    import warnings

    import torch.distributed.checkpoint as dcp

    from train.safe_reader import SafeFileSystemReader
    ckpt = tmp_path / "ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"w": torch.ones(3)}, checkpoint_id=str(ckpt), no_dist=True)
    SafeFileSystemReader(str(ckpt)).read_metadata()          # the real one reads
    with open(ckpt / ".metadata", "rb") as f:
        meta = pickle.load(f)                                 # written by this test: trusted
    meta.storage_data = {k: dataclasses.replace(v, relative_path="../../etc/passwd")
                         for k, v in meta.storage_data.items()}
    with open(ckpt / ".metadata", "wb") as f:
        pickle.dump(meta, f)
    with pytest.raises(pickle.UnpicklingError, match="points outside its checkpoint"):
        SafeFileSystemReader(str(ckpt)).read_metadata()


def test_command_line_resume_needs_only_the_run_directory(markov, tmp_path, capsys):
    import argparse

    from train.cli import add_parser
    parser = argparse.ArgumentParser(prog="smallgiant")
    add_parser(parser.add_subparsers(dest="job"))

    def run(*argv):
        args, extra = parser.parse_known_args(["train", *argv])
        return args.func(args, extra)

    out = str(tmp_path / "run")
    assert run("--config", "tiny", "--data", markov["directory"], "--output", out, "--stop-at-step", "2",
               "max_steps=4", "warmup_steps=1", "seq_len=32", "--global-batch-tokens", "256", "tensorboard=false") == 0
    with pytest.raises(ValueError, match="--config 7b: the run in .* was started with tiny"):
        run("--resume", "--output", out, "--config", "7b")
    assert run("--resume", "--output", out) == 0
    assert "to step 4/4" in capsys.readouterr().out
    assert [r["step"] for r in step_records(out)] == [2, 4]
