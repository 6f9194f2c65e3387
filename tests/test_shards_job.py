"""The shard job realises a manifest's mixture: shares, epochs, shuffling, determinism, whole documents."""
from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sentencepiece as spm

from pipeline.schema import DOC_SCHEMA, Document
from tokenizer.manifest import load_manifest
from tokenizer.shard_format import TokenDataset
from tokenizer.shards import ShardConfig, run

LOCAL = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda river stone cloud 12 345".split()
# three sources sized so that share x total / epochs matches what each has (total 60k tokens)
SOURCES = {"web": (0.7, 1.1), "code": (0.2, 0.5), "wiki": (0.1, 2.5)}


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    rng = random.Random(0)
    spm.SentencePieceTrainer.train(sentence_iterator=iter([_text(rng, 30) for _ in range(500)]),
                                   model_prefix=str(d / "tokenizer"), vocab_size=400, model_type="bpe",
                                   byte_fallback=True, split_digits=True, bos_id=1, eos_id=2, unk_id=0,
                                   num_threads=1, minloglevel=2)
    return str(d)


def _write_source(directory, name, tokens_wanted, sp, rng):
    docs, total = [], 0
    while total < tokens_wanted:
        doc = Document(f"{name}/{len(docs)}", "", name, _text(rng, rng.randint(5, 60)))
        total += len(sp.encode(doc.text)) + 1
        docs.append(doc.to_row())
    directory.mkdir(parents=True)
    half = len(docs) // 2
    for i, part in enumerate((docs[:half], docs[half:])):
        pq.write_table(pa.Table.from_pylist(part, schema=DOC_SCHEMA), directory / f"part-{i:05d}.parquet")
    return total


@pytest.fixture(scope="module")
def data(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("data")
    sp = spm.SentencePieceProcessor(model_file=f"{tokenizer}/tokenizer.model")
    rng = random.Random(1)
    available = {n: _write_source(root / n, n, share * 60_000 / epochs, sp, rng)
                 for n, (share, epochs) in SOURCES.items()}
    lines = ["name: test", "seed: 7", "shard_tokens: 4096", "sources:"]
    for n, (share, epochs) in SOURCES.items():
        lines.append(f"  {n}: {{share: {share}, epochs: {epochs}, paths: ['{n}/*.parquet']}}")
    (root / "m.yaml").write_text("\n".join(lines) + "\n")
    return root, available


def _build(data, tokenizer, out, **kw):
    root, _ = data
    return run(ShardConfig(load_manifest(str(root / "m.yaml")), tokenizer, str(out), **kw), LOCAL)


def test_shares_and_epochs_are_realised(data, tokenizer, tmp_path):
    summary = _build(data, tokenizer, tmp_path / "ds", total_tokens=60_000)
    ds = TokenDataset(str(tmp_path / "ds"))
    assert abs(ds.num_tokens - 60_000) < 300
    for name, (share, epochs) in SOURCES.items():
        m = summary["mixture"][name]
        assert abs(m["share"] - share) < 0.005, (name, m)
        assert abs(m["epochs"] - epochs) / epochs < 0.02, (name, m)
        assert m["max_shard_share_deviation"] < 0.02, (name, m)
    assert ds.shards[0]["tokens"] == 4096 and len(ds.shards) == -(-ds.num_tokens // 4096)


def test_every_output_document_is_a_whole_input_document(data, tokenizer, tmp_path):
    root, _ = data
    _build(data, tokenizer, tmp_path / "ds")
    sp = spm.SentencePieceProcessor(model_file=f"{tokenizer}/tokenizer.model")
    inputs = {tuple(sp.encode(r["text"]) + [2]) for n in SOURCES
              for f in (root / n).glob("*.parquet") for r in pq.read_table(f).to_pylist()}
    ds = TokenDataset(str(tmp_path / "ds"))
    seen = [tuple(d.tolist()) for d in ds.documents()]
    assert set(seen) <= inputs and len(set(seen)) > 0.9 * len(inputs) * 0.5
    # repeated sources come back in a fresh order, not as one block
    assert seen[: len(seen) // 2] != seen[len(seen) // 2:]


def test_derived_total_keeps_every_source_within_its_epochs(data, tokenizer, tmp_path):
    summary = _build(data, tokenizer, tmp_path / "ds")
    epochs = {n: summary["mixture"][n]["epochs"] for n in SOURCES}
    assert all(epochs[n] <= SOURCES[n][1] * 1.02 for n in SOURCES)
    assert any(abs(epochs[n] - SOURCES[n][1]) / SOURCES[n][1] < 0.02 for n in SOURCES)


def test_same_inputs_and_seed_give_the_same_bytes(data, tokenizer, tmp_path):
    for name in ("one", "two"):
        _build(data, tokenizer, tmp_path / name, total_tokens=20_000)
    one = sorted(p.name for p in (tmp_path / "one").iterdir() if p.name != "stats.json")
    assert one == sorted(p.name for p in (tmp_path / "two").iterdir() if p.name != "stats.json")
    assert all((tmp_path / "one" / n).read_bytes() == (tmp_path / "two" / n).read_bytes() for n in one)
    _build(data, tokenizer, tmp_path / "three", total_tokens=20_000, seed=8)
    assert (tmp_path / "three/shard-00000.bin").read_bytes() != (tmp_path / "one/shard-00000.bin").read_bytes()


def test_plan_from_the_command_line(data, tokenizer, tmp_path, capsys):
    from smallgiant.cli import main
    root, available = data
    assert main(["tokenizer", "shards", "--manifest", str(root / "m.yaml"), "--tokenizer", tokenizer,
                 "--plan", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "full build (1,400,000,000,000 tokens)" in out and "core-hours" in out
    import json
    plan = json.loads((tmp_path / "plan.json").read_text())
    for name in SOURCES:   # footers and a 200-document sample estimate what each source has
        assert abs(plan["sources"][name]["available_tokens"] - available[name]) / available[name] < 0.25
    assert plan["shards"] == -(-plan["total_tokens"] // 4096)          # this build: the manifest's shards
    assert plan["full_build"]["shards"] == -(-1_400_000_000_000 // 2**27)   # the full one: full-size shards
