"""The quality slot as steps: each scorer (`pipeline.quality.QualityScorer`: the perplexity buckets, the
Wikipedia-reference classifier) adds its scores to the metadata and may reject the document."""
from __future__ import annotations

import dataclasses

from pipeline.quality import QualityScorer
from pipeline.schema import Document, Rejected
from pipeline.sources.base import Step


def quality_steps(scorers: list[QualityScorer]) -> list[Step]:
    """One step per scorer, its model loaded (call once per worker)."""
    steps = []
    for scorer in scorers:
        scorer.load()
        steps.append(Step(f"quality.{scorer.name}", _judge(scorer)))
    return steps


def _judge(scorer: QualityScorer):
    stage = f"quality.{scorer.name}"

    def judge(doc: Document) -> Document | Rejected:
        scores = scorer.score(doc)
        doc = dataclasses.replace(doc, metadata={**doc.metadata, **scores})
        reason = scorer.reject_reason(doc, scores)
        return Rejected(doc, stage, reason) if reason else doc

    return judge
