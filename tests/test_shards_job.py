"""The shard job realises a manifest's mixture: shares, epochs, shuffling, determinism (on any number of
workers), whole documents; its cut and write steps read the first pass's token files."""
from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import numpy as np
import pytest
import sentencepiece as spm

from pipeline.schema import DOC_SCHEMA, Document
from tokenizer.manifest import load_manifest
from tokenizer.shard_format import TokenDataset
from tokenizer.shards import ShardConfig, run

LOCAL = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
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


def _build(data, tokenizer, out, beam_args=LOCAL, **kw):
    root, _ = data
    return run(ShardConfig(load_manifest(str(root / "m.yaml")), tokenizer, str(out), **kw), beam_args)


def _files(directory) -> dict[str, bytes]:
    """Every file of an output but its run statistics (wall time, cores) and the output marker."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name not in ("stats.json", ".smallgiant-output.json")}


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


def test_one_and_two_workers_write_the_same_bytes_and_leave_no_work_files(data, tokenizer, tmp_path):
    for name, args in (("one", LOCAL), ("two", TWO_WORKERS)):
        _build(data, tokenizer, tmp_path / name, args, total_tokens=30_000, shard_tokens=1000, bucket_tokens=3000,
               val_share=0.05, val_docs=5)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one == two
    assert any(n.startswith("val/web/shard-") for n in one) and len([n for n in one if n.endswith(".bin")]) > 30
    assert not (tmp_path / "two" / "_staging").exists()   # the first pass's token files went with the run
    ds = TokenDataset(str(tmp_path / "two"))
    assert abs(ds.num_tokens - 30_000) < 300 and all(s["tokens"] == 1000 for s in ds.shards[:-1])


def test_cut_and_write_read_uint32_tokens_from_the_work_area(tmp_path):
    from tokenizer.shard_format import WIDE_TOKEN_DTYPE, write_manifest
    from tokenizer.shards import CutBucket, WriteShard
    rng = np.random.default_rng(4)
    docs = [np.append(rng.integers(70_000, 100_000, n), 2).astype(WIDE_TOKEN_DTYPE) for n in (12, 25, 3, 30)]
    (tmp_path / "work").mkdir()
    base = str(tmp_path / "work" / "000000-000000")
    np.concatenate(docs).tofile(base + ".tok")
    offsets = np.cumsum([0] + [len(d) for d in docs]).tolist()
    # a bucket's copies arrive in any order and in several batches; they are cut in position order
    batches = [("web", base, [(0.3, "d2", 0, offsets[2], len(docs[2])), (0.1, "d0", 0, offsets[0], len(docs[0]))]),
               ("web", base, [(0.2, "d1", 0, offsets[1], len(docs[1])), (0.4, "d3", 0, offsets[3], len(docs[3]))])]
    by_shard = dict(CutBucket().process((0, batches), {0: 0}, {"shard_tokens": 16}))
    assert sorted(by_shard) == [0, 1, 2, 3, 4]
    metas = [next(WriteShard(str(tmp_path), "", WIDE_TOKEN_DTYPE).process((shard, [pieces])))
             for shard, pieces in by_shard.items()]
    assert metas == [f"shard-{i:05d}" for i in range(5)]
    metas = [json.loads((tmp_path / f"shard-{i:05d}.json").read_text()) for i in range(5)]
    write_manifest(str(tmp_path), metas, {"vocab_size": 100_000, "eos_id": 2, "bos_id": 1})
    ds = TokenDataset(str(tmp_path))
    assert [d.tolist() for d in ds.documents()] == [d.tolist() for d in docs]
    assert ds.manifest["source_tokens"] == {"web": sum(len(d) for d in docs)}


def test_validation_limits_keep_each_sources_lowest_candidates_over_any_split_of_the_input():
    from tokenizer.shards import ValidationLimits
    rng = random.Random(5)
    candidates = [(source, (rng.random(), f"{source}/{i}")) for source in ("web", "wiki") for i in range(200)]
    rng.shuffle(candidates)
    combine = ValidationLimits(7)
    parts = []
    for chunk in (candidates[:13], candidates[13:250], candidates[250:]):
        acc = combine.create_accumulator()
        for item in chunk:
            acc = combine.add_input(acc, item)
        parts.append(acc)
    limits = combine.extract_output(combine.merge_accumulators(parts))
    for source in ("web", "wiki"):
        assert limits[source] == sorted(c for s, c in candidates if s == source)[6]
