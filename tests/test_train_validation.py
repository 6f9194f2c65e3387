"""Validation loss on held-out documents: the shard job sets a hash-chosen, capped share of each source
aside as `val/<source>/` token datasets that never enter the training shards, and the trainer reports
each source's loss on them every `val_every` steps (metrics.jsonl, console), computed exactly as the mean
token cross-entropy over the sequences it names, the same over any number of processes."""
from __future__ import annotations

import json
import math
import os
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm
import torch
import torch.nn.functional as F

from pipeline.schema import DOC_SCHEMA, Document
from tokenizer.manifest import load_manifest
from tokenizer.shard_format import TokenDataset, write_token_dataset
from tokenizer.shards import ShardConfig, run, val_key
from train.config import apply_overrides, preset
from train.parallel import Runtime
from train.synthetic import markov_documents, write_markov_dataset
from train.trainer import Validation, train

LOCAL = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda river stone cloud".split()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two sources of 120 documents each (unique texts), a tokenizer, and a manifest taking each about twice
    (over one epoch: every training document appears at least once)."""
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    texts = {name: [f"{name} {i} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30)))
                    for i in range(120)] for name in ("web", "wiki")}
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts["web"] + texts["wiki"]), model_prefix=str(root / "tokenizer"),
                                   vocab_size=300, model_type="bpe", byte_fallback=True, bos_id=1, eos_id=2, unk_id=0,
                                   num_threads=1, minloglevel=2)
    for name, docs in texts.items():
        (root / name).mkdir()
        rows = [Document(f"{name}/{i}", "", name, t).to_row() for i, t in enumerate(docs)]
        pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), root / name / "part-00000.parquet")
    (root / "m.yaml").write_text("name: t\nseed: 3\nshard_tokens: 2048\nsources:\n"
                                 "  web: {share: 0.5, epochs: 2.0, paths: ['web/*.parquet']}\n"
                                 "  wiki: {share: 0.5, epochs: 2.0, paths: ['wiki/*.parquet']}\n")
    return root, texts


def _docs(directory):
    return [tuple(d.tolist()) for d in TokenDataset(str(directory)).documents()]


def test_the_shard_job_holds_out_a_capped_hash_chosen_share_that_training_never_sees(corpus, tmp_path):
    root, texts = corpus
    summary_out = tmp_path / "out"
    run(ShardConfig(load_manifest(str(root / "m.yaml")), str(root), str(summary_out), val_share=0.1, val_docs=8), LOCAL)
    sp = spm.SentencePieceProcessor(model_file=str(root / "tokenizer.model"))
    training = _docs(summary_out)
    with open(summary_out / "dataset.json") as f:
        report = json.load(f)["validation"]
    for source, docs in texts.items():
        candidates = sorted((val_key(source, f"{source}/{i}"), i) for i in range(len(docs))
                            if val_key(source, f"{source}/{i}") < 0.1)
        assert len(candidates) > 8                               # the cap, not the share, binds here
        chosen = [i for _, i in candidates[:8]]
        held = _docs(summary_out / "val" / source)
        assert held == [tuple(sp.encode(docs[i]) + [2]) for i in chosen]   # the 8 lowest hashes, in hash order
        assert report["sources"][source]["documents"] == 8
        assert not set(held) & set(training)                     # never trained on
        kept = [tuple(sp.encode(t) + [2]) for i, t in enumerate(docs) if i not in chosen]
        assert all(d in training for d in kept)                  # the other candidates went back to training
    assert len(set(training)) == 2 * 120 - 2 * 8


def tiny(**overrides):
    base = {"tensorboard": "false", "log_every": "2", "max_steps": "6", "warmup_steps": "2", "checkpoint_every": "6",
            "seq_len": "32", "global_batch_tokens": "256", "micro_batch_size": "4", "val_every": "3",
            "val_tokens": "320"}
    return apply_overrides(preset("tiny"), {**base, **{k: str(v) for k, v in overrides.items()}})


@pytest.fixture(scope="module")
def data_with_val(tmp_path_factory):
    """A training dataset with val/a and val/b: held-out Markov documents of the same chain, same tokenizer."""
    root = str(tmp_path_factory.mktemp("data"))
    write_markov_dataset(root, 20_000, vocab_size=128, seed=4)
    held = markov_documents(24_000, 128, 3, seed=4)[-12:]   # the same chain (the seed picks it), past the training tokens
    for name, docs in (("a", held[:6]), ("b", held[6:])):
        write_token_dataset(os.path.join(root, "val", name), docs, shard_tokens=4096, vocab_size=128)
    return root


def test_the_trainer_logs_each_sources_validation_loss_every_n_steps(data_with_val, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    train(tiny(), data_with_val, run_dir)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        val = [r for r in map(json.loads, f) if r["kind"] == "val"]
    assert [r["step"] for r in val] == [3, 6]
    assert all(sorted(r["loss"]) == ["a", "b"] and r["sequences"] == {"a": 10, "b": 10} for r in val)
    assert all(math.isfinite(x) and x < math.log(128) + 0.5 for r in val for x in r["loss"].values())
    assert val[1]["loss"]["a"] < val[0]["loss"]["a"]            # it learns the chain the held-out text follows
    assert "step 6: validation loss (held-out documents) a " in capsys.readouterr().out


def test_validation_loss_is_the_mean_token_loss_and_the_same_on_two_processes(data_with_val):
    cfg = tiny().resolved(128)
    torch.manual_seed(0)
    from train.model import Transformer, init_weights
    model = Transformer(cfg)
    init_weights(model, cfg)
    val_dir = os.path.join(data_with_val, "val")
    train_data = TokenDataset(data_with_val)
    one = Validation.find(val_dir, train_data, cfg, Runtime(0, 1, 0, torch.device("cpu")))
    losses, sequences = one.evaluate(model)
    ds = TokenDataset(os.path.join(val_dir, "a"))
    n = ds.num_sequences(cfg.seq_len)
    rows = torch.from_numpy(np.stack([ds.sequence(i % n, cfg.seq_len) for i in range(10)]).astype(np.int64))
    with torch.no_grad():
        expected = F.cross_entropy(model(rows[:, :-1]).flatten(0, 1), rows[:, 1:].flatten()).item()
    assert losses["a"] == pytest.approx(expected, rel=1e-6) and sequences["a"] == 10
    # two processes: each takes half of the same sequences
    halves = [Validation.find(val_dir, train_data, cfg, Runtime(r, 2, r, torch.device("cpu"))) for r in (0, 1)]
    assert halves[0]._slice(ds) + halves[1]._slice(ds) == one._slice(ds)


def test_a_separate_validation_dataset_and_a_foreign_tokenizer(data_with_val, tmp_path):
    other = write_token_dataset(str(tmp_path / "held"), markov_documents(24_000, 128, 3, seed=4)[-4:],
                                shard_tokens=4096, vocab_size=128)
    run_dir = str(tmp_path / "run")
    train(tiny(max_steps=3), data_with_val, run_dir, val_data=other)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        assert [sorted(r["loss"]) for r in map(json.loads, f) if r["kind"] == "val"] == [["held"]]
    foreign = write_token_dataset(str(tmp_path / "foreign"), markov_documents(24_000, 128, 3, seed=4)[-4:],
                                  shard_tokens=4096, vocab_size=128, tokenizer_sha256="ab" * 32)
    with pytest.raises(ValueError, match="made with another tokenizer"):
        train(tiny(max_steps=3), data_with_val, str(tmp_path / "run2"), val_data=foreign)


def test_the_demo_report_draws_each_sources_validation_curve_beside_training_loss(tmp_path):
    from smallgiant.report.collect import _training
    from smallgiant.report.page import _training_html
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"name": "tiny", "vocab_size": 128, "seq_len": 32, "dim": 64,
                                                   "n_layers": 2, "lr": 3e-3}))
    (model / "summary.json").write_text(json.dumps({"parameters": 1000, "steps": 4, "tokens": 1024, "final_loss": 3.0,
                                                    "train_seconds": 1.0}))
    records = [{"kind": "step", "step": s, "loss": 5.0 - s / 2, "tokens_per_s": 100.0} for s in (2, 4)]
    records += [{"kind": "val", "step": s, "loss": {"web": 5.1 - s / 3, "wiki": 5.2 - s / 4}, "sequences": {}}
                for s in (2, 4)]
    (model / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    t = _training(str(tmp_path))
    assert t["val_curves"] == {"web": [{"step": 2, "loss": 5.1 - 2 / 3}, {"step": 4, "loss": 5.1 - 4 / 3}],
                               "wiki": [{"step": 2, "loss": 4.7}, {"step": 4, "loss": 4.2}]}
    html = _training_html({"training": t, "generation": None})
    assert "training and validation loss against step" in html and "held-out documents" in html
    assert "<td>wiki</td><td>4.700</td><td>4.200</td><td>4</td>" in html
    (model / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:2]))
    assert "No validation loss" in _training_html({"training": _training(str(tmp_path)), "generation": None})
