"""CCNet's line-level dedup over the whole run: a line (normalised, `pipeline.lines`) found in two or more
documents is removed from all of them (`remove-all`, CCNet's choice) or from all but the first
(`keep-first`). Blank lines never count."""
from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.engine.steps import Round, WholeRunStep, group_sizes, group_starts
from pipeline.runtime.counters import doc_bytes, inc
from pipeline.schema import Document

LINE_ENTRY = np.dtype([("h", "<u8"), ("key", "<u8")])
LINE_DROP = np.dtype([("key", "<u8"), ("h", "<u8")])
MODES = ("remove-all", "keep-first", "off")


def line_entries(view) -> np.ndarray:
    h, k = view.distinct_lines(view.live_keys())
    out = np.zeros(len(h), dtype=LINE_ENTRY)
    out["h"], out["key"] = h, k
    return out


class LineDedup(WholeRunStep):
    stage = "line_dedup"
    changes_text = True

    def __init__(self, mode: str = "remove-all"):
        if mode not in MODES[:2]:
            raise ValueError(f"line dedup mode must be remove-all or keep-first, not {mode!r}")
        self.keep_first = mode == "keep-first"

    def rounds(self) -> list[Round]:
        return [Round(self.stage, LINE_ENTRY, LINE_DROP, line_entries, self._decide)]

    def _decide(self, entries: np.ndarray) -> np.ndarray:
        repeated = group_sizes(entries["h"]) >= 2
        if self.keep_first:
            repeated &= ~group_starts(entries["h"])
        out = np.zeros(int(repeated.sum()), dtype=LINE_DROP)
        out["key"], out["h"] = entries["key"][repeated], entries["h"][repeated]
        return out

    def apply(self, key: int, doc: Document, view) -> Document:
        hashes = view.lines_of(key).tolist()
        drop = set(view.results_for(self.stage, key)["h"].tolist())
        n_in = sum(1 for h in hashes if h)
        removed = sum(1 for h in hashes if h in drop)
        inc(f"{self.stage}.lines_in", n_in)
        inc(f"{self.stage}.lines_removed", removed)
        text = doc.text
        if drop:
            text = "\n".join(ln for ln, h in zip(doc.text.split("\n"), hashes) if h not in drop)
            inc(f"{self.stage}.trimmed_bytes", doc_bytes(doc.text) - doc_bytes(text))
        meta = {**doc.metadata, "lines": n_in, "lines_removed_by_dedup": removed}
        return dataclasses.replace(doc, text=text, metadata=meta)
