"""The CC job's summary: documents and bytes into and out of every stage, lines removed by dedup, the
language histogram and time per stage, read from the job's counters; written to stats.json and printed."""
from __future__ import annotations

from typing import Any

from pipeline.cc.counters import NAMESPACE

STAGES = ["exact_dedup", "near_dedup", "line_dedup", "length", "lid"]


def counters_of(result) -> dict[str, int]:
    from apache_beam.metrics.metric import MetricsFilter
    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    out: dict[str, int] = {}
    for c in found:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def _rate(n: int, seconds: float) -> float | None:
    return round(n / seconds, 1) if seconds > 0 else None


def build_funnel(c: dict[str, int], quality_stages: list[str], wall_seconds: float,
                 cores: int | None) -> dict[str, Any]:
    g = lambda name: c.get(name, 0)  # noqa: E731
    docs, size = g("read.docs_out"), g("read.bytes_out")
    stages = [{"stage": "read", "docs_in": g("read.records"), "docs_out": docs, "bytes_out": size,
               "seconds": g("read.us") / 1e6}]
    for stage in STAGES + [f"quality.{q}" for q in quality_stages]:
        rej, rej_bytes = g(f"{stage}.rejected"), g(f"{stage}.rejected_bytes")
        row = {"stage": stage, "docs_in": docs, "docs_out": docs - rej, "bytes_in": size,
               "seconds": g(f"{stage}.us") / 1e6}
        if stage == "line_dedup":
            row["bytes_out"] = size - (g("line_dedup.bytes_in") - g("line_dedup.bytes_out"))
            row["lines_in"], row["lines_removed"] = g("line_dedup.lines_in"), g("line_dedup.lines_removed")
        else:
            row["bytes_out"] = size - rej_bytes
        docs, size = row["docs_out"], row["bytes_out"]
        stages.append(row)
    for row in stages:
        row["seconds"] = round(row["seconds"], 3)
        row["docs_per_core_second"] = _rate(row["docs_in"], row["seconds"])
    inputs = g("read.docs_out")
    langs = {k.split(".", 2)[2]: v for k, v in c.items() if k.startswith("lid.lang.")}
    return {
        "files": g("read.files"),
        "records": g("read.records"),
        "skipped_records": g("read.skipped_records"),
        "dead_letters": g("read.dead_letters"),
        "documents_in": inputs,
        "documents_out": g("kept.docs"),
        "bytes_out": g("kept.bytes"),
        "stages": stages,
        "extra_seconds": {"hash_lines": round(g("hash_lines.us") / 1e6, 3), "write": round(g("write.us") / 1e6, 3)},
        "languages": dict(sorted(langs.items(), key=lambda kv: (-kv[1], kv[0]))),
        "wall_seconds": round(wall_seconds, 2),
        "cores": cores,
        "docs_per_second": _rate(inputs, wall_seconds),
        "docs_per_second_per_core": _rate(inputs, wall_seconds * cores) if cores else None,
    }


def format_funnel(f: dict[str, Any]) -> str:
    lines = [f"{'stage':<16}{'docs in':>10}{'docs out':>10}{'MB in':>9}{'MB out':>9}{'core s':>9}{'docs/core s':>13}"]
    for row in f["stages"]:
        mb_in = f"{row['bytes_in'] / 1e6:9.2f}" if "bytes_in" in row else f"{'':>9}"
        rate = row["docs_per_core_second"]
        lines.append(f"{row['stage']:<16}{row['docs_in']:>10,}{row['docs_out']:>10,}{mb_in}"
                     f"{row['bytes_out'] / 1e6:9.2f}{row['seconds']:9.1f}{(f'{rate:,.0f}' if rate else '-'):>13}")
        if "lines_removed" in row:
            lines.append(f"{'':<16}lines removed: {row['lines_removed']:,} of {row['lines_in']:,}")
    top = ", ".join(f"{k} {v:,}" for k, v in list(f["languages"].items())[:10])
    lines += [f"records read {f['records']:,} ({f['skipped_records']:,} skipped, {f['dead_letters']:,} dead letters)",
              f"languages (scored documents): {top}",
              f"kept {f['documents_out']:,} of {f['documents_in']:,} documents in {f['wall_seconds']:.1f} s: "
              f"{f['docs_per_second'] or 0:,.0f} docs/s"
              + (f", {f['docs_per_second_per_core']:,.0f} docs/s per core ({f['cores']} local workers)"
                 if f["cores"] else "")]
    return "\n".join(lines)
