"""Token datasets in uint16 and uint32, and their exports: every format is read back with a reader written
here from its published layout (and with Megatron-LM's and datatrove's own readers where installed), and
every token and document boundary is compared with the source dataset."""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from smallgiant.cli import main
from tokenizer import exporters
from tokenizer.shard_format import ShardFormatError, TokenDataset, token_dtype, write_token_dataset

EOS = 2
SMALL_VOCAB, LARGE_VOCAB = 32000, 70000


def _documents(vocab_size: int, lengths: list[int], seed: int) -> list[tuple[str, np.ndarray]]:
    """Documents of random ids in [3, vocab_size) ending with EOS; ids above 65,535 for a large vocabulary."""
    rng = np.random.default_rng(seed)
    docs = []
    for n in lengths:
        ids = rng.integers(3, vocab_size, size=n, dtype=np.int64)
        docs.append(("web", np.append(ids, EOS)))
    return docs


# shard_tokens 16: the 40-token document spans three shards, others continue into the next one
LENGTHS = [5, 40, 0, 11, 15, 2, 23, 7, 9]


@pytest.fixture(params=[SMALL_VOCAB, LARGE_VOCAB], ids=["uint16", "uint32"])
def dataset(request, tmp_path):
    docs = _documents(request.param, LENGTHS, seed=request.param)
    path = write_token_dataset(str(tmp_path / "data"), docs, shard_tokens=16, vocab_size=request.param,
                               eos_id=EOS, tokenizer_sha256="ab" * 32)
    return TokenDataset(path), [d for _, d in docs]


def _ends(docs: list[np.ndarray]) -> list[int]:
    return np.cumsum([len(d) for d in docs]).tolist()


def _export(ds: TokenDataset, fmt: str, out, *extra: str) -> int:
    return main(["tokenizer", "export", "--data", ds.directory, "--format", fmt, "--output", str(out), *extra])


# --- the shard format's dtype ---------------------------------------------------------------------

def test_dtype_follows_the_vocabulary():
    assert token_dtype(65536) == np.dtype("<u2") and token_dtype(65537) == np.dtype("<u4")
    with pytest.raises(ShardFormatError):
        token_dtype(2 ** 32 + 1)


def test_tokens_round_trip_in_the_vocabularys_dtype(dataset):
    ds, docs = dataset
    meta = ds.manifest
    shard_meta = json.loads(open(os.path.join(ds.directory, "shard-00000.json")).read())
    want = "uint16" if ds.vocab_size <= 65536 else "uint32"
    assert meta["format_version"] == 2 and meta["token_dtype"] == want and shard_meta["token_dtype"] == want
    assert os.path.getsize(os.path.join(ds.directory, "shard-00000.bin")) == 16 * ds.token_dtype.itemsize
    assert [d.tolist() for d in ds.documents()] == [d.tolist() for d in docs]
    assert (max(int(d.max()) for d in docs) > 65535) == (want == "uint32")


def test_version_1_datasets_without_a_dtype_still_read(tmp_path):
    docs = _documents(SMALL_VOCAB, [4, 30, 6], seed=1)
    path = write_token_dataset(str(tmp_path / "d"), docs, shard_tokens=16, vocab_size=SMALL_VOCAB)
    manifest_path = os.path.join(path, "dataset.json")
    manifest = json.loads(open(manifest_path).read())
    del manifest["token_dtype"]
    manifest["format_version"] = 1
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    ds = TokenDataset(path)
    assert ds.token_dtype == np.dtype("<u2")
    assert [d.tolist() for d in ds.documents()] == [d.tolist() for _, d in docs]


@pytest.mark.parametrize("edit", [{"token_dtype": "uint16"}, {"token_dtype": "int8"},
                                  {"token_dtype": None}, {"format_version": 3}])
def test_a_dtype_that_is_not_the_vocabularys_is_refused(tmp_path, edit):
    path = write_token_dataset(str(tmp_path / "d"), _documents(LARGE_VOCAB, [9], 0), 16, vocab_size=LARGE_VOCAB)
    manifest_path = os.path.join(path, "dataset.json")
    manifest = {**json.loads(open(manifest_path).read()), **edit}
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    with pytest.raises(ShardFormatError, match="token_dtype|version"):
        TokenDataset(path)


def test_ids_that_do_not_fit_the_dtype_are_refused_not_wrapped(tmp_path):
    with pytest.raises(ShardFormatError, match="do not fit uint16"):
        write_token_dataset(str(tmp_path / "d"), [("a", np.array([70000, EOS]))], 16, vocab_size=SMALL_VOCAB)


def test_the_trainer_reads_uint32_tokens(tmp_path):
    torch = pytest.importorskip("torch")
    from train.data import SequenceLoader
    docs = _documents(LARGE_VOCAB, [30, 30], seed=3)
    ds = TokenDataset(write_token_dataset(str(tmp_path / "d"), docs, 16, vocab_size=LARGE_VOCAB))
    stream = np.concatenate([d for _, d in docs])
    inputs, targets = SequenceLoader(ds, seq_len=8, global_batch=2, micro_batch=2).batch(0)
    assert inputs.dtype == torch.int64
    assert inputs.flatten().tolist() == np.concatenate([stream[0:8], stream[8:16]]).tolist()
    assert targets[1].tolist() == stream[9:17].tolist()


def _read_megatron(prefix: str) -> dict:
    """Megatron-LM's indexed dataset read from its layout (megatron/core/datasets/indexed_dataset.py)."""
    idx = open(prefix + ".idx", "rb").read()
    assert idx[:9] == b"MMIDIDX\x00\x00"
    version, code, seq_count, doc_count = struct.unpack_from("<QBQQ", idx, 9)
    offset = 9 + 8 + 1 + 8 + 8
    lengths = np.frombuffer(idx, "<i4", seq_count, offset)
    pointers = np.frombuffer(idx, "<i8", seq_count, offset + 4 * seq_count)
    doc_index = np.frombuffer(idx, "<i8", doc_count, offset + 12 * seq_count)
    assert len(idx) == offset + 12 * seq_count + 8 * doc_count
    dtype = {8: np.dtype("<u2"), 4: np.dtype("<i4")}[code]
    data = open(prefix + ".bin", "rb").read()
    sequences = [np.frombuffer(data, dtype, n, p) for n, p in zip(lengths, pointers)]
    return {"version": version, "dtype": dtype, "doc_index": doc_index.tolist(), "sequences": sequences,
            "bin_bytes": len(data)}


def test_megatron_export_reads_back_token_for_token(dataset, tmp_path):
    ds, docs = dataset
    assert _export(ds, "megatron", tmp_path / "mg") == 0
    got = _read_megatron(str(tmp_path / "mg" / "tokens"))
    assert got["version"] == 1
    assert got["dtype"] == (np.dtype("<u2") if ds.vocab_size <= 65536 else np.dtype("<i4"))
    assert [s.tolist() for s in got["sequences"]] == [d.tolist() for d in docs]
    assert got["doc_index"] == list(range(len(docs) + 1))
    assert got["bin_bytes"] == ds.num_tokens * got["dtype"].itemsize


def test_megatrons_own_reader_agrees(dataset, tmp_path):
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    ds, docs = dataset
    assert _export(ds, "megatron", tmp_path / "mg") == 0
    mg = indexed.IndexedDataset(str(tmp_path / "mg" / "tokens"))
    assert len(mg) == len(docs)
    assert [mg[i].tolist() for i in range(len(mg))] == [d.tolist() for d in docs]
    assert mg.document_indices.tolist() == list(range(len(docs) + 1))


# --- datatrove / nanotron -------------------------------------------------------------------------

def _read_datatrove(path: str) -> dict:
    """datatrove's .ds, .ds.index and .ds.metadata read from their layout (pipeline/tokens/tokenizer.py)."""
    name, size = open(path + ".metadata", encoding="utf-8").read().splitlines()[0].split("|")
    tokens = np.fromfile(path, {"2": "<u2", "4": "<u4"}[size])
    ends = np.fromfile(path + ".index", "<u8").tolist()
    docs = [tokens[s:e] for s, e in zip([0] + ends[:-1], ends)]
    count = int(open(path + ".metadata", encoding="utf-8").read().splitlines()[1])
    return {"name": name, "token_size": int(size), "tokens": tokens, "ends": ends, "docs": docs, "count": count}


def test_nanotron_export_reads_back_token_for_token(dataset, tmp_path):
    ds, docs = dataset
    assert _export(ds, "nanotron", tmp_path / "nt") == 0
    got = _read_datatrove(str(tmp_path / "nt" / "tokens.ds"))
    assert got["token_size"] == (2 if ds.vocab_size <= 65536 else 4)
    assert got["ends"] == _ends(docs) and got["count"] == ds.num_tokens
    assert [d.tolist() for d in got["docs"]] == [d.tolist() for d in docs]
    assert got["name"] == "sha256:" + "ab" * 32


def test_datatroves_own_reader_agrees(dataset, tmp_path):
    datatrove = pytest.importorskip("datatrove.utils.dataset")
    ds, docs = dataset
    assert _export(ds, "nanotron", tmp_path / "nt") == 0
    seq_len = 6
    reader = datatrove.DatatroveFileDataset(str(tmp_path / "nt" / "tokens.ds"), seq_len,
                                            token_size=2 if ds.vocab_size <= 65536 else 4, return_positions=True)
    stream = np.concatenate(docs)
    starts = np.array([0] + _ends(docs)[:-1])
    assert len(reader) == len(stream) // (seq_len + 1)
    for i in range(len(reader)):
        first = i * (seq_len + 1)
        item = reader[i]
        assert item["input_ids"].tolist() == stream[first:first + seq_len + 1].tolist()
        # datatrove counts positions from each document's start, or from the window's for one begun before
        where = np.arange(first, first + seq_len + 1)
        begun = np.maximum(starts[np.searchsorted(starts, where, side="right") - 1], first)
        assert item["positions"].tolist() == (where - begun).tolist()


# --- nanoGPT --------------------------------------------------------------------------------------

def _read_nanogpt(directory) -> tuple[dict, np.ndarray, np.ndarray]:
    meta = json.loads(open(os.path.join(directory, "meta.json")).read())
    train, val = (np.fromfile(os.path.join(directory, n), meta["dtype"]) for n in ("train.bin", "val.bin"))
    return meta, train, val


def _split_at_eos(tokens: np.ndarray) -> list[list[int]]:
    ends = (np.flatnonzero(tokens == EOS) + 1).tolist()
    return [tokens[s:e].tolist() for s, e in zip([0] + ends[:-1], ends)]


@pytest.mark.parametrize("val_tokens", [1, 9, 40])
def test_nanogpt_export_splits_by_whole_documents(dataset, tmp_path, val_tokens):
    ds, docs = dataset
    assert _export(ds, "nanogpt", tmp_path / "ng", "--val-tokens", str(val_tokens)) == 0
    meta, train, val = _read_nanogpt(tmp_path / "ng")
    assert meta["dtype"] == ("uint16" if ds.vocab_size <= 65536 else "uint32")
    assert _split_at_eos(train) + _split_at_eos(val) == [d.tolist() for d in docs]
    assert len(train) and train[-1] == EOS
    # val.bin is the shortest tail of whole documents holding at least val_tokens
    tail = [len(d) for d in docs[len(_split_at_eos(train)):]]
    assert sum(tail) >= val_tokens and sum(tail) - tail[0] < val_tokens
    assert meta["tokens"] == {"train": len(train), "val": len(val)}
    assert meta["documents"] == {"train": len(_split_at_eos(train)), "val": len(tail)}


def test_nanogpt_val_share_of_zero_keeps_everything_for_training(dataset, tmp_path):
    ds, docs = dataset
    assert _export(ds, "nanogpt", tmp_path / "ng", "--val-share", "0") == 0
    _, train, val = _read_nanogpt(tmp_path / "ng")
    assert train.tolist() == np.concatenate(docs).tolist() and len(val) == 0


def test_nanogpt_refuses_a_split_that_leaves_nothing_to_train_on(dataset, tmp_path, capsys):
    ds, _ = dataset
    assert _export(ds, "nanogpt", tmp_path / "ng", "--val-tokens", str(ds.num_tokens - 1)) == 2
    assert "leaves none" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "ng" / "train.bin")


# --- the job --------------------------------------------------------------------------------------

def test_chunks_smaller_than_a_shard_give_the_same_bytes(dataset, tmp_path, monkeypatch):
    ds, _ = dataset
    assert _export(ds, "megatron", tmp_path / "whole") == 0
    monkeypatch.setattr(exporters, "CHUNK_TOKENS", 5)
    assert _export(ds, "megatron", tmp_path / "chunked") == 0
    for name in ("tokens.bin", "tokens.idx"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "chunked" / name).read_bytes()


def test_a_new_export_replaces_another_formats_files(dataset, tmp_path):
    ds, _ = dataset
    out = tmp_path / "out"
    assert _export(ds, "megatron", out) == 0
    (out / "notes.txt").write_text("mine")
    assert _export(ds, "nanotron", out) == 0
    names = set(os.listdir(out))
    assert {"tokens.ds", "tokens.ds.index", "tokens.ds.metadata", "export.json", "notes.txt"} <= names
    assert not names & {"tokens.bin", "tokens.idx"}
    assert json.loads((out / "export.json").read_text())["format"] == "nanotron"


def test_bad_command_lines_are_refused_before_writing(dataset, tmp_path, capsys):
    ds, _ = dataset
    assert _export(ds, "megatron", tmp_path / "o", "--val-share", "0.1") == 2
    assert "no split" in capsys.readouterr().err
    assert _export(ds, "nanotron", os.path.join(ds.directory, "inside")) == 2
    assert "input" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _export(ds, "nanogpt", tmp_path / "o", "--val-share", "1.5")
    assert not os.path.exists(tmp_path / "o")
