#!/usr/bin/env python3
"""Memory of a curation job as the corpus grows: peak resident memory of the whole process tree (runner
and worker processes) on the first quarter, half and all of a WET file's documents, and the growth per
input document.

    python benchmarks/cc_memory.py WET_FILE [--source cc|c4|books] [--repeat N] [--workers 2] [--work DIR]
        [-- options]

The prefixes are written in the source's input format: new WET files of the file's first records
(warcinfo included) for `cc` and `c4` (C4 reads raw pages), one JSONL book per document for `books`. The
growth is the slope of a least-squares line through the three (documents, peak) points; a job whose memory
does not grow with the corpus has a slope near 0. One run's peak moves by a few tens of MiB from run to
run (the moment the sampler catches), which over 15,000 documents is a few KB per document: with
--repeat N each point is the median of N runs.
"""
from __future__ import annotations

import argparse
import atexit
import gzip
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cc_pipeline import run_job  # noqa: E402

RECORD = b"WARC/1.0\r\n"


def records(path: str) -> list[bytes]:
    with gzip.open(path, "rb") as f:
        data = f.read()
    starts = _starts(data)
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


def _starts(data: bytes) -> list[int]:
    out, i = [], data.find(RECORD)
    while i != -1:
        out.append(i)
        i = data.find(RECORD, i + 1)
    return out


def write_prefix(recs: list[bytes], n_docs: int, path: str) -> None:
    """The warcinfo record and the first `n_docs` records after it, one gzip member per record as CC."""
    with open(path, "wb") as f:
        for rec in recs[: n_docs + 1]:
            f.write(gzip.compress(rec, compresslevel=1))


def write_books(recs: list[bytes], n_docs: int, path: str) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i, rec in enumerate(recs[1: n_docs + 1]):
            text = rec.partition(b"\r\n\r\n")[2].rstrip(b"\r\n").decode("utf-8", "replace")
            f.write(json.dumps({"title": f"Book {i}", "text": text}) + "\n")


def parse(ap: argparse.ArgumentParser) -> tuple[argparse.Namespace, list[str]]:
    """The script's own arguments, and those after `--` (more options for the job)."""
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    return ap.parse_args(argv[:cut]), argv[cut + 1:]


def prepared(ap: argparse.ArgumentParser) -> tuple[argparse.Namespace, list[str], str]:
    """Arguments, the job's extra options and the scratch directory: --work, or a temporary one this script
    makes and removes at exit. Job outputs in it are re-used by the jobs' own output rules."""
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", help="scratch directory (default: a temporary one, removed)")
    a, extra = parse(ap)
    if a.work:
        os.makedirs(a.work, exist_ok=True)
        return a, extra, a.work
    work = tempfile.mkdtemp(prefix="smallgiant-bench.")
    atexit.register(shutil.rmtree, work, True)
    return a, extra, work


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wet")
    ap.add_argument("--source", choices=["cc", "c4", "books"], default="cc")
    ap.add_argument("--repeat", type=int, default=1, help="runs per point; each point is their median peak")
    a, extra, work = prepared(ap)
    recs = records(a.wet)
    n = len(recs) - 1
    points = []
    for share in (0.25, 0.5, 1.0):
        docs = round(n * share)
        if a.source == "books":
            path = os.path.join(work, f"books-{docs}.jsonl.gz")
            write_books(recs, docs, path)
        else:
            path = os.path.join(work, f"prefix-{docs}.warc.wet.gz")
            write_prefix(recs, docs, path)
        out = os.path.join(work, f"out-{a.source}-{docs}")
        runs = [run_job(path, out, a.workers, extra, a.source) for _ in range(max(1, a.repeat))]
        peaks = sorted(peak for _, peak in runs)
        peak = peaks[len(peaks) // 2]
        with open(os.path.join(out, "stats.json")) as f:
            stats = json.load(f)
        points.append((stats["documents_in"], peak))
        each = f" (runs: {', '.join(f'{p / 2**20:,.0f}' for p in peaks)})" if len(runs) > 1 else ""
        print(f"{a.source} {share:>5.0%} of the file: {stats['documents_in']:,} documents in, "
              f"{stats['documents_out']:,} kept, {runs[0][0]:.1f} s, peak {peak / 2**20:,.0f} MiB{each}", flush=True)
    growth = slope([p[0] for p in points], [p[1] for p in points])
    print(f"{a.source} growth: {growth / 1024:,.2f} KB per input document "
          f"(quarter -> whole: {(points[-1][1] - points[0][1]) / 2**20:+,.0f} MiB for "
          f"{points[-1][0] - points[0][0]:,} documents); whole-file peak {points[-1][1] / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
