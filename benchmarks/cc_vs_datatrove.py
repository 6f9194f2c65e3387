#!/usr/bin/env python3
"""The CC job and datatrove side by side on one WET file, back to back: wall time, documents per second
per core, the ratio, and the share of our job's wall time spent in the stage code itself.

    python benchmarks/cc_vs_datatrove.py WET_FILE --datatrove-python PY --run-datatrove RUN_DATATROVE.py
        [--workers 2] [--work DIR]

datatrove runs through the given script (e.g. the benchmark corpus's `run_datatrove.py`: WarcReader ->
LanguageFilter(en) -> GopherQualityFilter, then its four MinHash stages) with PY, a Python that has
datatrove installed, on the file split into one shard per worker, since datatrove parallelises over
files; our job reads the file as it is. "Stage-code floor": the core-seconds measured inside reading,
hashing (content and lines), MinHash and language ID, over the job's wall time times its workers.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cc_memory import prepared, records  # noqa: E402
from cc_pipeline import run_job  # noqa: E402

FLOOR_STAGES = ("read", "exact_dedup", "near_dedup", "lid")


def split(wet: str, parts: int, directory: str) -> None:
    recs = records(wet)
    head, docs = recs[0], recs[1:]
    size = -(-len(docs) // parts)
    for i in range(parts):
        with open(os.path.join(directory, f"bench-{i:02d}.warc.wet.gz"), "wb") as f:
            for rec in [head] + docs[i * size:(i + 1) * size]:
                f.write(gzip.compress(rec, compresslevel=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wet")
    ap.add_argument("--datatrove-python", required=True)
    ap.add_argument("--run-datatrove", required=True)
    a, extra, work = prepared(ap)
    shards = os.path.join(work, "shards")
    os.makedirs(shards, exist_ok=True)
    split(a.wet, a.workers, shards)
    env = {**os.environ, "HF_HOME": os.path.join(work, "hf"), "HF_HUB_OFFLINE": "1"}
    t0 = time.time()
    subprocess.run([a.datatrove_python, a.run_datatrove, "--input", shards, "--glob", "bench-*.warc.wet.gz",
                    "--tasks", str(a.workers), "--workers", str(a.workers), "--out", os.path.join(work, "dt")],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    dt_wall = time.time() - t0
    out = os.path.join(work, "ours")
    wall, peak = run_job(a.wet, out, a.workers, extra)
    with open(os.path.join(out, "stats.json")) as f:
        stats = json.load(f)
    docs = stats["documents_in"]
    ours, theirs = docs / wall / a.workers, docs / dt_wall / a.workers
    seconds = {r["stage"]: r["seconds"] for r in stats["stages"]}
    floor = sum(seconds.get(s, 0.0) for s in FLOOR_STAGES)
    print(f"datatrove: {dt_wall:.1f} s wall, {theirs:,.1f} docs/s per core ({a.workers} workers on {a.workers} shards)")
    print(f"smallgiant: {wall:.1f} s wall, {ours:,.1f} docs/s per core ({a.workers} local workers, one file), "
          f"peak {peak / 2**20:,.0f} MiB")
    print(f"ratio per core: {ours / theirs:.2f}x")
    out2 = os.path.join(work, "ours-shards")
    wall2, _ = run_job(os.path.join(shards, "bench-*.warc.wet.gz"), out2, a.workers, extra)
    print(f"smallgiant on the same {a.workers} shards as datatrove: {wall2:.1f} s wall, "
          f"{docs / wall2 / a.workers:,.1f} docs/s per core, ratio {dt_wall / wall2:.2f}x")
    print(f"stage-code floor: {floor:.1f} core-s of {wall * a.workers:.1f} = {floor / (wall * a.workers):.0%} "
          f"({', '.join(f'{s} {seconds.get(s, 0):.1f}' for s in FLOOR_STAGES)})")


if __name__ == "__main__":
    main()
