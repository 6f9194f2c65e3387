"""Text from HTML responses of WARC files: HTTP parsing, de-chunking, charset detection, and resiliparse's
main-content extraction (DCLM found resiliparse re-extraction better than CommonCrawl's WET text).
Block structure is kept as lines, one paragraph per line, as in WET files, so line dedup works the same.
Content codings (gzip, deflate, br, zstd) are decoded streaming, up to a size cap, so a compressed bomb
costs the cap, not its inflated size."""
from __future__ import annotations

import re
import zlib

import zstandard
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree

try:  # installed with py7zr on CPython; without it a br body is an unsupported coding (a dead letter)
    import brotli
    _BROTLI_ERRORS: tuple = (brotli.error,)
except ImportError:
    brotli = None
    _BROTLI_ERRORS = ()

HTML_TYPES = ("text/html", "application/xhtml+xml")
ZSTD_STEP = 256  # zstd input bytes per step: at most 8 MiB of output each
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


def decode_body(headers: dict[str, str], body: bytes, max_bytes: int) -> bytes:
    """The body without its transfer and content codings. Decoding streams and stops once the output
    passes `max_bytes` (an HttpError), so a compressed bomb costs about `max_bytes` of memory and time."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = dechunk(body)
    codings = [c.strip() for c in headers.get("content-encoding", "").lower().split(",")]
    for coding in reversed([c for c in codings if c not in ("", "identity")]):  # applied in order listed
        body = _decompress(body, coding, max_bytes)
    return body


def _decompress(body: bytes, coding: str, max_bytes: int) -> bytes:
    """`body` with one content coding undone; an HttpError if bad, truncated, or over `max_bytes`."""
    try:
        if coding in ("gzip", "x-gzip", "deflate"):
            d = zlib.decompressobj(47 if coding != "deflate" else 15)  # 47: gzip or zlib header
            out, complete = d.decompress(body, max_bytes + 1), d.eof
        elif coding == "br" and brotli is not None:
            b = brotli.Decompressor()
            out = b.process(body, output_buffer_limit=max_bytes + 1)
            complete = b.is_finished()
        elif coding == "zstd":
            out, complete = _unzstd(body, max_bytes + 1)
        else:
            raise HttpError(f"unsupported Content-Encoding {coding!r}")
    except (zlib.error, zstandard.ZstdError) + _BROTLI_ERRORS as exc:
        raise HttpError(f"bad {coding} body: {exc}") from exc
    if len(out) > max_bytes:
        raise HttpError(f"{coding} body inflates past the limit of {max_bytes} bytes")
    if not complete:
        raise HttpError(f"bad {coding} body: truncated")
    return out


def _unzstd(body: bytes, limit: int) -> tuple[bytes, bool]:
    """A zstd body, stopped once past `limit` bytes, and whether its frame ended. The input goes in small
    steps because zstandard's decompressobj has no output limit (a 4-byte block inflates to 128 KiB)."""
    d = zstandard.ZstdDecompressor().decompressobj()
    out = bytearray()
    for i in range(0, len(body), ZSTD_STEP):
        out += d.decompress(body[i:i + ZSTD_STEP])
        if len(out) > limit or d.eof:
            break
    return bytes(out), d.eof


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
