"""The trainer's parallelism and throughput choices: per-GPU memory estimates and the micro-batches they
choose, FSDP2 units that keep one process's dtypes on many (torchrun, gloo), HSDP on a 2 x 2 mesh matching
one process and resuming on another shape, steps queued without host synchronisation (the non-finite
skip decided on the device), the garbage collector's schedule, and throughput clocked after warm-up.

Run by torchrun, this file is also the worker of the multi-process tests (`python tests/test_train_parallel.py
dtypes OUT`)."""
from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import checkpoint_weights, run_losses
from train.config import (PRESET_GPUS, apply_overrides, choose_micro_batch, fits, memory_estimate, preset,
                          resolve_grad_sync)
from train.metrics import Throughput

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"tensorboard": "false", "log_every": "1", "max_steps": "6", "warmup_steps": "2", "checkpoint_every": "4",
         "seq_len": "32", "global_batch_tokens": "512", "micro_batch_size": "2", "vocab_size": "128"}


def small(**overrides):
    return apply_overrides(preset("tiny"), {**SMALL, **{k: str(v) for k, v in overrides.items()}})


def torchrun(nproc: int, *args: str, timeout: int = 120) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    return out


# --- memory estimate and micro-batch choice ----------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PRESET_GPUS))
def test_paper_presets_give_each_gpu_8k_tokens_per_micro_step_where_memory_allows(name):
    cfg, gpus = preset(name).resolved(), PRESET_GPUS[name]
    assert fits(cfg, memory_estimate(cfg, gpus))
    if cfg.micro_batch_size * cfg.seq_len < 8192:         # then twice as many sequences would not fit
        assert not fits(cfg, memory_estimate(dataclasses.replace(cfg, micro_batch_size=2 * cfg.micro_batch_size), gpus))
    assert preset("7b").micro_batch_size * 2048 == 8192     # the README's 4 x 8 GPUs: 16 micro-steps, not 64


def test_the_estimate_shards_state_over_one_replica_and_counts_unsharded_gradients_in_reduce_dtype():
    cfg = preset("7b").resolved()
    fsdp = memory_estimate(cfg, 32, grad_sync="last")
    hsdp = memory_estimate(dataclasses.replace(cfg, dp_replicate=4, dp_shard=8), 32, grad_sync="last")
    assert hsdp["AdamW moments, fp32, sharded"] == pytest.approx(4 * fsdp["AdamW moments, fp32, sharded"])
    n = fsdp["weights, fp32, sharded"] * 32 / 4
    assert fsdp["unsharded gradients between micro-steps"] == pytest.approx(4 * n)
    bf16 = memory_estimate(dataclasses.replace(cfg, reduce_dtype="bfloat16"), 32, grad_sync="last")
    assert bf16["unsharded gradients between micro-steps"] == pytest.approx(2 * n)
    assert memory_estimate(cfg, 32, grad_sync="every")["unsharded gradients between micro-steps"] == 0
    with pytest.raises(ValueError, match="dp_replicate 3 x dp_shard 8 must equal the 32 processes"):
        memory_estimate(dataclasses.replace(cfg, dp_replicate=3, dp_shard=8), 32)


def test_less_memory_gives_up_gradient_accumulation_first_then_micro_batch_size():
    cfg = preset("7b").resolved()
    assert (choose_micro_batch(cfg, 32), resolve_grad_sync(cfg, 32)) == (4, "last")
    cfg = dataclasses.replace(cfg, gpu_memory_gib=40)
    assert (choose_micro_batch(cfg, 32), resolve_grad_sync(cfg, 32)) == (4, "every")
    assert choose_micro_batch(dataclasses.replace(cfg, gpu_memory_gib=24), 32) < 4


def test_dry_run_prints_the_per_gpu_memory_estimate(capsys):
    from train.cli import dry_run_report
    out = dry_run_report(apply_overrides(preset("7b"), {"dp_shard": "32"}), None)
    assert "16 micro-steps of 4 sequence(s) on each of 32 process(es)" in out
    assert "32 process(es) = 1 replica(s) x 32 shard(s), gradients reduced in float32 on the last micro-step" in out
    assert "activations, selective checkpointing, 8192 tokens" in out
    assert "fits in 72 GiB (90% of gpu_memory_gib 80)" in out
    tight = dry_run_report(apply_overrides(preset("7b"), {"dp_shard": "32", "gpu_memory_gib": "24"}), None)
    assert "DOES NOT FIT" in tight and "the estimate would choose micro_batch_size" in tight


# --- FSDP2 units and dtypes on 1 and 2 processes ------------------------------------------------------

def record_dtypes(cfg, rt) -> dict:
    """Dtypes entering and leaving a block and the final norm in a bf16 forward pass, and which weights
    are still gathered after it (a plain tensor: gathered; a DTensor: sharded again)."""
    from torch.distributed.tensor import DTensor

    from train.parallel import build_model
    model = build_model(cfg, rt)
    seen = {}
    model.layers[0].register_forward_pre_hook(lambda m, args: seen.update(block_inputs=[str(a.dtype) for a in args]))
    model.layers[0].register_forward_hook(lambda m, args, out: seen.update(block_output=str(out.dtype)))
    model.norm.register_forward_pre_hook(lambda m, args: seen.update(norm_input=str(args[0].dtype)))
    tokens = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len), generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(tokens)
    units = {"tok_embeddings": model.tok_embeddings.weight, "first block": model.layers[0].attention.wq.weight,
             "last block": model.layers[-1].attention.wq.weight, "output": model.output.weight}
    seen["gathered_after_forward"] = {k: not isinstance(p, DTensor) for k, p in units.items()}
    return seen


def test_one_and_two_processes_run_blocks_in_the_same_dtypes(tmp_path):
    out = tmp_path / "two.json"
    proc = torchrun(2, "tests/test_train_parallel.py", "dtypes", str(out))
    from train.parallel import Runtime
    cfg = small(precision="bf16", n_layers=3)
    one = record_dtypes(cfg, Runtime(0, 1, 0, torch.device("cpu")))
    finish(proc)
    two = json.loads(out.read_text())
    fp32 = "torch.float32"
    assert one["block_inputs"] == [fp32, fp32, fp32]     # residual stream, cos, sin
    assert one["block_output"] == fp32 and one["norm_input"] == fp32
    assert {k: two[k] for k in one if k != "gathered_after_forward"} == {k: v for k, v in one.items()
                                                                        if k != "gathered_after_forward"}
    # resharded after forward: embedding and blocks; kept for the backward pass: the last block and output
    assert two["gathered_after_forward"] == {"tok_embeddings": False, "first block": False, "last block": True,
                                             "output": True}


def dtypes_worker(out: str) -> None:
    from train.parallel import setup, teardown
    cfg = small(precision="bf16", n_layers=3)
    rt = setup(cfg)
    seen = record_dtypes(cfg, rt)
    if rt.is_main:
        with open(out, "w") as f:
            json.dump(seen, f)
    teardown(rt)


# --- HSDP: 2 replicas x 2 shards -----------------------------------------------------------------------

@pytest.mark.usefixtures("one_torch_thread")
def test_hsdp_on_2_x_2_processes_matches_one_and_resumes_on_one(tmp_path):
    from train.synthetic import write_markov_dataset
    from train.trainer import train
    data = write_markov_dataset(str(tmp_path / "data"), 20_000, vocab_size=128, seed=3)["directory"]
    one, hsdp = str(tmp_path / "one"), str(tmp_path / "hsdp")
    proc = torchrun(4, "-m", "train", "--config", "tiny", "--data", data, "--output", hsdp, "--stop-at-step", "4",
                    "dp_replicate=2", "dp_shard=2", *[f"{k}={v}" for k, v in SMALL.items() if k != "vocab_size"])
    train(small(vocab_size=0), data, one)
    out = finish(proc)
    assert "on 4 x cpu; 2 micro-steps of 2 x 32 tokens per step" in out     # accumulation over 2 micro-steps
    ref, got = run_losses(one), run_losses(hsdp)
    assert sorted(got) == [1, 2, 3, 4]
    for step in got:
        assert got[step] == pytest.approx(ref[step], rel=1e-5)
    assert max_relative_difference(checkpoint_weights(one, 4), checkpoint_weights(hsdp, 4)) < 1e-5

    train(small(vocab_size=0), data, hsdp, resume=True)                     # 2 x 2 -> 1 process
    resumed = run_losses(hsdp)
    for step in (5, 6):
        assert resumed[step] == pytest.approx(ref[step], rel=1e-5)
    assert max_relative_difference(checkpoint_weights(one, 6), checkpoint_weights(hsdp, 6)) < 1e-5


def max_relative_difference(a: dict, b: dict) -> float:
    """Per tensor, |a - b| / |a| (Frobenius norms). Not elementwise: summation order differs between one
    process and a sharded mesh, and AdamW's normalised update magnifies that in elements whose gradient
    nearly cancels."""
    return max(float((a[n] - b[n]).norm() / a[n].norm()) for n in a)


# --- the step: no host synchronisation, the skip on the device, the GC schedule ------------------------

class Synced(AssertionError):
    """A device tensor was read back on the host."""


def _refuse(*args, **kwargs):
    raise Synced("host synchronisation inside a queued step")


@pytest.fixture
def runner_parts(tmp_path):
    from tokenizer.shard_format import TokenDataset
    from train.data import SequenceLoader
    from train.optim import build_optimizer
    from train.parallel import Runtime, build_model
    from train.synthetic import write_markov_dataset
    cfg = small(fused_adamw="on", micro_batch_size=8, global_batch_tokens=256).resolved()
    data = write_markov_dataset(str(tmp_path / "data"), 5_000, vocab_size=128, seed=1)["directory"]
    rt = Runtime(0, 1, 0, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model(cfg, rt)
    loader = SequenceLoader(TokenDataset(data), cfg.seq_len, cfg.global_batch_sequences, cfg.micro_batch_size)
    return model, build_optimizer(model, cfg, rt.device), loader, cfg, rt


@pytest.mark.usefixtures("one_torch_thread")
def test_queued_steps_never_sync_and_a_non_finite_step_changes_nothing_on_the_device(runner_parts, monkeypatch):
    from train.trainer import StepRunner
    model, optimizer, loader, cfg, rt = runner_parts
    runner = StepRunner(model, optimizer, loader, cfg, rt)
    clean_loss = runner.loss_fn
    runner.loss_fn = lambda logits, targets: clean_loss(logits, targets) * (float("nan") if runner.steps_run == 1
                                                                            else 1.0)
    snapshots = []
    with monkeypatch.context() as m:
        for name in ("item", "tolist", "__bool__", "__float__"):
            m.setattr(torch.Tensor, name, _refuse)
        for step in range(3):
            runner.run(step)
            snapshots.append(({n: p.detach().clone() for n, p in model.named_parameters()},
                              {k: v.clone() for k, v in optimizer.state[model.output.weight].items()}))
    figures = runner.drain()
    runner.close()
    assert [f.step for f in figures] == [0, 1, 2] and [f.applied for f in figures] == [True, False, True]
    assert figures[1].loss != figures[1].loss and figures[0].loss == pytest.approx(figures[2].loss, rel=0.2)
    (w0, s0), (w1, s1), (w2, s2) = snapshots
    assert all(torch.equal(w0[n], w1[n]) for n in w0)                   # the skipped step: weights as they were,
    assert all(torch.equal(s0[k], s1[k]) for k in s0)                   # moments and step count too
    assert not all(torch.equal(w1[n], w2[n]) for n in w1) and s2["step"].item() == 2
    assert runner.drain() == []


def test_the_garbage_collector_runs_on_the_step_schedule_only(runner_parts, monkeypatch):
    from train.trainer import StepRunner
    model, optimizer, loader, cfg, rt = runner_parts
    collected = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: collected.append(generation) or 0)
    assert gc.isenabled()
    runner = StepRunner(model, optimizer, loader, dataclasses.replace(cfg, gc_every=2), rt)
    assert not gc.isenabled() and collected == [2]                      # a full collection before step 1
    for step in range(5):
        runner.run(step)
    assert collected == [2, 1, 1]                                       # after steps 2 and 4
    runner.close()
    assert gc.isenabled()


def test_gradient_sync_only_on_the_last_micro_step(runner_parts):
    from train.trainer import StepRunner
    model, optimizer, loader, cfg, rt = runner_parts
    calls = []
    model.set_requires_gradient_sync = calls.append                    # what an FSDP2 module would be told
    cfg = dataclasses.replace(cfg, micro_batch_size=2, grad_sync="last")
    loader.micro_batch = 2
    runner = StepRunner(model, optimizer, loader, cfg, rt)
    runner.run(0)
    assert calls == [False, False, False, True]
    calls.clear()
    StepRunner(model, optimizer, loader, dataclasses.replace(cfg, grad_sync="every"), rt).run(1)
    assert calls == []


def test_attention_backends_are_selectable_and_checkpointed_blocks_compile_without_graph_breaks():
    from torch.nn.attention import SDPBackend

    from train.model import Transformer, rotary_tables
    from train.parallel import apply_activation_checkpointing
    cfg = small(attention_backend="math", activation_checkpointing="selective")
    model = Transformer(cfg)
    assert model.layers[0].attention.backends == [SDPBackend.MATH]
    apply_activation_checkpointing(model, cfg.activation_checkpointing)
    x = torch.randn(2, cfg.seq_len, cfg.dim, requires_grad=True)
    cos, sin = rotary_tables(cfg.seq_len, cfg.head_dim, cfg.rope_theta, x.device)
    compiled = torch.compile(model.layers[0], fullgraph=True, backend="eager")     # tracing only: a break raises
    out = compiled(x, cos, sin)
    out.sum().backward()
    assert torch.allclose(out, model.layers[0](x, cos, sin)) and x.grad is not None
    with pytest.raises(ValueError, match="attention_backend must be one of"):
        small(attention_backend="fast").validate()


# --- throughput after warm-up ----------------------------------------------------------------------------

def test_throughput_and_mfu_leave_out_the_warm_up_steps(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("train.metrics.time.time", lambda: now[0])
    tp = Throughput(tokens_per_step=1000, flops_per_token=1.0, peak_flops=1e4, devices=1, warmup_steps=2)
    for seconds in (30.0, 10.0):                          # warm-up: compilation, first allocations
        now[0] += seconds
        tp.tick()
    assert tp.measure() == (pytest.approx(2000 / 40), None)   # the warm-up's own rate, no MFU
    for _ in range(4):
        now[0] += 0.5
        tp.tick()
    tokens_per_s, mfu = tp.measure()
    assert tokens_per_s == pytest.approx(2000) and mfu == pytest.approx(0.2)
    assert tp.mean_mfu == pytest.approx(0.2)


if __name__ == "__main__":
    if sys.argv[1] == "dtypes":
        dtypes_worker(sys.argv[2])
