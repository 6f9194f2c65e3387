"""Data the tests make: WET files written with the product's own record writer, with faults on demand."""
from __future__ import annotations

import glob
import os
import uuid

import pyarrow.parquet as pq

from pipeline.sample_crawl import make_pages, wet_bytes
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
