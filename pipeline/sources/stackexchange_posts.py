"""Posts out of one Stack Exchange site dump (`<site>.7z` or an extracted `Posts.xml`), streamed.

A 7z archive is decompressed by py7zr in a background thread that hands Posts.xml over in chunks
through a small bounded queue (py7zr pushes what it decompresses; the XML parser pulls), so neither the
archive nor the XML is ever held whole. 7z keeps its index at the end, so a truncated archive cannot be
opened at all; the archive must be seekable (local disk or a bucket, not http).

Posts.xml is parsed with an incremental (pull) XML parser, one `<row>` at a time, and the rows are
dropped as soon as read. A malformed row (bad XML, bytes that are not UTF-8) becomes a dead letter and
parsing starts again at the next line that opens a row, so one broken record does not lose the rest of
the file; the dumps write one row per line. A line over MAX_LINE_BYTES (16 MiB; the largest posts are a
few hundred KB) is a dead letter, skipped in constant memory (`pipeline.sources.streams.capped_lines`: a
"line" that runs on for 8 x 16 MiB more, a bomb of zeros, ends the file there). py7zr decompresses with
an output limit, in chunks, so a 7z bomb never sits in memory whole. A row with a missing or non-integer Id, PostTypeId or Score,
or an answer without ParentId, is a dead letter too.
"""
from __future__ import annotations

import collections
import dataclasses
import io
import queue
import threading
import xml.etree.ElementTree as ET
from typing import BinaryIO, Iterator

from pipeline.schema import DeadLetter
from pipeline.sources.streams import Damage, Overlong, capped_lines

MAX_LINE_BYTES = 16 << 20
POST_TYPES = {1: "question", 2: "answer", 3: "orphaned tag wiki", 4: "tag wiki excerpt", 5: "tag wiki",
              6: "moderator nomination", 7: "wiki placeholder", 8: "privilege wiki"}
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"


@dataclasses.dataclass
class Post:
    id: int
    type: int
    score: int
    body: str
    parent: int | None = None
    title: str = ""
    tags: tuple[str, ...] = ()
    accepted: int | None = None
    created: str = ""
    license: str = ""
    offset: int = 0


class PostError(ValueError):
    pass


def _int(attrs: dict, name: str, required: bool = True) -> int | None:
    value = attrs.get(name)
    if value is None:
        if required:
            raise PostError(f"row without {name}")
        return None
    try:
        return int(value)
    except ValueError:
        raise PostError(f"{name} {value[:40]!r} is not an integer") from None


def parse_tags(tags: str) -> tuple[str, ...]:
    """`<python><lists>` (older dumps) or `|python|lists|` (dumps since 2023)."""
    if tags.startswith("<"):
        return tuple(t for t in tags.strip("<>").split("><") if t)
    return tuple(t for t in tags.split("|") if t)


def to_post(attrs: dict, offset: int) -> Post:
    post_type, post_id = _int(attrs, "PostTypeId"), _int(attrs, "Id")
    post = Post(id=post_id, type=post_type, score=_int(attrs, "Score"), body=attrs.get("Body", ""),
                parent=_int(attrs, "ParentId", required=post_type == 2), title=attrs.get("Title", ""),
                tags=parse_tags(attrs.get("Tags", "")), accepted=_int(attrs, "AcceptedAnswerId", False),
                created=attrs.get("CreationDate", ""), license=attrs.get("ContentLicense", ""), offset=offset)
    return post


def _lines(stream: BinaryIO, path: str) -> Iterator[tuple[int, bytes] | DeadLetter]:
    """(offset, line) for every line; a line over MAX_LINE_BYTES is skipped as a dead letter."""
    for item in capped_lines(stream, MAX_LINE_BYTES):
        yield DeadLetter(path, item.offset, item.reason) if isinstance(item, Overlong) else item


class _RowParser:
    def __init__(self, synthetic_root: bool):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.root = None
        self.in_row = False
        if synthetic_root:
            self.parser.feed(b"<posts>")

    def feed(self, line: bytes) -> list[dict]:
        self.parser.feed(line)
        rows = []
        self.events = 0
        for event, elem in self.parser.read_events():
            self.events += 1
            if event == "start":
                if self.root is None:
                    self.root = elem
                self.in_row = elem.tag == "row"
            elif event == "end" and elem.tag == "row":
                rows.append(dict(elem.attrib))
                self.root.clear()
                self.in_row = False
        return rows

    def between_rows(self) -> bool:
        """Whether everything fed so far is parsed: the last line completed a tag, outside any row."""
        return self.events > 0 and not self.in_row


def read_rows(stream: BinaryIO, path: str) -> Iterator[tuple[int, dict] | DeadLetter]:
    """(offset, attributes) of every `<row>`, resynchronising after a malformed one."""
    lines = _lines(stream, path)
    backlog: collections.deque = collections.deque()
    parser, pending, seen = _RowParser(synthetic_root=False), [], False
    while True:
        item = backlog.popleft() if backlog else next(lines, None)
        if item is None:
            break
        seen = True
        if isinstance(item, DeadLetter):
            yield item
            continue
        offset, line = item
        if parser is None:  # after an error: skip to the next line that opens a row
            if not line.lstrip().startswith(b"<row"):
                continue
            parser = _RowParser(synthetic_root=True)
        if line.strip():
            pending.append(item)
        try:
            rows = parser.feed(line)
        except ET.ParseError as exc:
            first_offset, first_line = pending[0] if pending else item
            yield DeadLetter(path, first_offset, f"malformed XML: {exc}", preview=first_line)
            backlog.extendleft(reversed(pending[1:]))
            parser, pending = None, []
            continue
        for row in rows:
            yield pending[0][0], row
        if parser.between_rows():
            pending = []
    if not seen:
        yield DeadLetter(path, 0, "an empty Posts.xml: no rows")
    elif pending:
        yield DeadLetter(path, pending[0][0], "the file ends inside a row (truncated)", preview=pending[0][1])
    elif parser is not None and parser.root is not None:
        try:
            parser.parser.close()
        except ET.ParseError:
            yield DeadLetter(path, -1, "the file ends before </posts> (truncated)")


def read_posts(stream: BinaryIO, path: str) -> Iterator[Post | DeadLetter]:
    for item in read_rows(stream, path):
        if isinstance(item, DeadLetter):
            yield item
            continue
        offset, attrs = item
        try:
            yield to_post(attrs, offset)
        except PostError as exc:
            yield DeadLetter(path, offset, str(exc), record_id=attrs.get("Id", ""),
                             preview=repr(attrs)[:256].encode())


# -- 7z --------------------------------------------------------------------------------------------
_END = object()


class SevenZipMemberStream(io.RawIOBase):
    """One member of a 7z archive as a readable stream, decompressed by py7zr in a background thread."""

    def __init__(self, archive_stream: BinaryIO, member: str | None = None, queue_chunks: int = 2):
        import py7zr
        self._archive = py7zr.SevenZipFile(archive_stream, mode="r")
        names = self._archive.getnames()
        if member is None:
            member = next((n for n in names if n.replace("\\", "/").split("/")[-1].lower() == "posts.xml"), None)
            if member is None:
                self._archive.close()
                raise FileNotFoundError(f"no Posts.xml in the archive (it holds {', '.join(names[:10])})")
        self.member = member
        self._queue: queue.Queue = queue.Queue(maxsize=queue_chunks)
        self._stop = threading.Event()
        self._buffer = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._extract, name="7z-extract", daemon=True)
        self._thread.start()

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def _extract(self) -> None:
        import py7zr
        owner = self

        class Writer(py7zr.Py7zIO):
            size_ = 0

            def write(self, s):
                owner._put(bytes(s))
                self.size_ += len(s)
                return len(s)

            def read(self, size=None):
                return b""

            def seek(self, offset, whence=0):
                return 0

            def flush(self):
                pass

            def size(self):
                return self.size_

        class Factory(py7zr.WriterFactory):
            def create(self, filename):
                return Writer()

        try:
            self._archive.extract(targets=[self.member], factory=Factory())
            self._put(_END)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the reader, which raises it in the reading thread
            try:
                self._put(exc)
            except _Stopped:
                pass
        finally:
            self._archive.close()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._buffer and not self._done:
            item = self._queue.get()
            if item is _END:
                self._done = True
            elif isinstance(item, BaseException):
                self._done = True
                raise OSError(f"7z: {type(item).__name__}: {item}") from item
            else:
                self._buffer = memoryview(item)
        n = min(len(buf), len(self._buffer))
        buf[:n], self._buffer = self._buffer[:n], self._buffer[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            while self._thread.is_alive():
                try:
                    self._queue.get(timeout=0.1)
                except queue.Empty:
                    pass
            self._thread.join()
        super().close()


class _Stopped(Exception):
    pass


def open_posts(raw: BinaryIO, path: str = "") -> BinaryIO:
    """Posts.xml's bytes from an opened site file: the member of a 7z archive, or the file itself.
    `Damage` for an empty file, and for a `.7z` that is not a 7z archive."""
    if not raw.seekable():
        raise OSError("a site file must be seekable (local disk or a bucket): 7z keeps its index at the end")
    head = raw.read(6)
    raw.seek(0)
    if not head:
        raise Damage("an empty file")
    if head == SEVEN_ZIP_MAGIC:
        return SevenZipMemberStream(raw)
    if path.lower().endswith(".7z"):
        raise Damage(f"not a 7z archive (it starts {head!r})")
    return raw
