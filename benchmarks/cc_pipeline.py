#!/usr/bin/env python3
"""Benchmark of the CC job: docs/s and docs/s per core, overall and per stage, and peak memory.

    python benchmarks/cc_pipeline.py WET_FILE [--truth TRUTH.jsonl.gz] [--eval EVAL_SCRIPT] [--workers N]
        [--out DIR] [--repeat K] [-- extra smallgiant options]

Runs `smallgiant pipeline cc` as a child process (so that the memory of the whole process tree, the
runner and its worker processes, is sampled), then prints the funnel figures from stats.json. With a
planted-truth file (one JSON line per record with `id`, `lang`, `exact_dup_of`, `near_dup_of`,
`is_junk`) it also reports how duplicate groups fared: whether each kept a member through document
dedup, and where the members of groups that lost all of them were dropped. With `--eval` it runs an
external scoring script as `EVAL OUT_DIR TRUTH` and prints its last line.
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys
import time


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes (Linux /proc)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children[ppid].append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def run_job(wet: str, out: str, workers: int, extra: list[str], source: str = "cc") -> tuple[float, int]:
    """Run `smallgiant pipeline SOURCE` as a child process, all of it (`--fresh`: nothing resumed from an
    earlier run in `out`); (wall seconds, peak RSS of its process tree)."""
    exe = shutil.which("smallgiant") or os.path.join(os.path.dirname(sys.executable), "smallgiant")
    cmd = [exe, "pipeline", source, "--input", wet, "--output", out, "--fresh", f"--direct_num_workers={workers}",
           "--direct_running_mode=" + ("multi_processing" if workers > 1 else "in_memory"), *extra]
    t0 = time.time()
    proc = subprocess.Popen(cmd)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.25)
    if proc.returncode:
        raise SystemExit(f"job failed with exit code {proc.returncode}")
    return time.time() - t0, peak


def group_report(out: str, truth_path: str, lang: str = "en") -> dict:
    import pyarrow.parquet as pq
    truth = {t["id"]: t for t in map(json.loads, gzip.open(truth_path, "rt", encoding="utf-8"))}
    where: dict[str, str] = {}
    for f in glob.glob(os.path.join(out, "docs", "*.parquet")):
        for i in pq.read_table(f, columns=["id"]).column("id").to_pylist():
            where[i] = "kept"
    for f in glob.glob(os.path.join(out, "rejects", "*.parquet")):
        t = pq.read_table(f, columns=["id", "stage"])
        for i, s in zip(t.column("id").to_pylist(), t.column("stage").to_pylist()):
            where[i] = s
    groups: dict[str, set] = collections.defaultdict(set)
    for t in truth.values():
        root = t["exact_dup_of"] or t["near_dup_of"]
        if root and t["lang"] == lang:
            groups[root] |= {t["id"], root}
    groups = {r: g for r, g in groups.items() if truth[r]["lang"] == lang and not truth[r]["is_junk"]}
    dedup = {"exact_dedup", "near_dedup"}
    through_dedup = sum(any(where.get(i) not in dedup for i in g) for g in groups.values())
    lost = [g for g in groups.values() if not any(where.get(i) == "kept" for i in g)]
    lost_at = collections.Counter(
        ",".join(sorted({where.get(i, "?") for i in g} - dedup)) or "dedup" for g in lost)
    return {"groups": len(groups), "kept_a_member_through_dedup": through_dedup,
            "kept_a_member_in_output": len(groups) - len(lost),
            "groups_lost_by_stage_of_their_survivor": dict(lost_at)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("wet")
    ap.add_argument("--truth")
    ap.add_argument("--eval", help="scoring script, run as EVAL OUT_DIR TRUTH")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="/tmp/smallgiant-bench")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("extra", nargs="*", help="more smallgiant options, after --")
    a = ap.parse_args()

    runs = []
    for _ in range(a.repeat):
        wall, peak = run_job(a.wet, a.out, a.workers, a.extra)
        with open(os.path.join(a.out, "stats.json")) as f:
            runs.append((wall, peak, json.load(f)))
    runs.sort(key=lambda r: r[0])
    wall, peak, stats = runs[len(runs) // 2]
    docs = stats["documents_in"]
    print(f"\n== {a.wet}: {docs:,} documents, {a.workers} worker processes, median of {a.repeat} run(s)")
    print(f"job wall (process start to exit) {wall:.1f} s: {docs / wall:,.1f} docs/s, "
          f"{docs / wall / a.workers:,.1f} docs/s per core; pipeline wall {stats['wall_seconds']:.1f} s")
    print(f"peak RSS of the process tree: {peak / 2**20:,.0f} MiB")
    print(f"{'stage':<16}{'docs in':>9}{'core s':>9}{'docs/core s':>13}")
    for row in stats["stages"]:
        rate = row["docs_per_core_second"]
        print(f"{row['stage']:<16}{row['docs_in']:>9,}{row['seconds']:>9.1f}{(f'{rate:,.0f}' if rate else '-'):>13}")
    for name, sec in stats["extra_seconds"].items():
        print(f"{name:<16}{'':>9}{sec:>9.1f}")
    if a.truth:
        print("duplicate groups:", json.dumps(group_report(a.out, a.truth)))
    if a.eval and a.truth:
        res = subprocess.run([sys.executable, a.eval, a.out, a.truth], capture_output=True, text=True)
        print("eval:", (res.stdout.strip().splitlines() or [res.stderr.strip()])[-1])


if __name__ == "__main__":
    main()
