"""export-hf: a run's checkpoint becomes a LlamaForCausalLM directory that transformers loads and that
gives our model's logits (rotary permutation of wq/wk included), with the run's tokenizer."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest
import torch

from tokenizer.shard_format import write_token_dataset
from train.checkpoint import Checkpointer, latest_checkpoint
from train.cli import add_parser
from train.config import apply_overrides, preset
from train.export_hf import export_hf, to_half_split_rotary
from train.model import Transformer
from train.parallel import Runtime
from train.run_dir import load_run_config
from train.synthetic import markov_documents
from train.trainer import train

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hf_tokenizer_dir(path: str, vocab_size: int) -> str:
    """A small real Hugging Face tokenizer directory (word-level over the dataset's token names)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"t{i}": i for i in range(3, vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                                eos_token="</s>")
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    tok_dir = root / "tokenizer"
    hf_tokenizer_dir(str(tok_dir / "hf"), 128)
    docs = markov_documents(20_000, vocab_size=128, branching=3, seed=5)
    data = write_token_dataset(str(root / "data"), docs, shard_tokens=8192, vocab_size=128,
                               extra={"tokenizer": {"path": str(tok_dir), "sha256": "abc"}}, tokenizer_sha256="abc")
    cfg = apply_overrides(preset("tiny"), {"tensorboard": "false", "max_steps": "4", "warmup_steps": "1",
                                           "seq_len": "32", "global_batch_tokens": "256", "micro_batch_size": "8",
                                           "n_heads": "2", "log_every": "2"})
    train(cfg, data, str(root / "run"))
    return str(root / "run")


def our_model(run: str) -> Transformer:
    cfg = load_run_config(run)
    model = Transformer(cfg)
    Checkpointer("", 1, Runtime(0, 1, 0, torch.device("cpu"))).load(
        latest_checkpoint(os.path.join(run, "checkpoints"))[1], model, None)
    return model.eval()


def test_rotary_permutation_moves_pairs_to_halves():
    w = torch.arange(8.0).repeat_interleave(3).view(8, 3)        # 2 heads of 4 rows: row r holds r
    assert to_half_split_rotary(w, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_exported_model_gives_our_logits_in_transformers(run_dir, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="smallgiant")
    add_parser(parser.add_subparsers(dest="job"))
    out = str(tmp_path / "hf")
    args, extra = parser.parse_known_args(["train", "export-hf", run_dir, "--output", out, "--dtype", "float32"])
    assert args.func(args, extra) == 0
    assert "tokenizer copied from" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(os.listdir(out))

    hf = transformers.LlamaForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    ours = our_model(run_dir)
    tokens = torch.from_numpy(np.random.default_rng(0).integers(3, 128, size=(2, 32))).long()
    with torch.no_grad():
        expected = ours(tokens)
        got = hf(tokens).logits
    assert (got - expected).abs().max().item() < 1e-4, (got - expected).abs().max().item()
    assert expected.abs().max().item() > 0.1                       # not trivially small logits

    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert tok("t5 t9 t100")["input_ids"][-3:] == [5, 9, 100]


def test_sharded_bfloat16_export_loads_and_refuses_to_overwrite(run_dir, tmp_path):
    out = str(tmp_path / "hf")
    report = export_hf(run_dir, out, dtype="bfloat16", max_shard_bytes=60_000)
    with open(os.path.join(out, "model.safetensors.index.json")) as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert index["metadata"]["total_size"] == report["bytes"]
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    assert (config["intermediate_size"], config["num_attention_heads"], config["tie_word_embeddings"]) == (256, 2, False)
    hf = transformers.LlamaForCausalLM.from_pretrained(out)
    assert hf.model.embed_tokens.weight.dtype == torch.bfloat16
    ours = our_model(run_dir)
    assert torch.equal(hf.lm_head.weight, ours.output.weight.to(torch.bfloat16))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")
    with pytest.raises(ValueError, match="no smallgiant job wrote"):
        export_hf(run_dir, str(mine))
    assert os.listdir(mine) == ["notes.txt"]
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 3"):
        export_hf(run_dir, str(tmp_path / "other"), step=3)
