"""Tokenizer training end to end: LLaMA's settings in the model, outputs and report, byte-identical
retraining, atomic output, clear errors, and the command line."""
from __future__ import annotations

import argparse
import json
import os

import pytest
import sentencepiece

from tokenizer.cli import add_parser
from tokenizer.manifest import load_manifest
from tokenizer.train import LLAMA_SETTINGS, train_tokenizer, training_lines
from tokenizer_corpus import SOURCES, make_corpus, make_documents, write_parquet

VOCAB = 800


def train(manifest, out, **overrides):
    """Training as the module's fixture does it, with some settings changed."""
    kwargs = {"vocab_size": VOCAB, "sample_docs": 300, "threads": 2, "held_out_share": 0.2, **overrides}
    return train_tokenizer(manifest, str(out), **kwargs)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, load_manifest(make_corpus(str(root), scale=0.5))


@pytest.fixture(scope="module")
def trained(corpus):
    root, manifest = corpus
    out = root / "tok"
    report = train(manifest, out)
    return out, report


def test_outputs(trained):
    out, report = trained
    assert sorted(os.listdir(out)) == [".smallgiant-output.json", "hf", "report.json", "tokenizer.model", "tokenizer.vocab"]
    assert sorted(os.listdir(out / "hf")) == ["special_tokens_map.json", "tokenizer.json", "tokenizer.model",
                                              "tokenizer_config.json"]
    assert json.loads((out / "hf" / "tokenizer_config.json").read_text())["tokenizer_class"] == "LlamaTokenizerFast"
    assert json.loads((out / "report.json").read_text()) == report
    assert not [n for n in os.listdir(out.parent) if n.startswith(".tok.")]  # no staging left behind


def test_model_has_llama_settings(trained):
    sp = sentencepiece.SentencePieceProcessor(model_file=str(trained[0] / "tokenizer.model"))
    assert sp.get_piece_size() == VOCAB
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert sum(sp.is_byte(i) for i in range(VOCAB)) == 256  # byte fallback
    assert max(len(sp.id_to_piece(i)) for i in range(VOCAB) if not sp.is_byte(i)) <= 16
    assert sp.encode("ﬁ ①", out_type=str)[0].startswith("▁")  # dummy prefix
    assert sp.decode(sp.encode("ﬁ ① ｆ")) == "ﬁ ① ｆ"  # identity normalizer: no NFKC folding
    assert sp.decode(sp.encode("a   b\t\tc ")) == "a   b\t\tc "  # whitespace kept
    assert any(sp.id_to_piece(i).strip("▁") == "" and len(sp.id_to_piece(i)) > 1 for i in range(VOCAB))


def test_report(trained):
    _, report = trained
    assert set(report["sample"]) == set(SOURCES)
    for name, s in report["sample"].items():
        assert s["share"] == SOURCES[name][0]
        assert abs(s["byte_share"] - s["share"]) < 0.01
        assert 0 < s["used_documents"] <= s["drawn_documents"] and s["held_out_sample"] > 0
    held = report["held_out"]
    assert set(held["sources"]) == set(SOURCES)
    assert set(held["languages"]) == {"en", "de", "fr", "ru", "zh", "ja"}  # code has no language
    for row in [held["all"], *held["sources"].values(), *held["languages"].values()]:
        assert row["bytes_per_token"] == pytest.approx(row["bytes"] / row["tokens"], abs=1e-4)
    assert held["all"]["documents"] == sum(r["documents"] for r in held["sources"].values())
    assert report["settings"]["sentencepiece"] == {**LLAMA_SETTINGS, "vocab_size": VOCAB}
    assert report["hf_identical_lines"] > 50
    assert report["seconds"]["training"] > 0


def test_same_inputs_and_seed_give_identical_files(corpus, trained, tmp_path):
    _, manifest = corpus
    train(manifest, tmp_path / "again")
    for name in ("tokenizer.model", "tokenizer.vocab", "hf/tokenizer.json", "hf/tokenizer_config.json"):
        assert (tmp_path / "again" / name).read_bytes() == (trained[0] / name).read_bytes(), name


def test_another_seed_draws_another_sample(corpus, trained, tmp_path):
    _, manifest = corpus
    report = train(manifest, tmp_path / "seed1", seed=1)
    assert (tmp_path / "seed1" / "tokenizer.model").read_bytes() != (trained[0] / "tokenizer.model").read_bytes()
    def held_out_docs(r):  # the held-out set does not depend on the seed
        return {k: (v["documents"], v["bytes"]) for k, v in r["held_out"]["sources"].items()}
    assert held_out_docs(report) == held_out_docs(trained[1])


def test_failure_keeps_the_previous_output(corpus, trained, tmp_path):
    _, manifest = corpus
    out = tmp_path / "tok"
    train(manifest, out)
    before = (out / "tokenizer.model").read_bytes()
    with pytest.raises(ValueError, match="too small for a vocabulary of 100000"):
        train(manifest, out, vocab_size=100000)
    assert (out / "tokenizer.model").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["tok"]


def test_source_without_documents_is_an_error(tmp_path):
    write_parquet(str(tmp_path / "a" / "p.parquet"), make_documents("a", 50, ["en"]))
    write_parquet(str(tmp_path / "b" / "p.parquet"), [])
    (tmp_path / "m.yaml").write_text("name: m\nsources:\n  a: {share: 0.5, epochs: 1, paths: [a/*.parquet]}\n"
                                     "  b: {share: 0.5, epochs: 1, paths: [b/*.parquet]}\n")
    with pytest.raises(ValueError, match=r"m\.yaml: sources\.b: no document with text"):
        train_tokenizer(load_manifest(str(tmp_path / "m.yaml")), str(tmp_path / "out"), vocab_size=VOCAB)
    assert not (tmp_path / "out").exists()


def test_file_not_in_document_schema_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    (tmp_path / "a").mkdir()
    pq.write_table(pa.table({"body": ["x"]}), str(tmp_path / "a" / "bad.parquet"))
    (tmp_path / "m.yaml").write_text("name: m\nsources:\n  a: {share: 1, epochs: 1, paths: [a/*.parquet]}\n")
    with pytest.raises(ValueError, match=r"bad\.parquet: not a file of documents \(no column id, text, metadata\)"):
        train_tokenizer(load_manifest(str(tmp_path / "m.yaml")), str(tmp_path / "out"))


def test_training_lines_cut_long_lines_without_losing_text():
    long_words = " ".join(["wörter"] * 1000)
    long_cjk = "日本語" * 2000
    lines = list(training_lines([f"short\n\n{long_words}\n{long_cjk}\n"], max_bytes=100))
    assert lines[0] == "short"
    assert all(0 < len(line.encode()) <= 100 for line in lines)
    assert "".join(lines[1:]) == long_words + long_cjk


def test_command_line(corpus, tmp_path, capsys):
    root, manifest = corpus
    parser = argparse.ArgumentParser()
    steps = add_parser(parser.add_subparsers(dest="job"))
    assert "train" in steps.choices
    args = parser.parse_args(["tokenizer", "train", "--manifest", manifest.path, "--output", str(tmp_path / "t"),
                              "--vocab-size", str(VOCAB), "--sample-docs", "300", "--threads", "2",
                              "--data-root", str(root)])
    assert args.beam is False
    assert args.func(args, []) == 0
    printed = capsys.readouterr().out
    assert "bytes per token on held-out documents" in printed and "source code" in printed
    assert (tmp_path / "t" / "tokenizer.model").is_file()
