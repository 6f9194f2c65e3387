"""From WARC/WET records to documents of the schema: which records are kept, and what makes one bad."""
from __future__ import annotations

from pipeline.html_text import HTML_TYPES, HttpError, decode_body, html_to_text, split_http
from pipeline.schema import DeadLetter, Document
from pipeline.warc import DEFAULT_MAX_RECORD_BYTES, WarcRecord

SOURCE = "commoncrawl"
MAX_CONTROL_SHARE = 0.05


def _dead(rec: WarcRecord, file: str, reason: str, preview: bytes = b"") -> DeadLetter:
    return DeadLetter(file, rec.offset, reason, rec.record_id, preview or rec.block[:DeadLetter.PREVIEW_BYTES])


def _binary_reason(text: str) -> str | None:
    if "\x00" in text:
        return "binary content (NUL bytes)"
    sample = text[:65536]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f\v")
    if controls > MAX_CONTROL_SHARE * len(sample):
        return f"binary content ({controls} control characters in {len(sample)})"
    return None


def _document(rec: WarcRecord, file: str, text: str, extra: dict) -> Document:
    meta = {"crawl_date": rec.headers.get("warc-date", ""), "warc_file": file, "warc_offset": rec.offset}
    lang = rec.headers.get("warc-identified-content-language")
    if lang:
        meta["cc_languages"] = lang
    meta.update(extra)
    text = text.replace("\r\n", "\n")
    return Document(id=rec.record_id, url=rec.headers.get("warc-target-uri", "").strip("<>"), source=SOURCE,
                    text=text, metadata=meta)


def wet_document(rec: WarcRecord, file: str) -> Document | DeadLetter | None:
    """A WET `conversion` record as a document; None for other record types (counted, not kept)."""
    if rec.type != "conversion":
        return None
    if not rec.block.strip():
        return _dead(rec, file, "empty record")
    try:
        text = rec.block.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _dead(rec, file, f"invalid UTF-8 at byte {exc.start}", rec.block[max(0, exc.start - 64):exc.start + 64])
    reason = _binary_reason(text)
    if reason:
        return _dead(rec, file, reason)
    return _document(rec, file, text, {})


def warc_document(rec: WarcRecord, file: str, max_body_bytes: int = DEFAULT_MAX_RECORD_BYTES
                  ) -> Document | DeadLetter | None:
    """A WARC `response` record with an HTML 200 payload, re-extracted to text; None for the rest. A body
    whose content coding inflates past `max_body_bytes` is a dead letter (see `decode_body`)."""
    if rec.type != "response":
        return None
    try:
        status, headers, body = split_http(rec.block)
    except HttpError as exc:
        return _dead(rec, file, str(exc))
    ctype = headers.get("content-type", "").lower()
    if status != 200 or not ctype.startswith(HTML_TYPES):
        return None
    try:
        body = decode_body(headers, body, max_body_bytes)
    except HttpError as exc:
        return _dead(rec, file, str(exc))
    if not body.strip():
        return _dead(rec, file, "empty record")
    text = html_to_text(body, ctype)
    reason = _binary_reason(text)
    if reason:
        return _dead(rec, file, reason)
    return _document(rec, file, text, {"extracted_from": "html"})


def to_document(rec: WarcRecord, file: str, max_body_bytes: int = DEFAULT_MAX_RECORD_BYTES
                ) -> Document | DeadLetter | None:
    """The record's document, a dead letter saying why it is not one, or None for a record that is not
    a page (warcinfo, request, metadata, non-HTML responses). A record the converter fails on costs that
    record only. `max_body_bytes` caps a decoded HTTP body (the job passes its `max_record_bytes`)."""
    try:
        if rec.type == "conversion":
            return wet_document(rec, file)
        if rec.type == "response":
            return warc_document(rec, file, max_body_bytes)
    except Exception as exc:
        return _dead(rec, file, f"cannot convert record: {type(exc).__name__}: {exc}")
    return None
