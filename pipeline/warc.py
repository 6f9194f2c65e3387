"""A fault-tolerant streaming reader of WARC and WET files (gzip per record, gzip whole, or plain).

Why not warcio or FastWARC: both stop at the first corrupt gzip member and neither reports where a bad
record was. A crawl slice of thousands of files always holds some damage, and the job must keep every good
record, so this reader resynchronises: after a corrupt gzip member it scans for the next member header,
after a record whose Content-Length lies it scans for the next `WARC/1.` line, and it reports every bad
stretch as one `DeadLetter` with the file and byte offset. An empty file, or one holding only whitespace,
is one dead letter too.

Memory is bounded by about twice `max_record_bytes` (default 8 MiB: a record being cut out, and the copy
handed on) plus a few MiB of read and inflate buffers, whatever the input:

- Bytes that are not a record are scanned and dropped as they come, keeping only a dozen bytes of tail.
- A record whose Content-Length is over `max_record_bytes` is never buffered. Its claimed extent is
  scanned as it streams by for a line `WARC/1.0` that starts a well-formed record: headers that end,
  a Content-Length within the limit, and the record's trailer (CRLF CRLF) where that length says. Only
  such a record counts as proof that the big Content-Length lied (a payload may quote "WARC/1.0" text,
  but rarely a whole valid record); reading goes on from it and the oversized record is one dead letter,
  "Content-Length N over the limit ...; next record found at ...". Without one, the extent is skipped
  and the record is one dead letter, "record of N bytes is over the limit". A payload that holds a
  complete valid WARC record is therefore taken for a lie: that embedded record is read as a record.
- A gzip member is inflated in steps of a few MiB. Once it has inflated more than
  `ABANDON_FACTOR * max_record_bytes` (64 MiB by default) past its last record boundary (the end of a
  record, or a record start found after a bad stretch), which good data within the limit never does,
  the rest of that member is abandoned and the scan moves on to the next member header: a bomb of zeros
  costs about that many inflated bytes (about 0.1 s), not its full size. The bound is per record,
  not per member: a whole-file gzip stream of many normal records is read to its end, however large.
  The price: an oversized record longer than that bound inside a whole-file stream also ends the
  stream; CommonCrawl writes one member per record, where it costs that record only.

Offsets are those of the gzip member that holds the record (what CommonCrawl's index records), or of the
record itself in an uncompressed file. A per-record-gzip file can be read in parts: `member_start` finds
where a member that holds a record starts, and `read_warc(..., origin=)` reads a stream that starts there,
giving the file's offsets.
"""
from __future__ import annotations

import dataclasses
import re
import zlib
from typing import BinaryIO, Callable, Iterator, Union

from pipeline.inputs import GZIP_MAGIC, is_gzip
from pipeline.schema import DeadLetter

CHUNK = 1 << 20
FEED_BYTES = 1 << 16     # compressed bytes handed to zlib at a time
GZIP_MEMBER_HEADER = GZIP_MAGIC + b"\x08"   # the magic and deflate, the only method: where a member can start
MAX_HEADER_BYTES = 1 << 16
DEFAULT_MAX_RECORD_BYTES = 8 << 20
ABANDON_FACTOR = 8
_RECORD_START = re.compile(rb"WARC/1\.[01]\r?\n")
_LINE_RECORD_START = re.compile(rb"\nWARC/1\.[01]\r?\n")
SCAN_TAIL = 12          # bytes kept between reads while scanning, so a record start split by a read is seen
_NOT_BLANK = re.compile(rb"[^ \t\r\n]")


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


class _Abandoned(Exception):
    """A gzip member inflated too far without a record boundary (see the module docstring)."""


def _gzip_events(f: BinaryIO, name: str, stalled: Callable[[], str] = lambda: "", origin: int = 0) -> Iterator[tuple]:
    """Decompress a multi-member gzip stream that starts at file offset `origin`: ("data", member_offset,
    bytes), ("end", member_offset), ("dead", DeadLetter). After a corrupt member, or one abandoned because
    `stalled()` gave a reason after its latest output, it scans forward for the next member header."""
    raw = bytearray()
    off = origin     # file offset of raw[0]
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
        while len(raw) < len(GZIP_MEMBER_HEADER) and more():
            pass  # a read can end inside the next member's header
        if raw[:3] != GZIP_MEMBER_HEADER:
            while True:  # skip bytes until something that looks like a member header
                j = raw.find(GZIP_MEMBER_HEADER, 1)
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
                fed = bytes(raw[i:i + FEED_BYTES])  # not all of raw: members are often a few KB
                out = d.decompress(fed, CHUNK * 4)
                if out:
                    emitted = True
                    resyncing = False
                    yield ("data", start, out)
                    reason = stalled()
                    if reason:
                        raise _Abandoned(reason)
                if d.eof:
                    i += len(fed) - len(d.unused_data)
                    break
                i += len(fed) - len(d.unconsumed_tail)
                if i > CHUNK * 2:  # drop what was consumed; a later resync scans forward from here
                    del raw[:i]
                    off += i
                    i = 0
        except (zlib.error, EOFError, _Abandoned) as exc:
            if not (resyncing and not emitted):
                why = str(exc) if isinstance(exc, _Abandoned) else f"corrupt gzip member: {exc}"
                yield ("dead", DeadLetter(name, start, why))
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
    chunk = first
    while chunk:
        yield ("data", 0, chunk)
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


def _ends_record(trailer: bytes, final: bool) -> bool:
    """Whether the bytes after a block are the record's trailer (CRLF CRLF; at the end of data, blanks)."""
    return trailer.startswith((b"\r\n\r\n", b"\n\n")) or (final and trailer.strip() == b"")


@dataclasses.dataclass
class _Frame:
    """What starts at a `WARC/` line: a "record", a "bad" record, or an "oversized" one."""
    kind: str
    headers: dict[str, str]
    body: int = 0            # buffer index of the block
    end: int = 0             # buffer index just past the block (a "record")
    length: int = 0          # Content-Length (an "oversized" record)
    reason: str = ""         # why a "bad" record is bad
    preview_from: int = 0    # buffer index where a "bad" record's preview starts


@dataclasses.dataclass
class _Stretch:
    """A bad stretch being discarded; its one dead letter is written once the stretch's end is known.
    Positions are stream positions (see `_RecordParser`)."""
    offset: int              # the offset its dead letter reports
    reason: str
    record_id: str
    preview: bytes
    preview_at: int          # position of preview[0]
    scan: int                # where the search for the record start that ends the stretch goes on
    length: int = -1         # an oversized record's Content-Length; -1 for any other stretch
    extent_end: int = -1     # where that oversized record claims to end


class _RecordParser:
    """Cuts WARC records out of decompressed data, one gzip member (or the whole plain file) at a time.
    A stream position counts decompressed bytes from the start of the member (or of the plain file);
    `buf[0]` is at stream position `pos`."""

    def __init__(self, name: str, max_record_bytes: int, gzipped: bool):
        self.name = name
        self.max_record_bytes = max_record_bytes
        self.gzipped = gzipped
        self.buf = bytearray()
        self.base = 0          # file offset of the gzip member being read (plain files: 0)
        self.pos = 0
        self.boundary = 0      # stream position of the last record boundary
        self.stretch: _Stretch | None = None
        self.seq = 0

    def _dead(self, offset: int, reason: str, record_id: str = "", preview: bytes = b"") -> DeadLetter:
        self.seq += 1
        return DeadLetter(self.name, offset, reason, record_id, preview[: DeadLetter.PREVIEW_BYTES])

    def _offset(self, i: int) -> int:
        return self.base if self.gzipped else self.pos + i

    def _where(self, i: int) -> str:
        if self.gzipped:
            return f"decompressed byte {self.pos + i} of the gzip member at offset {self.base}"
        return f"offset {self.pos + i}"

    def feed(self, member_offset: int, data: bytes) -> Iterator[Item]:
        if self.gzipped:
            self.base = member_offset
        self.buf.extend(data)
        yield from self._cut(final=False)

    def end(self) -> Iterator[Item]:
        yield from self._cut(final=True)
        self._reset()

    def abandon(self, letter: DeadLetter) -> DeadLetter:
        """The member holding the buffered bytes was corrupt or abandoned: forget them. A bad stretch still
        open in that member is part of the same bad stretch of the file, so it joins the member's letter."""
        s = self.stretch
        self._reset()
        self.seq += 1
        if s is None:
            return letter
        return DeadLetter(letter.file, letter.offset, f"{s.reason}; then {letter.reason}", s.record_id,
                          s.preview)

    def stalled(self) -> str:
        """Why the gzip member being read should be abandoned (see ABANDON_FACTOR), or ""."""
        run = self.pos + len(self.buf) - self.boundary
        limit = ABANDON_FACTOR * self.max_record_bytes + MAX_HEADER_BYTES
        if run <= limit:
            return ""
        return f"gzip member abandoned: it inflated {run} bytes past its last record boundary (limit {limit})"

    def _reset(self) -> None:
        self.buf.clear()
        self.pos = self.boundary = 0
        self.stretch = None

    def _drop(self, n: int) -> None:
        del self.buf[:n]
        self.pos += n

    def _cut(self, final: bool) -> Iterator[Item]:
        buf = self.buf
        while True:
            if self.stretch is not None:
                if not (yield from self._discard(final)):
                    return
                continue
            m = _NOT_BLANK.search(buf)
            self._drop(m.start() if m else len(buf))
            if not buf:
                return
            if not buf.startswith(b"WARC/"):
                if not final and len(buf) < 5 and b"WARC/".startswith(buf):
                    return  # a record start cut by a read
                self._open(0, "bytes that are not a WARC record")
                continue
            frame = self._frame(0, final)
            if frame is None:
                return
            rid = frame.headers.get("warc-record-id", "")
            if frame.kind == "record":
                yield WarcRecord(self._offset(0), self.seq, frame.headers, bytes(buf[frame.body:frame.end]))
                self.seq += 1
                self._drop(frame.end)
                self.boundary = self.pos
            elif frame.kind == "oversized":
                self._open(0, f"record of {frame.length} bytes is over the limit of {self.max_record_bytes} "
                           f"bytes", rid, frame.body, scan=frame.body - 1, length=frame.length,
                           extent_end=self.pos + frame.body + frame.length)
            else:
                self._open(0, frame.reason, rid, frame.preview_from)

    def _frame(self, i: int, final: bool) -> _Frame | None:
        """The record that starts at buf[i] (a `WARC/` line), or None while the data so far cannot tell."""
        buf = self.buf
        window = i + MAX_HEADER_BYTES
        hdr_end, sep = buf.find(b"\r\n\r\n", i, window), 4
        if hdr_end < 0:
            hdr_end, sep = buf.find(b"\n\n", i, window), 2
        if hdr_end < 0:
            if not final and len(buf) < window:
                return None
            return _Frame("bad", {}, reason="WARC header without an end", preview_from=i)
        headers = _parse_headers(bytes(buf[i:hdr_end]))
        try:
            length = int(headers["content-length"])
            if length < 0:
                raise ValueError(length)
        except (KeyError, ValueError):
            return _Frame("bad", headers, reason="missing or invalid Content-Length", preview_from=i)
        body = hdr_end + sep
        if length > self.max_record_bytes:
            return _Frame("oversized", headers, body, length=length)
        end = body + length
        if len(buf) < end + 4 and not final:
            return None
        if len(buf) < end:
            return _Frame("bad", headers, reason=f"truncated record: Content-Length {length}, "
                          f"{len(buf) - body} bytes present", preview_from=body)
        if not _ends_record(bytes(buf[end:end + 4]), final):
            return _Frame("bad", headers, reason="record does not end where its Content-Length says",
                          preview_from=body)
        return _Frame("record", headers, body, end)

    def _open(self, i: int, reason: str, record_id: str = "", preview_from: int | None = None,
              scan: int | None = None, length: int = -1, extent_end: int = -1) -> None:
        """Start a bad stretch at buf[i]; by default it ends at the next record start after buf[i]."""
        pf = i if preview_from is None else preview_from
        self.stretch = _Stretch(self._offset(i), reason, record_id,
                                bytes(self.buf[pf:pf + DeadLetter.PREVIEW_BYTES]), self.pos + pf,
                                self.pos + (i + 1 if scan is None else scan), length, extent_end)

    def _close(self, j: int) -> DeadLetter:
        """End the open stretch at buf[j]: its dead letter, with a preview of its own bytes only."""
        s = self.stretch
        letter = self._dead(s.offset, s.reason, s.record_id, s.preview[: max(0, self.pos + j - s.preview_at)])
        self._drop(j)
        self.boundary = self.pos
        self.stretch = None
        return letter

    def _keep_tail(self, cut: int) -> None:
        """Drop buffered bytes of the stretch before buf[cut], already scanned."""
        self._drop(max(0, cut))
        self.stretch.scan = max(self.stretch.scan, self.pos)

    def _discard(self, final: bool) -> Iterator[Item]:
        """Drop the open stretch's bytes as far as it goes. Returns True once it has ended (its letter
        written, or an oversized record turned into a stretch ending at the next record start), False
        while more data is needed to tell."""
        s = self.stretch
        if s.length >= 0:
            return (yield from self._discard_oversized(final))
        m = _RECORD_START.search(self.buf, max(0, s.scan - self.pos))
        if m is None and not final:
            self._keep_tail(len(self.buf) - SCAN_TAIL)
            return False
        yield self._close(m.start() if m else len(self.buf))
        return True

    def _discard_oversized(self, final: bool) -> Iterator[Item]:
        """An oversized record's claimed extent: a well-formed record starting on a line inside it proves
        the Content-Length a lie and ends the stretch there (see the module docstring)."""
        s, buf = self.stretch, self.buf
        ext = s.extent_end - self.pos  # buffer index where the record claims to end
        m = _LINE_RECORD_START.search(buf, max(0, s.scan - self.pos))
        while m is not None and m.start() + 1 < ext:
            c = m.start() + 1
            frame = self._frame(c, final)
            if frame is None:  # wait for enough of the candidate to judge it
                self._drop(m.start())
                s.scan = self.pos
                return False
            if frame.kind == "record":
                s.reason = (f"Content-Length {s.length} over the limit of {self.max_record_bytes} bytes; "
                            f"next record found at {self._where(c)}")
                yield self._close(c)
                return True
            m = _LINE_RECORD_START.search(buf, c)
        if len(buf) >= ext + 4 or (final and len(buf) >= ext):
            if _ends_record(bytes(buf[ext:ext + 4]), final):
                yield self._close(ext)
                return True
            s.reason += ", and it does not end where its Content-Length says"
            s.length, s.scan = -1, self.pos + ext
            return True
        if final:
            where = "gzip member" if self.gzipped else "file"
            s.reason += f"; the {where} ends {ext - len(buf)} bytes before the end that Content-Length claims"
            yield self._close(len(buf))
            return True
        self._keep_tail(min(ext, len(buf) - SCAN_TAIL))
        return False


def read_warc(f: BinaryIO, name: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
              origin: int = 0) -> Iterator[Item]:
    """Yield every record of a WARC/WET stream, or a DeadLetter for every stretch that is not one. A file
    without any record (empty, or only whitespace) is one DeadLetter. `origin` is the file offset where
    the stream starts (a part of a gzipped file that starts at a member, `member_start`): offsets are the
    file's."""
    first = f.read(CHUNK)
    while 0 < len(first) < 8:  # enough to tell gzip from WARC even from a stream of tiny reads
        more = f.read(CHUNK)
        if not more:
            break
        first += more
    if not first:
        yield DeadLetter(name, origin, "empty file")
        return
    # a damaged first member still leaves the file gzipped: look past it for the next member header
    gzipped = is_gzip(first) or (not first.lstrip().startswith(b"WARC/") and GZIP_MEMBER_HEADER in first)
    parser = _RecordParser(name, max_record_bytes, gzipped)
    if gzipped:
        events = _gzip_events(_Prefixed(first, f), name, parser.stalled, origin)
    else:
        events = _plain_events(f, first)
    anything = False
    for event in events:
        kind = event[0]
        if kind == "data":
            items = parser.feed(event[1], event[2])
        elif kind == "end":
            items = parser.end()
        else:
            items = iter([parser.abandon(event[1])])
        for item in items:
            anything = True
            yield item
    if not anything:
        yield DeadLetter(name, origin, "no WARC record in the file: its data is empty or whitespace")


def member_start(data: bytes) -> int | None:
    """The index in `data` of the first gzip member that holds a WARC record (its first inflated bytes
    are `WARC/1.`), or None. The three header bytes alone also occur inside compressed data: every
    candidate is proved by inflating its start."""
    at = data.find(GZIP_MEMBER_HEADER)
    while at >= 0:
        try:
            head = zlib.decompressobj(31).decompress(data[at:at + FEED_BYTES], 16)
        except zlib.error:
            head = b""
        if _RECORD_START.match(head):
            return at
        at = data.find(GZIP_MEMBER_HEADER, at + 1)
    return None


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
