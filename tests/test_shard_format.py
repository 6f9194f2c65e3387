"""The token shard format: what goes in comes out, across shard boundaries, and damage is detected."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tokenizer.shard_format import ShardFormatError, TokenDataset, write_token_dataset

EOS = 2


def _docs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(lengths):
        toks = rng.integers(3, 65535, size=n, dtype=np.uint16)
        out.append((["a", "b"][i % 2], np.append(toks, np.uint16(EOS))))
    return out


@settings(max_examples=40, deadline=None, derandomize=True)
@given(lengths=st.lists(st.integers(0, 60), min_size=1, max_size=30), shard_tokens=st.integers(1, 50))
def test_documents_round_trip_across_shards(tmp_path_factory, lengths, shard_tokens):
    docs = _docs(lengths)
    d = write_token_dataset(str(tmp_path_factory.mktemp("ds")), docs, shard_tokens, vocab_size=65536)
    ds = TokenDataset(d)
    stream = np.concatenate([t for _, t in docs])
    assert ds.num_tokens == len(stream)
    assert all(s["tokens"] == shard_tokens for s in ds.shards[:-1]) and 0 < ds.shards[-1]["tokens"] <= shard_tokens
    assert [t.tolist() for t in ds.documents()] == [t.tolist() for _, t in docs]
    assert ds.read(0, len(stream)).tolist() == stream.tolist()
    n = ds.num_sequences(7)
    for i in range(n):
        assert ds.sequence(i, 7).tolist() == stream[i * 7:i * 7 + 8].tolist()
    per_source = {"a": sum(len(t) for s, t in docs if s == "a"), "b": sum(len(t) for s, t in docs if s == "b")}
    assert ds.manifest["source_tokens"] == {k: v for k, v in per_source.items() if v}


def test_continued_tokens_say_where_a_split_document_ends(tmp_path):
    docs = _docs([9, 2])  # 10 and 3 tokens
    ds = TokenDataset(write_token_dataset(str(tmp_path), docs, shard_tokens=6, vocab_size=65536))
    assert [s["continued_tokens"] for s in ds.shards] == [0, 4, 1]
    assert ds.document_starts(1).tolist() == [10] and ds.document_starts(2).tolist() == []


def test_damaged_shard_is_refused(tmp_path):
    d = write_token_dataset(str(tmp_path), _docs([100, 100]), shard_tokens=64, vocab_size=65536)
    raw = bytearray((tmp_path / "shard-00001.bin").read_bytes())
    raw[10] ^= 0xFF
    (tmp_path / "shard-00001.bin").write_bytes(bytes(raw))
    ds = TokenDataset(d)
    ds.read(0, 64)  # the intact shard reads
    with pytest.raises(ShardFormatError, match="shard-00001.bin: checksum"):
        ds.read(60, 10)
    assert TokenDataset(d, verify=False).read(60, 10).shape == (10,)


def test_reads_outside_the_stream_and_unknown_formats_fail(tmp_path):
    d = write_token_dataset(str(tmp_path / "ds"), _docs([5]), shard_tokens=4, vocab_size=100)
    ds = TokenDataset(d)
    with pytest.raises(IndexError):
        ds.read(3, 4)
    with pytest.raises(FileNotFoundError, match="not a token dataset"):
        TokenDataset(str(tmp_path))
    manifest = json.loads((tmp_path / "ds/dataset.json").read_text())
    manifest["format_version"] = 99
    (tmp_path / "ds/dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardFormatError, match="version 99"):
        TokenDataset(d)


def test_same_documents_same_bytes(tmp_path):
    for name in ("one", "two"):
        write_token_dataset(str(tmp_path / name), _docs([30, 40, 50]), shard_tokens=32, vocab_size=65536)
    one = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert one == sorted(p.name for p in (tmp_path / "two").iterdir())
    assert all((tmp_path / "one" / n).read_bytes() == (tmp_path / "two" / n).read_bytes() for n in one)


def test_documents_read_the_index_one_shard_at_a_time(tmp_path):
    d = write_token_dataset(str(tmp_path / "ds"), _docs([5] * 12), shard_tokens=6, vocab_size=65536)
    ds = TokenDataset(d)
    first = next(ds.documents())
    assert len(first) == 6 and len(ds._open) <= 2      # not every shard's index before the first document
    assert sum(len(t) for t in TokenDataset(d).documents()) == len(ds)
