"""Text from HTML responses of WARC files: HTTP parsing, de-chunking, charset detection, and resiliparse's
main-content extraction (DCLM found resiliparse re-extraction better than CommonCrawl's WET text).
Block structure is kept as lines, one paragraph per line, as in WET files, so line dedup works the same."""
from __future__ import annotations

import re
import zlib

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree

HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.I)


class HttpError(ValueError):
    pass


def split_http(block: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of an HTTP response record block."""
    end = block.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = block.find(b"\n\n"), 2
    if end < 0:
        raise HttpError("HTTP header without an end")
    lines = block[:end].decode("latin-1").splitlines()
    parts = lines[0].split(None, 2) if lines else []
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HttpError(f"not an HTTP status line: {lines[0][:80] if lines else ''!r}")
    headers = {}
    for line in lines[1:]:
        key, colon, value = line.partition(":")
        if colon:
            headers[key.strip().lower()] = value.strip()
    return int(parts[1]), headers, block[end + sep:]


def dechunk(body: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while pos < len(body):
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise HttpError("chunked body ends inside a chunk header")
        try:
            size = int(body[pos:eol].split(b";")[0].strip() or b"0", 16)
        except ValueError as exc:
            raise HttpError(f"bad chunk size in a chunked body: {body[pos:eol][:20]!r}") from exc
        if size == 0:
            break
        out += body[eol + 2: eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


def decode_body(headers: dict[str, str], body: bytes) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = dechunk(body)
    encoding = headers.get("content-encoding", "").lower().strip()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            body = zlib.decompress(body, 47 if encoding != "deflate" else 15)
        except zlib.error as exc:
            raise HttpError(f"bad {encoding} body: {exc}") from exc
    elif encoding not in ("", "identity"):
        raise HttpError(f"unsupported Content-Encoding {encoding!r}")
    return body


def html_to_text(body: bytes, content_type: str = "") -> str:
    m = _CHARSET.search(content_type)
    encoding = m.group(1) if m else detect_encoding(body)
    try:
        tree = HTMLTree.parse_from_bytes(body, encoding)
    except LookupError:
        tree = HTMLTree.parse(bytes_to_str(body, detect_encoding(body)))
    text = extract_plain_text(tree, preserve_formatting=True, main_content=True, alt_texts=False)
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)
