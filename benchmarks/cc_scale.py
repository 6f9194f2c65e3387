#!/usr/bin/env python3
"""The CC job at 10x a WET file's size: seeded variants of its records, one input file per copy, through
the job on the local runner; prints the wall time and the peak resident memory of the process tree.

    python benchmarks/cc_scale.py WET_FILE [--copies 10] [--workers 2] [--work DIR] [-- extra options]

Copy 0 is the file itself. In copy c > 0 each line is rewritten by a generator seeded with (c, line): about
30% of its words are replaced by other words of the same line, so that copies share no line and no
near-duplicate pair with each other (every copy keeps the file's own exact and near duplicates and its
repeated boilerplate, since equal lines are rewritten equally) while each line keeps its language.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cc_memory import prepared, records  # noqa: E402
from cc_pipeline import run_job  # noqa: E402


def variant_line(line: str, copy: int) -> str:
    words = line.split(" ")
    if len(words) < 2:
        return line
    rng = random.Random(zlib.crc32(line.encode("utf-8", "surrogatepass")) * 1000 + copy)
    return " ".join(words[rng.randrange(len(words))] if rng.random() < 0.3 else w for w in words)


def variant_record(rec: bytes, copy: int) -> bytes:
    head, sep, body = rec.partition(b"\r\n\r\n")
    if b"WARC-Type: conversion" not in head or not sep:
        return rec
    text = body.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
    new = ("\n".join(variant_line(ln, copy) for ln in text.split("\n")) + "\n").encode("utf-8", "surrogateescape")
    lines = []
    for h in head.split(b"\r\n"):
        if h.startswith(b"Content-Length:"):
            h = b"Content-Length: %d" % len(new)
        elif h.startswith(b"WARC-Target-URI:"):
            h = h + b"?copy=%d" % copy
        elif h.startswith(b"WARC-Record-ID:"):
            h = h.replace(b"urn:uuid:", b"urn:uuid:c%d-" % copy)
        lines.append(h)
    return b"\r\n".join(lines) + b"\r\n\r\n" + new + b"\r\n\r\n"


def write_copies(wet: str, copies: int, directory: str) -> int:
    recs = records(wet)
    for c in range(copies):
        with open(os.path.join(directory, f"copy-{c:02d}.warc.wet.gz"), "wb") as f:
            for rec in recs:
                f.write(gzip.compress(rec if c == 0 else variant_record(rec, c), compresslevel=1))
    return (len(recs) - 1) * copies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wet")
    ap.add_argument("--copies", type=int, default=10)
    a, extra, work = prepared(ap)
    inputs = os.path.join(work, "in")
    os.makedirs(inputs, exist_ok=True)
    docs = write_copies(a.wet, a.copies, inputs)
    out = os.path.join(work, "out")
    wall, peak = run_job(os.path.join(inputs, "copy-*.warc.wet.gz"), out, a.workers, extra)
    with open(os.path.join(out, "stats.json")) as f:
        stats = json.load(f)
    print(f"{a.copies} copies: {docs:,} documents in {a.copies} files, {stats['documents_out']:,} kept, "
          f"{wall:.1f} s wall ({docs / wall:,.0f} docs/s, {a.workers} workers), peak {peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
