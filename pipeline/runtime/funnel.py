"""A job's summary from its counters: documents and bytes into and out of every stage, time per stage,
language histogram, throughput. Written to stats.json and printed at the end of every curation job.

Counters follow one naming rule (`pipeline.runtime.counters`): `read.records`, `read.docs_out`,
`read.bytes_out`, `read.dead_letters`, `read.skipped_records`; per stage `<stage>.rejected`,
`<stage>.rejected_bytes`, `<stage>.trimmed_bytes` (bytes a stage removed from documents it kept),
`<stage>.merged` (documents folded into others, e.g. answers into their question) and `<stage>.us`; `kept.docs`, `kept.bytes` and `language.<code>` for what was written.
"""
from __future__ import annotations

from typing import Any

from pipeline.runtime.counters import NAMESPACE


def counters_of(result) -> dict[str, int]:
    from apache_beam.metrics.metric import MetricsFilter
    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    out: dict[str, int] = {}
    for c in found:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def rate(n: int, seconds: float) -> float | None:
    return round(n / seconds, 1) if seconds > 0 else None


def read_row(c: dict[str, int]) -> dict[str, Any]:
    return {"stage": "read", "docs_in": c.get("read.records", 0), "docs_out": c.get("read.docs_out", 0),
            "bytes_out": c.get("read.bytes_out", 0), "seconds": c.get("read.us", 0) / 1e6}


def stage_row(c: dict[str, int], stage: str, docs: int, size: int) -> dict[str, Any]:
    """A stage that rejects some documents and may trim others, fed `docs` documents of `size` bytes."""
    g = lambda name: c.get(f"{stage}.{name}", 0)  # noqa: E731
    return {"stage": stage, "docs_in": docs, "docs_out": docs - g("rejected") - g("merged"), "bytes_in": size,
            "bytes_out": size - g("rejected_bytes") - g("trimmed_bytes"), "seconds": g("us") / 1e6}


def finish_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["seconds"] = round(row["seconds"], 3)
        row["docs_per_core_second"] = rate(row["docs_in"], row["seconds"])
    return rows


def languages(c: dict[str, int], prefix: str) -> dict[str, int]:
    langs = {k[len(prefix):]: v for k, v in c.items() if k.startswith(prefix)}
    return dict(sorted(langs.items(), key=lambda kv: (-kv[1], kv[0])))


def summary(c: dict[str, int], rows: list[dict[str, Any]], langs: dict[str, int], wall_seconds: float,
            cores: int | None) -> dict[str, Any]:
    inputs = c.get("read.docs_out", 0)
    return {
        "files": c.get("read.files", 0),
        "records": c.get("read.records", 0),
        "skipped_records": c.get("read.skipped_records", 0),
        "dead_letters": c.get("read.dead_letters", 0),
        "documents_in": inputs,
        "documents_out": c.get("kept.docs", 0),
        "bytes_out": c.get("kept.bytes", 0),
        "stages": finish_rows(rows),
        "languages": langs,
        "wall_seconds": round(wall_seconds, 2),
        "cores": cores,
        "docs_per_second": rate(inputs, wall_seconds),
        "docs_per_second_per_core": rate(inputs, wall_seconds * cores) if cores else None,
    }


def stage_funnel(c: dict[str, int], stages: list[str], wall_seconds: float, cores: int | None) -> dict[str, Any]:
    """The funnel of a job whose stages run one after the other on every document."""
    rows = [read_row(c)]
    for stage in stages:
        rows.append(stage_row(c, stage, rows[-1]["docs_out"], rows[-1]["bytes_out"]))
    return summary(c, rows, languages(c, "language."), wall_seconds, cores)


def format_funnel(f: dict[str, Any]) -> str:
    lines = [f"{'stage':<16}{'docs in':>10}{'docs out':>10}{'MB in':>9}{'MB out':>9}{'core s':>9}{'docs/core s':>13}"]
    for row in f["stages"]:
        mb_in = f"{row['bytes_in'] / 1e6:9.2f}" if "bytes_in" in row else f"{'':>9}"
        r = row["docs_per_core_second"]
        lines.append(f"{row['stage']:<16}{row['docs_in']:>10,}{row['docs_out']:>10,}{mb_in}"
                     f"{row['bytes_out'] / 1e6:9.2f}{row['seconds']:9.1f}{(f'{r:,.0f}' if r else '-'):>13}")
        if "lines_removed" in row:
            lines.append(f"{'':<16}lines removed: {row['lines_removed']:,} of {row['lines_in']:,}")
    top = ", ".join(f"{k} {v:,}" for k, v in list(f["languages"].items())[:10])
    lines += [f"records read {f['records']:,} ({f['skipped_records']:,} skipped, {f['dead_letters']:,} dead letters)"]
    if top:
        lines.append(f"languages: {top}")
    lines.append(f"kept {f['documents_out']:,} of {f['documents_in']:,} documents in {f['wall_seconds']:.1f} s: "
                 f"{f['docs_per_second'] or 0:,.0f} docs/s"
                 + (f", {f['docs_per_second_per_core']:,.0f} docs/s per core ({f['cores']} local workers)"
                    if f["cores"] else ""))
    return "\n".join(lines)
