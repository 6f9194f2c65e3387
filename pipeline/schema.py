"""The document schema: one definition, used by every job that reads or writes documents.

A document is `id`, `url`, `source`, `text` and a `metadata` map of per-stage annotations (language,
language_score, quality scores, dedup counts, crawl date, ...). In Parquet the map is stored as a JSON
object with sorted keys, so that the column type never changes when a stage adds a key and so that the
bytes written are deterministic.

Rejected documents carry two more columns, `stage` and `reason`. Dead letters (input that could not be
read as a document at all) have their own small schema: where it was and why it failed.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import pyarrow as pa

DOC_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("url", pa.string()),
    ("source", pa.string()),
    ("text", pa.string()),
    ("metadata", pa.string()),
])

REJECT_SCHEMA = DOC_SCHEMA.append(pa.field("stage", pa.string())).append(pa.field("reason", pa.string()))

DEAD_LETTER_SCHEMA = pa.schema([
    ("file", pa.string()),
    ("offset", pa.int64()),
    ("reason", pa.string()),
    ("record_id", pa.string()),
    ("preview", pa.binary()),
])


@dataclasses.dataclass
class Document:
    id: str
    url: str
    source: str
    text: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "source": self.source, "text": self.text,
                "metadata": json.dumps(self.metadata, sort_keys=True, ensure_ascii=False)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Document":
        meta = row.get("metadata") or "{}"
        return cls(id=row["id"], url=row["url"], source=row["source"], text=row["text"],
                   metadata=json.loads(meta) if isinstance(meta, str) else dict(meta))


@dataclasses.dataclass
class Rejected:
    doc: Document
    stage: str
    reason: str

    def to_row(self) -> dict[str, Any]:
        return {**self.doc.to_row(), "stage": self.stage, "reason": self.reason}


@dataclasses.dataclass
class DeadLetter:
    """Input that is not a readable record: a corrupt gzip member, a truncated record, bad UTF-8, ..."""
    file: str
    offset: int
    reason: str
    record_id: str = ""
    preview: bytes = b""

    PREVIEW_BYTES = 256

    def to_row(self) -> dict[str, Any]:
        return {"file": self.file, "offset": self.offset, "reason": self.reason,
                "record_id": self.record_id, "preview": self.preview[: self.PREVIEW_BYTES]}
