"""The CC job's funnel: the shared stage rows (`pipeline.runtime.funnel`) plus what only this job has:
lines removed by line dedup, the quality scorers' stages and the language histogram of language ID (every
document that reached it; `kept_languages` counts the documents kept)."""
from __future__ import annotations

from typing import Any

from pipeline.runtime.funnel import languages, read_row, stage_row, summary


def build_funnel(c: dict[str, int], dedup_stages: list[str], quality_stages: list[str], wall_seconds: float,
                 cores: int | None) -> dict[str, Any]:
    g = lambda name: c.get(name, 0)  # noqa: E731
    rows = [read_row(c)]
    for stage in dedup_stages + ["length", "lid"] + [f"quality.{q}" for q in quality_stages]:
        row = stage_row(c, stage, rows[-1]["docs_out"], rows[-1]["bytes_out"])
        if stage == "line_dedup":
            row["lines_in"], row["lines_removed"] = g("line_dedup.lines_in"), g("line_dedup.lines_removed")
        rows.append(row)
    out = summary(c, rows, languages(c, "lid.lang."), wall_seconds, cores)
    out["extra_seconds"] = {"hash_lines": round(g("hash_lines.us") / 1e6, 3)}
    return out
