"""Streaming reads of the sources' input containers, in memory bounded by one capped record: files
compressed by name (`.gz`, `.bz2`, `.xz`, `.zst`), JSON lines, tar archives read as streams (compressed
or not, told by their magic bytes) and zip members. Every reader of the six non-CC sources decompresses
through these helpers, so that a decompression bomb or a damaged member costs one record.

Caps (a record over its cap becomes a dead letter; memory stays within the cap plus a constant):
- every decompression is pulled in bounded reads (gzip/bz2/xz/zstd readers with an output limit, never
  `decompress(all)`): a tar's own compressed stream too, which `tarfile`'s stream mode would inflate one
  10 KiB block at a time whatever the ratio (10 KiB of bz2 zeros is gigabytes);
- a line (`capped_lines`) is cut at its source's cap: MAX_JSON_LINE_BYTES (8 MiB) for JSON lines unless
  the source passes its own (books: --max-book-bytes + 1 MiB; Stack Exchange: 16 MiB rows). An over-long
  line is skipped to its end in constant memory for at most SKIP_FACTOR times its cap more; a line that
  goes on past that (a stream of zeros inflating to gigabytes) ends the file, as one dead letter;
- a zip member (`read_zip_member`) is inflated with its inflated bytes counted, not its header believed:
  one that inflates past what its header declares is damage, whatever the header says;
- a tar member's size is in its header and tar does not compress members, so its reader caps it by that
  size before reading (GitHub 1,000,000 bytes, books 64 MiB, arXiv 8 MB a file).

Damage: `tar_members` reads past an unreadable member header to the next readable one (GNU tar's
--ignore-zeros) and reports the stretch in between, and reports an archive that ends without its
end-of-archive blocks (a truncated download); a compressed stream that does not decompress ends the file
where it breaks, as one `Damage`.
"""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from typing import BinaryIO, Iterator

from pipeline.inputs import GZIP_MAGIC

MAX_JSON_LINE_BYTES = 8 << 20
SKIP_FACTOR = 8
BZ2_MAGIC, XZ_MAGIC, ZSTD_MAGIC = b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20


class Damage(ValueError):
    """A stretch of input that is not a readable record; the message says what is wrong with it."""


class TooLarge(Damage):
    """A record whose bytes run past its cap."""


def decompression_errors() -> tuple[type[BaseException], ...]:
    """What a decompressing reader raises on data that does not decompress (or ends early)."""
    import zstandard
    return OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError, tarfile.TarError, \
        zipfile.BadZipFile, Damage


class Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (to sniff its format), put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.head:
            n = min(len(buf), len(self.head))
            buf[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def _zstd(raw: BinaryIO) -> BinaryIO:
    import zstandard
    # every frame, not only the first: pzstd and concatenated files hold several
    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True,
                                                                        closefd=True))


def decompressed(raw: BinaryIO, path: str) -> BinaryIO:
    """`raw` (the opened file at `path`) decompressed according to the path's suffix; anything else as it
    is. Reads are bounded: `read(n)` inflates about n bytes, whatever the compression ratio."""
    lower = path.lower()
    if lower.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    if lower.endswith(".bz2"):
        return bz2.BZ2File(raw)
    if lower.endswith(".xz"):
        return lzma.LZMAFile(raw)
    if lower.endswith(".zst"):
        return _zstd(raw)
    return raw


class _Partial(io.RawIOBase):
    """A decompressing reader whose reads return what has been decompressed so far (`read1`): a plain
    `read(n)` keeps going until it has n bytes, so a truncation would swallow the bytes before it."""

    def __init__(self, f: BinaryIO):
        self.f = f

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self.f.read1(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.f.close()
        super().close()


def sniffed(raw: BinaryIO) -> BinaryIO:
    """`raw` decompressed according to its magic bytes (gzip, bz2, xz, zstd), or as it is; reads give
    back what has been decompressed so far, so a stream that breaks off keeps the bytes before the break."""
    head = raw.read(6)
    stream = io.BufferedReader(Prefixed(head, raw), _CHUNK)
    for magic, opener in ((GZIP_MAGIC, lambda f: gzip.GzipFile(fileobj=f)), (BZ2_MAGIC, bz2.BZ2File),
                          (XZ_MAGIC, lzma.LZMAFile), (ZSTD_MAGIC, _zstd)):
        if head.startswith(magic):
            return _Partial(opener(stream))
    return Prefixed(head, raw)


def read_capped(f: BinaryIO, cap: int, what: str = "record") -> bytes:
    """All of `f`, at most `cap` bytes read into memory; TooLarge when there are more."""
    data = f.read(cap + 1)
    if len(data) > cap:
        raise TooLarge(f"{what} longer than {cap:,} bytes")
    return data


# ---------------------------------------------------------------- lines
@dataclasses.dataclass
class Overlong:
    """A line over its cap, skipped: where it starts, the bytes skipped, and whether the file was given
    up because the line did not end within SKIP_FACTOR caps."""
    offset: int
    size: int
    cap: int
    abandoned: bool = False

    @property
    def reason(self) -> str:
        if self.abandoned:
            return (f"a line over {self.cap:,} bytes with no line end in {self.size:,} bytes: the rest "
                    f"of the file is not read (a decompression bomb, or not a line-per-record file)")
        return f"a line of {self.size:,} bytes, over {self.cap:,}"


def capped_lines(f: BinaryIO, cap: int) -> Iterator[tuple[int, bytes] | Overlong]:
    """(offset, line) for every line of `f`, no line held past `cap` bytes; an over-long line is one
    `Overlong` and reading goes on after it (see SKIP_FACTOR)."""
    reader = f if isinstance(f, io.BufferedIOBase) else io.BufferedReader(f, _CHUNK)
    offset = 0
    while line := reader.readline(cap + 1):
        if len(line) <= cap or line.endswith(b"\n"):
            yield offset, line
            offset += len(line)
            continue
        size, budget = len(line), SKIP_FACTOR * cap
        while line and not line.endswith(b"\n") and size - cap < budget:
            line = reader.readline(min(_CHUNK, budget - (size - cap)))
            size += len(line)
        ended = not line or line.endswith(b"\n")
        yield Overlong(offset, size, cap, abandoned=not ended)
        if not ended:
            return
        offset += size


def jsonl_lines(path: str, max_line_bytes: int = MAX_JSON_LINE_BYTES) -> Iterator[tuple[int, object, bytes]]:
    """(line number, parsed value or the ValueError that made the line unreadable, the raw line) for every
    non-blank line of a JSON-lines file on any Beam filesystem, compressed by name or not. What shape a
    value must have is the caller's to check. A `Damage` stands for a line over `max_line_bytes`, for
    compressed data that stops decompressing (the last item then), and for a file with no line at all."""
    import json

    from pipeline.inputs import open_stream
    n, seen = 0, False
    with open_stream(path) as raw, decompressed(raw, path) as f:
        lines = capped_lines(f, max_line_bytes)
        while True:
            try:
                item = next(lines, None)
            except decompression_errors() as exc:
                yield n + 1, Damage(f"the file stops decompressing after line {n}: {type(exc).__name__}: {exc}"), b""
                return
            if item is None:
                break
            n += 1
            if isinstance(item, Overlong):
                seen = True
                yield n, Damage(f"line {n}: {item.reason}"), b""
                continue
            line = item[1]
            if not line.strip():
                continue
            seen = True
            try:
                yield n, json.loads(line), line
            except ValueError as exc:   # bad JSON, bad UTF-8
                yield n, exc, line
    if not seen:
        yield 0, Damage("an empty file: no JSON lines"), b""


# ---------------------------------------------------------------- tar
@dataclasses.dataclass
class TarDamage:
    """A stretch of a tar archive that holds no readable member: where it starts, and why."""
    offset: int
    reason: str


class _TrackedInfo(tarfile.TarInfo):
    """Tells the TarFile reading it about end-of-archive blocks and unreadable headers, which `next()`
    otherwise takes in silence."""

    @classmethod
    def fromtarfile(cls, tar):
        state = tar.__dict__.setdefault("damage_state", _TarState())
        try:
            info = super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            state.ended = True
            raise
        except tarfile.InvalidHeaderError as exc:
            if state.bad_from is None:
                state.bad_from, state.why = tar.offset, str(exc)
            raise
        state.ended = False
        return info


@dataclasses.dataclass
class _TarState:
    ended: bool = False           # the last header read was an end-of-archive block
    bad_from: int | None = None   # the first block of a run of unreadable headers
    why: str = ""


def open_tar(raw: BinaryIO) -> tarfile.TarFile:
    """A tar archive (plain or gzip/bz2/xz/zstd compressed) opened as a stream for `tar_members`, its
    decompression pulled in bounded reads."""
    return tar_stream(sniffed(raw))


def tar_stream(stream: BinaryIO) -> tarfile.TarFile:
    """An uncompressed tar stream opened for `tar_members`, damage tracked."""
    return tarfile.open(fileobj=stream, mode="r|", ignore_zeros=True, tarinfo=_TrackedInfo)


def partial(f: BinaryIO) -> BinaryIO:
    """A decompressing reader (with `read1`) whose reads give back what has been decompressed so far."""
    return _Partial(f)


def tar_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo | TarDamage]:
    """Every member of a tar opened as a stream, in order. Iterating the TarFile itself keeps every
    member's TarInfo in `tar.members` to the end: hundreds of MB for an archive of millions of files.
    A stream never goes back to a member, so the list is emptied as it goes.

    For a tar from `open_tar`, a `TarDamage` stands for each run of unreadable member headers (read past),
    for an archive that ends without its end-of-archive blocks, and for one that breaks off (the last
    item then)."""
    tracked = tar.tarinfo is _TrackedInfo
    while True:
        try:
            member = tar.next()
        except decompression_errors() + (ValueError,) as exc:
            yield TarDamage(tar.offset, f"the archive breaks off at byte {tar.offset:,}: {type(exc).__name__}: {exc}")
            return
        tar.members.clear()
        state = tar.__dict__.get("damage_state")
        if tracked and state is not None and state.bad_from is not None:
            end = member.offset if member is not None else tar.offset
            yield TarDamage(state.bad_from, f"unreadable member header at byte {state.bad_from:,} ({state.why}): "
                                            f"{end - state.bad_from:,} bytes skipped to the next member")
            state.bad_from = None
        if member is None:
            break
        yield member
    if tracked and not tar.__dict__.get("damage_state", _TarState()).ended:
        yield TarDamage(tar.offset, f"the archive ends at byte {tar.offset:,} without its end-of-archive "
                                    f"blocks (truncated)")


# ---------------------------------------------------------------- zip
def read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, n: int) -> bytes:
    """At most n bytes of a zip member, inflated bytes counted: `Damage` when it inflates to more (or
    fewer) bytes than its header declares, or fails its CRC; n bytes back means there may be more."""
    import copy
    probe = copy.copy(info)
    # a limit above n, so that reading n bytes never reaches it: zipfile checks the CRC of whatever it
    # has when it reaches its limit, and a partial read would fail it
    probe.file_size = n + 1
    try:
        with zf.open(probe) as f:
            data = f.read(n)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError,
            lzma.LZMAError) as exc:
        raise Damage(f"corrupt zip member {info.filename}: {type(exc).__name__}: {exc}") from exc
    if len(data) == n and info.file_size < n:
        raise Damage(f"zip member {info.filename} declares {info.file_size:,} bytes and inflates to more "
                     f"(at least {n:,})")
    if len(data) < n and len(data) != info.file_size:
        raise Damage(f"zip member {info.filename} declares {info.file_size:,} bytes and holds {len(data):,}")
    return data
