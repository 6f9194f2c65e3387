"""Length as a step: a document shorter than `min_chars` characters (after line dedup) is rejected."""
from __future__ import annotations

from pipeline.schema import Document
from pipeline.sources.base import Step


def length_step(min_chars: int, stage: str = "length") -> Step:
    def judge(doc: Document) -> Document | str:
        n = len(doc.text)
        return f"{n} characters after dedup < {min_chars}" if n < min_chars else doc

    return Step(stage, judge)
