"""Data the tests make: WET files written with the product's own record writer, with faults on demand."""
from __future__ import annotations

import glob
import io
import os
import posixpath
import uuid

import pyarrow.parquet as pq
from apache_beam.io.filesystem import BeamIOError, FileMetadata, FileSystem

from smallgiant.samples.crawl import make_pages, wet_bytes
from pipeline.warc import warc_record_bytes

LOCAL = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]


def record_id(n: int) -> str:
    return f"<urn:uuid:{uuid.UUID(int=n, version=4)}>"


def conversion(text: bytes, rid: str, url: str = "https://x.example/", length_delta: int = 0) -> bytes:
    rec = warc_record_bytes([("WARC-Type", "conversion"), ("WARC-Target-URI", url),
                             ("WARC-Date", "2023-01-01T00:00:00Z"), ("WARC-Record-ID", rid),
                             ("Content-Type", "text/plain")], text)
    if length_delta:
        rec = rec.replace(f"Content-Length: {len(text)}".encode(), f"Content-Length: {len(text) + length_delta}".encode())
    return rec


def read_rows(directory: str, columns=None) -> list[dict]:
    rows = []
    for f in sorted(glob.glob(os.path.join(directory, "*.parquet"))):
        rows += pq.read_table(f, columns=columns).to_pylist()
    return rows


def write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def sample_wet(path: str, seed: int = 0):
    pages = make_pages(seed)
    write(path, wet_bytes(pages))
    return pages


def source_command(argv: list[str]):
    """`smallgiant pipeline SOURCE ...` parsed by the real parser of the source jobs; run it with
    `args.func(args, LOCAL)`."""
    import argparse

    from pipeline.sources.cli import add_parsers
    parser = argparse.ArgumentParser(prog="smallgiant pipeline")
    add_parsers(parser.add_subparsers(dest="source", required=True))
    return parser.parse_args(argv)


# an object store in memory, registered with Beam under memstore://
STORE: dict[str, bytes] = {}


class _Writer(io.BytesIO):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def close(self):
        STORE[self.path] = self.getvalue()
        super().close()


class MemStore(FileSystem):
    """An object store in memory with flat keys, as gs:// and s3:// are."""

    @classmethod
    def scheme(cls):
        return "memstore"

    def join(self, base, *paths):
        return posixpath.join(base, *paths)

    def split(self, path):
        return posixpath.split(path)

    def has_dirs(self):
        return False

    def _list(self, prefix):
        for key in sorted(STORE):
            if key.startswith(prefix):
                yield FileMetadata(key, len(STORE[key]))

    def mkdirs(self, path):
        pass

    def create(self, path, mime_type="application/octet-stream", compression_type=None):
        return _Writer(path)

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        if path not in STORE:
            raise BeamIOError("no such key", {path: FileNotFoundError(path)})
        return io.BytesIO(STORE[path])

    def rename(self, sources, targets):
        for s, t in zip(sources, targets):
            STORE[t] = STORE.pop(s)

    def delete(self, paths):
        for p in paths:
            for key in [k for k in STORE if k == p or k.startswith(p.rstrip("/") + "/")]:
                del STORE[key]

    def exists(self, path):
        return path in STORE or any(k.startswith(path.rstrip("/") + "/") for k in STORE)

    def size(self, path):
        return len(STORE[path])

    def metadata(self, path):
        return FileMetadata(path, len(STORE[path]))

    copy = last_updated = checksum = None


# ---------------------------------------------------------------- trainer runs
def run_losses(run_dir) -> dict[int, float]:
    """The training loss of every logged step of a run directory."""
    import json
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if r["kind"] == "step"}


def checkpoint_weights(run_dir, step: int) -> dict:
    """The weights of a run's checkpoint at `step`, read as one process would."""
    from train.checkpoint import read_weights
    from train.model import Transformer
    from train.run_dir import load_run_config
    shapes = {n: p.shape for n, p in Transformer(load_run_config(run_dir)).named_parameters()}
    return read_weights(os.path.join(run_dir, "checkpoints", f"step-{step:08d}"), shapes)
