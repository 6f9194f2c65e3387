"""import-hf: a Hugging Face LlamaForCausalLM directory becomes a run at step 0 whose model gives
transformers' logits, that `train --resume` continues as a fresh AdamW would, and whose export is the
same checkpoint again; the export scores a continuation as lm-evaluation-harness does, equal to ours."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from test_train_export import hf_tokenizer_dir, our_model
from tokenizer.shard_format import TokenDataset, write_token_dataset
from train.cli import add_parser
from train.data import SequenceLoader
from train.export_hf import export_hf, from_half_split_rotary, to_half_split_rotary
from train.import_hf import import_hf
from train.optim import build_optimizer
from train.parallel import Runtime
from train.run_dir import load_run_config, load_run_info
from train.synthetic import markov_documents
from train.trainer import StepRunner

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")
VOCAB, SEQ = 128, 32
TRAINING = {"max_steps": "2", "warmup_steps": "1", "global_batch_tokens": "128", "micro_batch_size": "2",
            "log_every": "1", "tensorboard": "false", "activation_checkpointing": "none"}


def smallgiant(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="smallgiant")
    add_parser(parser.add_subparsers(dest="job"))
    args, extra = parser.parse_known_args(["train", *argv])
    return args.func(args, extra)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A random tiny LlamaForCausalLM saved whole and in shards, with a tokenizer, and a dataset."""
    root = tmp_path_factory.mktemp("import")
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, max_position_embeddings=SEQ, initializer_range=0.1)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():       # norms away from ones, so that swapping two of them would show
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    for name, shard_size in (("single", "1GB"), ("sharded", "20KB")):
        model.save_pretrained(str(root / name), max_shard_size=shard_size)
        hf_tokenizer_dir(str(root / name), VOCAB)
    docs = markov_documents(4_000, vocab_size=VOCAB, branching=3, seed=1)
    data = write_token_dataset(str(root / "data"), docs, shard_tokens=4096, vocab_size=VOCAB)
    return {"root": root, "model": model, "data": data, "single": str(root / "single"),
            "sharded": str(root / "sharded")}


@pytest.fixture(scope="module")
def imported(source):
    run = str(source["root"] / "run")
    assert smallgiant("import-hf", source["single"], "--output", run, "--data", source["data"],
                      *[f"--{k.replace('_', '-')}={v}" for k, v in TRAINING.items()]) == 0
    return run


def tokens(seed: int, n: int = SEQ) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(3, VOCAB, size=(2, n))).long()


def test_rotary_permutations_are_inverse():
    w = torch.randn(16, 3)
    assert torch.equal(from_half_split_rotary(to_half_split_rotary(w, 2), 2), w)
    assert not torch.equal(from_half_split_rotary(w, 2), w)


@pytest.mark.parametrize("layout", ["single", "sharded"])
def test_imported_model_gives_transformers_logits(source, imported, tmp_path, layout):
    run = imported
    if layout == "sharded":
        run = str(tmp_path / "run")
        import_hf(source["sharded"], run, source["data"], overrides=TRAINING)
        assert len(load_run_info(run)["imported_from"]["weights"]) > 2
    x = tokens(0)
    with torch.no_grad():
        expected = source["model"](x).logits
        got = our_model(run)(x)
    assert (got - expected).abs().max().item() < 1e-5, (got - expected).abs().max().item()
    assert expected.abs().max().item() > 0.5
    cfg = load_run_config(run)
    shape = (cfg.dim, cfg.n_layers, cfg.n_heads, cfg.hidden_dim, cfg.vocab_size, cfg.seq_len)
    assert shape == (32, 2, 4, 64, VOCAB, SEQ)
    assert cfg.max_steps == 2


def test_run_records_and_copies_the_tokenizer(source, imported):
    info = load_run_info(imported)["imported_from"]
    assert info["hf_dir"] == os.path.abspath(source["single"])
    assert info["tokenizer"]["sentencepiece_model"] is None
    assert "tokenizer.json" in info["tokenizer"]["files"]
    tok = transformers.AutoTokenizer.from_pretrained(os.path.join(imported, "tokenizer", "hf"))
    assert tok("t5 t9 t100")["input_ids"][-3:] == [5, 9, 100]
    with open(os.path.join(imported, "checkpoints", "step-00000000", "trainer_state.json")) as f:
        state = json.load(f)
    assert (state["step"], state["tokens"], state["loader"]["cursor"]) == (0, 0, 0)


def test_export_import_export_is_identical(source, imported, tmp_path):
    first, second = str(tmp_path / "hf1"), str(tmp_path / "hf2")
    export_hf(imported, first, dtype="float32", max_shard_bytes=30_000)
    import_hf(first, str(tmp_path / "again"), source["data"], overrides=TRAINING)
    export_hf(str(tmp_path / "again"), second, dtype="float32", max_shard_bytes=30_000)
    a, b = read_tensors(first), read_tensors(second)
    assert sorted(a) == sorted(b) and len(a) == 2 + 2 * 9 + 1
    assert all(torch.equal(a[name], b[name]) for name in a), [n for n in a if not torch.equal(a[n], b[n])]
    original = source["model"].state_dict()
    assert all(torch.equal(a[name], original[name]) for name in a)
    with open(os.path.join(first, "config.json")) as f1, open(os.path.join(second, "config.json")) as f2:
        assert json.load(f1) == json.load(f2)
    assert os.path.exists(os.path.join(second, "tokenizer.json"))


def read_tensors(directory: str) -> dict[str, torch.Tensor]:
    out = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".safetensors"):
            out.update(safetensors_torch.load_file(os.path.join(directory, name)))
    return out


def test_resume_continues_as_a_fresh_adamw(source, tmp_path):
    run = str(tmp_path / "run")
    import_hf(source["single"], run, source["data"], overrides=TRAINING)
    cfg = load_run_config(run)
    model = our_model(run).train()
    loader = SequenceLoader(TokenDataset(source["data"]), cfg.seq_len, cfg.global_batch_sequences, cfg.micro_batch_size,
                            shuffle_seed=cfg.seed)   # the order the trainer reads
    fresh = StepRunner(model, build_optimizer(model, cfg, torch.device("cpu")), loader, cfg,
                       Runtime(0, 1, 0, torch.device("cpu")))
    expected = [fresh(step)[1] for step in range(2)]
    inputs, targets = SequenceLoader(TokenDataset(source["data"]), SEQ, 4, 4, shuffle_seed=cfg.seed).batch(0)
    with torch.no_grad():
        hf_loss = F.cross_entropy(source["model"](inputs).logits.flatten(0, 1), targets.flatten()).item()

    assert smallgiant("--resume", "--output", run, "--data", source["data"]) == 0
    with open(os.path.join(run, "metrics.jsonl")) as f:
        losses = [r["loss"] for r in map(json.loads, f) if r.get("kind") == "step"]
    assert losses == pytest.approx(expected, abs=1e-6)
    assert losses[0] == pytest.approx(hf_loss, abs=1e-5)
    assert os.path.isdir(os.path.join(run, "checkpoints", "step-00000002"))
    assert "imported_from" in load_run_info(run)          # kept when the resume rewrites run.json


def test_export_scores_a_continuation_as_the_harness_does(imported, tmp_path):
    out = str(tmp_path / "hf")
    export_hf(imported, out, dtype="float32")
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    context, continuation = tokens(1, 20)[0].tolist(), tokens(2, 7)[0].tolist()
    # HFLM._loglikelihood_tokens: the model reads (context + continuation)[:-1]; the continuation's
    # tokens are gathered from the log-softmax of its last len(continuation) positions
    whole = torch.tensor(context + continuation)[:-1][None]
    with torch.no_grad():
        theirs = F.log_softmax(hf(whole).logits, dim=-1)[0, -len(continuation):]
        ours = F.log_softmax(our_model(imported)(whole), dim=-1)[0, -len(continuation):]
    cont = torch.tensor(continuation)[:, None]
    harness, mine = theirs.gather(1, cont).sum().item(), ours.gather(1, cont).sum().item()
    assert abs(harness - mine) < 1e-4, (harness, mine)
    assert harness < -1.0                               # a real score, not a degenerate one


@pytest.mark.parametrize("change, reason", [
    ({"num_key_value_heads": 2}, "grouped-query attention"),
    ({"tie_word_embeddings": True}, "tie_word_embeddings"),
    ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}}, "rope scaling"),
    ({"attention_bias": True}, "attention_bias"),
    ({"hidden_act": "gelu"}, "hidden_act"),
])
def test_refuses_what_the_model_cannot_represent(source, tmp_path, change, reason):
    hf_dir = tmp_path / "hf"
    shutil.copytree(source["single"], hf_dir)
    config = json.loads((hf_dir / "config.json").read_text())
    (hf_dir / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=reason):
        import_hf(str(hf_dir), str(tmp_path / "run"), source["data"], overrides=TRAINING)
    assert not (tmp_path / "run").exists()


def test_refuses_outputs_it_may_not_write_and_incomplete_weights(source, imported, tmp_path):
    with pytest.raises(ValueError, match="lies inside the input"):
        import_hf(source["single"], os.path.join(source["single"], "run"), source["data"], overrides=TRAINING)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")
    with pytest.raises(ValueError, match="not a run directory"):
        import_hf(source["single"], str(mine), source["data"], overrides=TRAINING)
    assert os.listdir(mine) == ["notes.txt"]
    with pytest.raises(ValueError, match="already holds checkpoints"):
        import_hf(source["single"], imported, source["data"], overrides=TRAINING)
    with pytest.raises(ValueError, match="set by the checkpoint"):
        import_hf(source["single"], str(tmp_path / "r"), source["data"], overrides={**TRAINING, "dim": "64"})

    partial = tmp_path / "partial"
    shutil.copytree(source["single"], partial)
    weights = safetensors_torch.load_file(str(partial / "model.safetensors"))
    del weights["model.layers.1.mlp.up_proj.weight"]
    safetensors_torch.save_file(weights, str(partial / "model.safetensors"))
    with pytest.raises(ValueError, match="lacks 1 tensors"):
        import_hf(str(partial), str(tmp_path / "run"), source["data"], overrides=TRAINING)
    assert not os.path.exists(tmp_path / "run" / "config.json")


def test_sentencepiece_model_is_copied_and_must_match_the_data(source, tmp_path):
    hf_dir = tmp_path / "hf"
    shutil.copytree(source["single"], hf_dir)
    (hf_dir / "tokenizer.model").write_bytes(b"a SentencePiece model's bytes")
    digest = hashlib.sha256(b"a SentencePiece model's bytes").hexdigest()
    docs = markov_documents(2_000, vocab_size=VOCAB, branching=3, seed=2)
    for sha, name in ((digest, "same"), ("0" * 64, "other")):
        write_token_dataset(str(tmp_path / name), docs, shard_tokens=4096, vocab_size=VOCAB, tokenizer_sha256=sha)
    with pytest.raises(ValueError, match="tokenize the data with the model's own tokenizer"):
        import_hf(str(hf_dir), str(tmp_path / "run"), str(tmp_path / "other"), overrides=TRAINING)
    import_hf(str(hf_dir), str(tmp_path / "run"), str(tmp_path / "same"), overrides=TRAINING)
    assert load_run_info(str(tmp_path / "run"))["imported_from"]["tokenizer"]["sentencepiece_model"] == \
        "tokenizer/tokenizer.model"
    for copy in ("tokenizer/tokenizer.model", "tokenizer/hf/tokenizer.model"):
        assert (tmp_path / "run" / copy).read_bytes() == b"a SentencePiece model's bytes"
