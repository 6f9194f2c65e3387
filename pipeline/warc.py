"""A fault-tolerant streaming reader of WARC and WET files (gzip per record, gzip whole, or plain).

Why not warcio or FastWARC: both stop at the first corrupt gzip member and neither reports where a bad
record was. A crawl slice of thousands of files always holds some damage, and the job must keep every good
record, so this reader resynchronises: after a corrupt gzip member it scans for the next member header,
after a record whose Content-Length lies it scans for the next `WARC/1.` line, and it reports every bad
stretch as a `DeadLetter` with the file and byte offset. It streams: memory is bounded by one record (and
records over `max_record_bytes` are skipped without being buffered).

Offsets are those of the gzip member that holds the record (what CommonCrawl's index records), or of the
record itself in an uncompressed file.
"""
from __future__ import annotations

import dataclasses
import re
import zlib
from typing import BinaryIO, Iterator, Union

from pipeline.schema import DeadLetter

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b\x08"
MAX_HEADER_BYTES = 1 << 16
DEFAULT_MAX_RECORD_BYTES = 8 << 20
_RECORD_START = re.compile(rb"WARC/1\.[01]\r?\n")


@dataclasses.dataclass
class WarcRecord:
    offset: int
    seq: int                 # position of the record in its file, 0-based, counting dead records too
    headers: dict[str, str]  # keys lower-cased
    block: bytes

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "")

    @property
    def record_id(self) -> str:
        return self.headers.get("warc-record-id", "")


Item = Union[WarcRecord, DeadLetter]


def _gzip_events(f: BinaryIO, name: str) -> Iterator[tuple]:
    """Decompress a multi-member gzip stream: ("data", member_offset, bytes), ("end", member_offset),
    ("dead", DeadLetter). After a corrupt member it scans forward for the next member header."""
    raw = bytearray()
    off = 0          # file offset of raw[0]
    eof = False

    def more() -> bool:
        nonlocal eof
        if eof:
            return False
        chunk = f.read(CHUNK)
        if not chunk:
            eof = True
            return False
        raw.extend(chunk)
        return True

    resyncing = False
    while raw or more():
        while len(raw) < len(GZIP_MAGIC) and more():
            pass  # a read can end inside the next member's header
        if raw[:3] != GZIP_MAGIC:
            while True:  # skip bytes until something that looks like a member header
                j = raw.find(GZIP_MAGIC, 1)
                if j >= 0 or not more():
                    break
            if not resyncing:
                yield ("dead", DeadLetter(name, off, "bytes that are not a gzip member", preview=bytes(raw[:256])))
            cut = j if j >= 0 else len(raw)
            del raw[:cut]
            off += cut
            resyncing = j >= 0
            continue
        start = off
        d = zlib.decompressobj(31)
        i = 0            # bytes of raw fed to d
        emitted = False
        try:
            while True:
                if i >= len(raw) and not more():
                    raise EOFError("file ends inside a gzip member")
                fed = bytes(raw[i:])
                out = d.decompress(fed, CHUNK * 4)
                if out:
                    emitted = True
                    resyncing = False
                    yield ("data", start, out)
                if d.eof:
                    i += len(fed) - len(d.unused_data)
                    break
                i += len(fed) - len(d.unconsumed_tail)
                if i > CHUNK * 2:  # drop what was consumed; a later resync scans forward from here
                    del raw[:i]
                    off += i
                    i = 0
        except (zlib.error, EOFError) as exc:
            if not (resyncing and not emitted):
                yield ("dead", DeadLetter(name, start, f"corrupt gzip member: {exc}"))
            # a damaged deflate stream can run on through the members after it, so the scan for the next
            # member starts right after this member's header (or where a huge member was last trimmed)
            resyncing = True
            del raw[:1]
            off += 1
            continue
        resyncing = False
        yield ("end", start)
        del raw[:i]
        off += i


def _plain_events(f: BinaryIO, first: bytes) -> Iterator[tuple]:
    pos = 0
    chunk = first
    while chunk:
        yield ("data", 0, chunk)
        pos += len(chunk)
        chunk = f.read(CHUNK)
    yield ("end", 0)


def _parse_headers(raw: bytes) -> dict[str, str]:
    text = raw.decode("utf-8", "replace")
    headers: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return headers


class _RecordParser:
    """Cuts WARC records out of decompressed data, one gzip member (or the whole plain file) at a time."""

    def __init__(self, name: str, max_record_bytes: int, gzipped: bool):
        self.name = name
        self.max_record_bytes = max_record_bytes
        self.gzipped = gzipped
        self.buf = bytearray()
        self.base = 0          # offset reported for records starting in buf (member offset or file offset)
        self.skip = 0          # bytes of an oversized record still to discard
        self.seq = 0

    def _dead(self, offset: int, reason: str, record_id: str = "", preview: bytes = b"") -> DeadLetter:
        self.seq += 1
        return DeadLetter(self.name, offset, reason, record_id, preview[: DeadLetter.PREVIEW_BYTES])

    def _offset(self, pos: int) -> int:
        return self.base if self.gzipped else self.base + pos

    def feed(self, member_offset: int, data: bytes) -> Iterator[Item]:
        if not self.buf and self.gzipped:
            self.base = member_offset
        if self.skip:
            taken = min(self.skip, len(data))
            self.skip -= taken
            data = data[taken:]
        self.buf.extend(data)
        yield from self._cut(final=False)

    def end(self) -> Iterator[Item]:
        yield from self._cut(final=True)
        rest = bytes(self.buf).strip()
        if rest and not self.skip:
            yield self._dead(self._offset(0), "truncated record or trailing bytes", preview=rest)
        self.buf.clear()
        self.skip = 0
        if not self.gzipped:
            self.base = 0

    def abandon(self) -> None:
        """The member holding the buffered bytes was corrupt: forget them (a dead letter was written)."""
        self.buf.clear()
        self.skip = 0

    def _resync(self, start: int) -> int:
        m = _RECORD_START.search(self.buf, start + 1)
        return len(self.buf) if m is None else m.start()

    def _consume(self, n: int) -> None:
        del self.buf[:n]
        if not self.gzipped:
            self.base += n

    def _cut(self, final: bool) -> Iterator[Item]:
        buf = self.buf
        while True:
            pos = 0
            while pos < len(buf) and buf[pos] in b"\r\n":
                pos += 1
            if pos == len(buf):
                self._consume(pos)
                return
            if not buf.startswith(b"WARC/", pos):
                nxt = self._resync(pos - 1)
                if nxt == len(buf) and not final:
                    return  # maybe the start of a record is still coming
                yield self._dead(self._offset(pos), "bytes that are not a WARC record", preview=bytes(buf[pos:nxt]))
                self._consume(nxt)
                continue
            hdr_end = buf.find(b"\r\n\r\n", pos)
            sep = 4
            if hdr_end < 0:
                hdr_end = buf.find(b"\n\n", pos)
                sep = 2
            if hdr_end < 0:
                if not final and len(buf) - pos < MAX_HEADER_BYTES:
                    return
                nxt = self._resync(pos)
                yield self._dead(self._offset(pos), "WARC header without an end", preview=bytes(buf[pos:nxt]))
                self._consume(nxt)
                continue
            headers = _parse_headers(bytes(buf[pos:hdr_end]))
            rid = headers.get("warc-record-id", "")
            try:
                length = int(headers["content-length"])
                if length < 0:
                    raise ValueError(length)
            except (KeyError, ValueError):
                nxt = self._resync(pos)
                yield self._dead(self._offset(pos), "missing or invalid Content-Length", rid, bytes(buf[pos:nxt]))
                self._consume(nxt)
                continue
            body = hdr_end + sep
            if length > self.max_record_bytes:
                yield self._dead(self._offset(pos), f"record of {length} bytes is over the limit of "
                                 f"{self.max_record_bytes} bytes", rid, bytes(buf[body:body + 256]))
                have = len(buf) - body
                if have >= length:
                    self._consume(body + length)
                else:
                    self.skip = length - have
                    self._consume(len(buf))
                    return
                continue
            end = body + length
            if len(buf) < end + 4 and not final:
                return
            if len(buf) < end:
                nxt = self._resync(pos)
                yield self._dead(self._offset(pos), f"truncated record: Content-Length {length}, "
                                 f"{len(buf) - body} bytes present", rid, bytes(buf[body:body + 256]))
                self._consume(nxt)
                continue
            trailer = bytes(buf[end:end + 4])
            if not (trailer.startswith(b"\r\n\r\n") or trailer.startswith(b"\n\n")
                    or (final and trailer.strip() == b"")):
                nxt = self._resync(pos)
                yield self._dead(self._offset(pos), "record does not end where its Content-Length says",
                                 rid, bytes(buf[body:body + 256]))
                self._consume(nxt)
                continue
            record = WarcRecord(self._offset(pos), self.seq, headers, bytes(buf[body:end]))
            self.seq += 1
            yield record
            self._consume(end)


def read_warc(f: BinaryIO, name: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[Item]:
    """Yield every record of a WARC/WET stream, or a DeadLetter for every stretch that is not one."""
    first = f.read(CHUNK)
    while 0 < len(first) < 8:  # enough to tell gzip from WARC even from a stream of tiny reads
        more = f.read(CHUNK)
        if not more:
            break
        first += more
    # a damaged first member still leaves the file gzipped: look past it for the next member header
    gzipped = first[:2] == b"\x1f\x8b" or (not first.lstrip().startswith(b"WARC/") and GZIP_MAGIC in first)
    parser = _RecordParser(name, max_record_bytes, gzipped)
    if gzipped:
        events = _gzip_events(_Prefixed(first, f), name)
    else:
        events = _plain_events(f, first)
    for event in events:
        kind = event[0]
        if kind == "data":
            yield from parser.feed(event[1], event[2])
        elif kind == "end":
            yield from parser.end()
        else:
            parser.abandon()
            parser.seq += 1
            yield event[1]


class _Prefixed:
    """A read() that first returns bytes already read from the stream."""

    def __init__(self, head: bytes, f: BinaryIO):
        self.head = head
        self.f = f

    def read(self, n: int) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            return out
        return self.f.read(n)


def warc_record_bytes(headers: list[tuple[str, str]], block: bytes) -> bytes:
    """One WARC/1.0 record as CommonCrawl writes it: CRLF header lines, Content-Length, CRLF CRLF after."""
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers if k.lower() != "content-length")
    head += f"Content-Length: {len(block)}\r\n\r\n"
    return head.encode("utf-8") + block + b"\r\n\r\n"


def gzip_member(data: bytes) -> bytes:
    """`data` as one gzip member with a fixed header (no timestamp), so output bytes are reproducible."""
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = c.compress(data) + c.flush()
    return out[:4] + b"\x00\x00\x00\x00" + out[8:]
