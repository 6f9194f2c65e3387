"""The demo's report: `collect` (the figures, report.json), `plots` (matplotlib PNGs) and `page` (the
self-contained report.html); `write_report` writes both, each atomically."""
from __future__ import annotations

import json
import os

from pipeline.runtime.guard import write_atomically
from smallgiant.report.collect import SECTIONS, collect
from smallgiant.report.page import render_html

__all__ = ["SECTIONS", "collect", "render_html", "write_report"]


def write_report(root: str, sources: list[str], missing: dict[str, str] | None = None,
                 stage_order: list[str] | None = None) -> dict:
    """Collect, then write report.json and report.html under `root` (each atomically); the report."""
    report = collect(root, sources, stage_order)
    report["missing_sources"] = missing or {}
    report["sections"] = [sid for sid, _ in SECTIONS]
    for name, data in (("report.json", json.dumps(report, indent=1, sort_keys=True) + "\n"),
                       ("report.html", render_html(report))):
        write_atomically(os.path.join(root, name), data.encode("utf-8"))
    return report
