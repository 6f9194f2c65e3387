"""The token shard format: the one definition, with the writer the shard job uses and the reader the
trainer uses. NumPy and the standard library only, so the trainer needs nothing else.

A dataset is a directory:

    dataset.json          the dataset manifest: format, tokenizer, totals, per-source figures, every shard
    shard-00000.bin       tokens, little-endian uint16 (uint32 when the vocabulary has over 65,536 pieces),
                          documents back to back, each ending with EOS
    shard-00000.idx       little-endian int64: where each document that *starts* in this shard starts
    shard-00000.json      the shard's metadata: format version, token dtype, tokenizer hash, tokens,
                          documents, per-source token counts, SHA-256 of the .bin and .idx files

Shards hold exactly `shard_tokens` tokens (the last one fewer). The token stream is one sequence cut into
shards: a document may continue into the next shard. The tokens of a shard before its first document
start (`continued_tokens` in its metadata) are the end of a document that began in an earlier shard.
`dataset.json` is written last; a directory without it is not a dataset.

Versions: 1 has uint16 tokens and no dtype field. 2 adds `token_dtype` ("uint16" or "uint32", chosen by
`token_dtype(vocab_size)`) to dataset.json and to each shard's metadata. The reader reads both.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import os
from typing import Any, Callable, Iterable, Iterator

import numpy as np

FORMAT = "smallgiant-tokens"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
TOKEN_DTYPE = np.dtype("<u2")      # version 1's only dtype; version 2's for vocabularies up to 65,536
WIDE_TOKEN_DTYPE = np.dtype("<u4")
DTYPE_NAMES = {"uint16": TOKEN_DTYPE, "uint32": WIDE_TOKEN_DTYPE}
INDEX_DTYPE = np.dtype("<i8")
MANIFEST = "dataset.json"


class ShardFormatError(ValueError):
    """A dataset or shard that is not in this format, or whose bytes do not match their checksum."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The token dtype of a dataset over `vocab_size` pieces: uint16 while every id fits, else uint32."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise ShardFormatError(f"vocab_size {vocab_size!r} is not a positive integer")
    for dtype in (TOKEN_DTYPE, WIDE_TOKEN_DTYPE):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return dtype
    raise ShardFormatError(f"a vocabulary of {vocab_size} does not fit uint32 tokens")


def dtype_name(dtype: np.dtype) -> str:
    return np.dtype(dtype).newbyteorder("=").name


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _local_writer(path: str):
    return open(path, "wb")


def write_shard(directory: str, index: int, tokens: np.ndarray, doc_starts: np.ndarray,
                source_tokens: dict[str, int], tokenizer_sha256: str,
                open_write: Callable[[str], Any] = _local_writer) -> dict[str, Any]:
    """Write one shard's three files; return its metadata (also its entry in dataset.json).
    `open_write` opens a path for writing (a Beam filesystem's `create` on a cluster)."""
    if tokens.dtype not in (TOKEN_DTYPE, WIDE_TOKEN_DTYPE):
        raise ShardFormatError(f"tokens must be uint16 or uint32, got {tokens.dtype}")
    starts = np.asarray(doc_starts, dtype=INDEX_DTYPE)
    if len(starts) and (starts[0] < 0 or starts[-1] >= len(tokens) or np.any(np.diff(starts) <= 0)):
        raise ShardFormatError("document starts must be increasing offsets inside the shard")
    name = shard_name(index)
    token_bytes, index_bytes = tokens.tobytes(), starts.tobytes()
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "tokenizer_sha256": tokenizer_sha256,
        "token_dtype": dtype_name(tokens.dtype),
        "tokens": int(len(tokens)), "documents": int(len(starts)),
        "continued_tokens": int(starts[0]) if len(starts) else int(len(tokens)),
        "sources": {k: int(v) for k, v in sorted(source_tokens.items())},
        "sha256": {"bin": sha256_bytes(token_bytes), "idx": sha256_bytes(index_bytes)},
    }
    for suffix, data in ((".bin", token_bytes), (".idx", index_bytes),
                         (".json", json.dumps(meta, indent=1, sort_keys=True).encode())):
        with open_write(os.path.join(directory, name + suffix)) as f:
            f.write(data)
    return meta


def _replace_local(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_manifest(directory: str, shards: list[dict[str, Any]], header: dict[str, Any],
                   write_atomically: Callable[[str, bytes], None] = _replace_local) -> dict[str, Any]:
    """Write dataset.json, last, from the shards' metadata. `write_atomically(path, data)` makes it appear
    whole (a temporary name renamed locally; a Beam filesystem's writer on a cluster)."""
    shards = sorted(shards, key=lambda s: s["name"])
    expected = [shard_name(i) for i in range(len(shards))]
    if [s["name"] for s in shards] != expected:
        raise ShardFormatError(f"shards are not numbered 0..{len(shards) - 1}")
    dtype = dtype_name(token_dtype(header["vocab_size"]))
    wrong = [s["name"] for s in shards if s.get("token_dtype") != dtype]
    if wrong:
        raise ShardFormatError(f"{wrong[0]} does not hold {dtype} tokens, the dtype of a vocabulary of "
                               f"{header['vocab_size']}")
    per_source: dict[str, int] = {}
    for s in shards:
        for src, n in s["sources"].items():
            per_source[src] = per_source.get(src, 0) + n
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "token_dtype": dtype, **header,
                "num_tokens": sum(s["tokens"] for s in shards),
                "num_documents": sum(s["documents"] for s in shards),
                "source_tokens": dict(sorted(per_source.items())),
                "shards": [{k: s[k] for k in ("name", "tokens", "documents", "continued_tokens", "sources", "sha256")}
                           for s in shards]}
    write_atomically(os.path.join(directory, MANIFEST), json.dumps(manifest, indent=1, sort_keys=True).encode())
    return manifest


def _as_tokens(tokens, dtype: np.dtype) -> np.ndarray:
    """`tokens` as `dtype`, refusing ids the dtype cannot hold instead of wrapping them around."""
    array = np.asarray(tokens)
    if array.dtype != dtype and array.size and (array.min() < 0 or array.max() > np.iinfo(dtype).max):
        raise ShardFormatError(f"token ids {array.min()}..{array.max()} do not fit {dtype_name(dtype)}")
    return array.astype(dtype, copy=False)


def pack(documents: Iterable[tuple[str, np.ndarray]], shard_tokens: int, dtype: np.dtype = TOKEN_DTYPE
         ) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, int]]]:
    """Cut a stream of (source, tokens) documents into shards of exactly `shard_tokens` tokens (the last
    fewer): yields (tokens as `dtype`, document starts, tokens per source) per shard."""
    if shard_tokens < 1:
        raise ShardFormatError("shard_tokens must be >= 1")
    buf = np.empty(shard_tokens, dtype=dtype)
    fill, starts, sources = 0, [], {}
    for source, tokens in documents:
        tokens = _as_tokens(tokens, dtype)
        pos, first = 0, True
        while pos < len(tokens):
            take = min(shard_tokens - fill, len(tokens) - pos)
            if first:
                starts.append(fill)
                first = False
            buf[fill:fill + take] = tokens[pos:pos + take]
            sources[source] = sources.get(source, 0) + take
            fill, pos = fill + take, pos + take
            if fill == shard_tokens:
                yield buf.copy(), np.array(starts, dtype=INDEX_DTYPE), sources
                fill, starts, sources = 0, [], {}
    if fill:
        yield buf[:fill].copy(), np.array(starts, dtype=INDEX_DTYPE), sources


def write_token_dataset(directory: str, documents: Iterable[tuple[str, np.ndarray]], shard_tokens: int,
                        vocab_size: int, eos_id: int = 2, bos_id: int = 1, tokenizer_sha256: str = "",
                        extra: dict[str, Any] | None = None) -> str:
    """Write (source, tokens ending with EOS) documents, in the order given, as a dataset; return its
    directory. One process, local disk: for tests, tools and small sets (the shard job writes big ones)."""
    dtype = token_dtype(vocab_size)
    os.makedirs(directory, exist_ok=True)
    shards = [write_shard(directory, i, toks, starts, srcs, tokenizer_sha256)
              for i, (toks, starts, srcs) in enumerate(pack(documents, shard_tokens, dtype))]
    header = {"vocab_size": vocab_size, "eos_id": eos_id, "bos_id": bos_id, "shard_tokens": shard_tokens,
              "tokenizer": {"sha256": tokenizer_sha256}, **(extra or {})}
    write_manifest(directory, shards, header)
    return directory


class TokenDataset:
    """Random access to the token stream of a dataset, memory-mapped. Opening it checks every shard's
    name and file sizes; each shard's checksums and token ids (below vocab_size) are verified the first
    time it is read (`verify=False` trusts the files' contents)."""

    def __init__(self, path: str, verify: bool = True):
        self.directory = os.path.dirname(path) if path.endswith(".json") else path
        manifest_path = os.path.join(self.directory, MANIFEST)
        if not os.path.exists(manifest_path):
            raise FileNotFoundError(f"{manifest_path} not found: not a token dataset, or its build did not finish")
        with open(manifest_path, "rb") as f:
            self.manifest = json.load(f)
        if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") not in READABLE_VERSIONS:
            raise ShardFormatError(f"{manifest_path}: format {self.manifest.get('format')!r} version "
                                   f"{self.manifest.get('format_version')!r}; this reader knows {FORMAT} "
                                   f"{', '.join(map(str, READABLE_VERSIONS))}")
        self.verify = verify
        self.shards = self.manifest["shards"]
        self.num_tokens = int(self.manifest["num_tokens"])
        self.vocab_size = int(self.manifest["vocab_size"])
        self.eos_id, self.bos_id = int(self.manifest["eos_id"]), int(self.manifest["bos_id"])
        self.tokenizer_sha256 = self.manifest.get("tokenizer", {}).get("sha256", "")
        self.token_dtype = self._token_dtype(manifest_path)
        self._check_shards(manifest_path)
        self._offsets = np.cumsum([0] + [s["tokens"] for s in self.shards]).tolist()
        self._open: dict[int, np.ndarray] = {}
        self._verified: set[int] = set()

    def _token_dtype(self, manifest_path: str) -> np.dtype:
        """Version 1: uint16, no field. Version 2: the recorded dtype, which must be the vocabulary's."""
        if self.manifest["format_version"] == 1:
            if not 0 < self.vocab_size <= np.iinfo(TOKEN_DTYPE).max + 1:
                raise ShardFormatError(f"{manifest_path}: vocab_size {self.vocab_size} does not fit uint16 tokens")
            return TOKEN_DTYPE
        name = self.manifest.get("token_dtype")
        try:
            expected = token_dtype(self.vocab_size)
        except ShardFormatError as exc:
            raise ShardFormatError(f"{manifest_path}: {exc}") from None
        if DTYPE_NAMES.get(name) != expected:
            raise ShardFormatError(f"{manifest_path}: token_dtype {str(name)[:50]!r}, but a vocabulary of "
                                   f"{self.vocab_size} has {dtype_name(expected)} tokens")
        return expected

    def _check_shards(self, manifest_path: str) -> None:
        """Every entry names this format's shard of its position, and that shard's files have the sizes the
        entry gives: a foreign name, a missing or a truncated file is an error when the dataset opens,
        not when training reaches it. Sizes only: checksums are verified when a shard is first read."""
        if not isinstance(self.shards, list):
            raise ShardFormatError(f"{manifest_path}: shards must be a list, not {type(self.shards).__name__}")
        for i, entry in enumerate(self.shards):
            name = entry.get("name") if isinstance(entry, dict) else None
            if name != shard_name(i):
                raise ShardFormatError(f"{manifest_path}: shards[{i}]: name {str(name)[:200]!r} is not "
                                       f"{shard_name(i)!r}: shards are named by the format, in order")
            for field in ("tokens", "documents"):
                if isinstance(entry.get(field), bool) or not isinstance(entry.get(field), int) or entry[field] < 0:
                    raise ShardFormatError(f"{manifest_path}: shards[{i}] ({name}): {field} "
                                           f"{entry.get(field)!r} is not a count")
            for suffix, field, dtype in ((".bin", "tokens", self.token_dtype), (".idx", "documents", INDEX_DTYPE)):
                self._check_size(os.path.join(self.directory, name + suffix), entry[field], field, dtype)
        total = sum(entry["tokens"] for entry in self.shards)
        if total != self.num_tokens:
            raise ShardFormatError(f"{manifest_path}: num_tokens {self.num_tokens} but the shards hold {total}")

    @staticmethod
    def _check_size(path: str, count: int, what: str, dtype: np.dtype) -> None:
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            raise ShardFormatError(f"{path}: {exc.strerror}: the dataset is incomplete") from None
        if size != count * dtype.itemsize:
            raise ShardFormatError(f"{path}: {size} bytes, but {MANIFEST} gives {count} {what} "
                                   f"({count * dtype.itemsize} bytes): the file is truncated or not this shard's")

    def __len__(self) -> int:
        return self.num_tokens

    def _shard(self, i: int) -> np.ndarray:
        arr = self._open.get(i)
        if arr is None:
            entry = self.shards[i]
            path = os.path.join(self.directory, entry["name"] + ".bin")
            if self.verify and i not in self._verified:
                for suffix in ("bin", "idx"):
                    got = sha256_file(os.path.join(self.directory, f"{entry['name']}.{suffix}"))
                    if got != entry["sha256"][suffix]:
                        raise ShardFormatError(f"{entry['name']}.{suffix}: checksum {got} does not match "
                                               f"{entry['sha256'][suffix]} in {MANIFEST}: the file is damaged")
            size = os.path.getsize(path)
            if size != entry["tokens"] * self.token_dtype.itemsize:
                raise ShardFormatError(f"{path}: {size} bytes, expected {entry['tokens']} tokens")
            arr = np.memmap(path, dtype=self.token_dtype, mode="r") if size else np.empty(0, self.token_dtype)
            if self.verify and i not in self._verified:
                self._check_vocabulary(entry["name"], arr)
            self._verified.add(i)
            self._open[i] = arr
        return arr

    def release(self, i: int) -> None:
        """Unmap shard `i` (it stays verified): a pass over the whole dataset calls this after each shard,
        so that its mapped pages are not held until the end."""
        self._open.pop(i, None)

    def _check_vocabulary(self, name: str, tokens: np.ndarray) -> None:
        """Every token id is below vocab_size: a larger one would index past the model's embedding."""
        if len(tokens) and int(tokens.max()) >= self.vocab_size:
            offset = int(np.argmax(tokens >= self.vocab_size))
            raise ShardFormatError(f"{name}.bin: token {int(tokens[offset])} at offset {offset} is outside the "
                                   f"vocabulary of {self.vocab_size} in {MANIFEST}")

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of the whole stream, as a new array of the dataset's dtype."""
        if start < 0 or length < 0 or start + length > self.num_tokens:
            raise IndexError(f"tokens [{start}, {start + length}) outside a dataset of {self.num_tokens}")
        out = np.empty(length, dtype=self.token_dtype)
        done = 0
        i = bisect.bisect_right(self._offsets, start) - 1
        while done < length:
            local = start + done - self._offsets[i]
            take = min(length - done, self.shards[i]["tokens"] - local)
            out[done:done + take] = self._shard(i)[local:local + take]
            done += take
            i += 1
        return out

    def num_sequences(self, seq_len: int) -> int:
        return max(0, (self.num_tokens - 1) // seq_len)

    def sequence(self, i: int, seq_len: int) -> np.ndarray:
        """seq_len + 1 tokens starting at i * seq_len: inputs are [:-1], targets [1:]."""
        if not 0 <= i < self.num_sequences(seq_len):
            raise IndexError(f"sequence {i} of length {seq_len} outside {self.num_sequences(seq_len)} sequences")
        return self.read(i * seq_len, seq_len + 1)

    def document_starts(self, shard: int) -> np.ndarray:
        """Global offsets of the documents that start in `shard`."""
        entry = self.shards[shard]
        local = np.fromfile(os.path.join(self.directory, entry["name"] + ".idx"), dtype=INDEX_DTYPE)
        self._shard(shard)  # verifies the shard's checksums once
        return local + self._offsets[shard]

    def document_ends(self) -> Iterator[np.ndarray]:
        """Where every document ends (global offsets, increasing), one array per shard read: the next
        document's start, and the end of the stream for the last. Bounded by one shard's index."""
        first = True
        for i in range(len(self.shards)):
            starts = self.document_starts(i)
            self.release(i)
            if first and len(starts):
                if starts[0] != 0:
                    raise ShardFormatError(f"{self.shards[i]['name']}: the first document starts at {starts[0]}: "
                                           "the tokens before it belong to no document")
                starts, first = starts[1:], False
            if len(starts):
                yield starts
        if first and self.num_tokens:
            raise ShardFormatError(f"{self.directory}: {self.num_tokens} tokens but no document starts")
        if self.num_tokens:
            yield np.array([self.num_tokens], dtype=INDEX_DTYPE)

    def documents(self) -> Iterator[np.ndarray]:
        """Every document's tokens, in stream order (a document ends where the next starts). Reads one
        shard's index at a time: a dataset's whole index can be larger than memory."""
        start = None
        for i in range(len(self.shards)):
            for nxt in self.document_starts(i).tolist():
                if start is not None:
                    yield self.read(start, nxt - start)
                start = nxt
        if start is not None:
            yield self.read(start, self.num_tokens - start)
