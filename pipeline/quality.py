"""The quality-scoring slot of the CommonCrawl job.

A scorer annotates a document with scores and may reject it. The CC job runs its scorers in order after
language ID, on the deduplicated text; a rejected document is written to `rejects/` with its scores, so a
threshold can be changed later without scoring again. Later stages (the n-gram perplexity filter, the
Wikipedia-reference classifier) plug in by subclassing `QualityScorer`; nothing here imports Beam or any
model library, and a scorer imports its own model library only in `load()`, which runs once per worker.
"""
from __future__ import annotations

from typing import Any

from pipeline.schema import Document


class QualityScorer:
    """Subclasses set `name` and implement `score`; `load` and `reject_reason` are optional."""

    name = "quality"

    def load(self) -> None:
        """Load models; called once per worker before the first document."""

    def score(self, doc: Document) -> dict[str, Any]:
        """Annotations to merge into the document's metadata."""
        raise NotImplementedError

    def reject_reason(self, doc: Document, scores: dict[str, Any]) -> str | None:
        """Why the document is dropped, or None to keep it."""
        return None

