"""Where a job's input files come from: globs on any Beam filesystem (local, gs://, s3://), http(s) URLs,
or a CommonCrawl `*.paths.gz` listing (one relative path per line) with a prefix and an optional count.
Streams are opened raw (the readers decompress themselves) and http(s) reads retry with resumption."""
from __future__ import annotations

import glob
import gzip
import io
import os
import logging
import socket
import time
import urllib.error
import urllib.request
from typing import BinaryIO, Callable

CC_PREFIX = "https://data.commoncrawl.org/"
Span = tuple[int, "int | None"]      # [start, end) in bytes of a file; end None: to its end
WHOLE: Span = (0, None)
GZIP_MAGIC = b"\x1f\x8b"   # the first two bytes of every gzip member (RFC 1952)
_GLOB_CHARS = set("*?[")
log = logging.getLogger(__name__)


class InputError(ValueError):
    pass


def _is_http(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def _is_listing(path: str) -> bool:
    return path.endswith((".paths.gz", ".paths"))


def is_gzip(head: bytes) -> bool:
    """Whether `head`, the first bytes of a file or stream, start a gzip member: by content, not by name."""
    return head[:2] == GZIP_MAGIC


def join(*parts: str) -> str:
    """Join path parts on any Beam filesystem (gs://bucket/a + b) or on local disk."""
    if "://" in parts[0]:
        from apache_beam.io.filesystems import FileSystems
        return FileSystems.join(*parts)
    return os.path.join(*parts)


def open_stream(path: str, start: int = 0, end: int | None = None) -> BinaryIO:
    """A raw byte stream of a file on any Beam filesystem or over http(s), from byte `start` up to `end`
    (default: the end of the file)."""
    if _is_http(path):
        stream = RetryingHttpReader(path, start=start)
    else:
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems
        stream = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        if start:
            stream.seek(start)
    return stream if end is None else Bounded(stream, end - start)


def input_size(path: str) -> int | None:
    """The size of a file in bytes (over http(s): what a HEAD request says), or None when it cannot be told."""
    try:
        if _is_http(path):
            req = urllib.request.Request(path, method="HEAD", headers={"User-Agent": "smallgiant"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                length = resp.headers.get("Content-Length")
            return int(length) if length and length.isdigit() else None
        from apache_beam.io.filesystems import FileSystems
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception:  # noqa: BLE001 - a file whose size is unknown is read whole; reading it reports why
        return None


class Bounded(io.RawIOBase):
    """The first `limit` bytes of a stream (closing it closes the stream)."""

    def __init__(self, stream: BinaryIO, limit: int):
        self.stream, self.left = stream, limit

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        want = self.left if n is None or n < 0 else min(n, self.left)
        data = self.stream.read(want) if want > 0 else b""
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.stream.close()
        super().close()


def read_listing(path: str, prefix: str = CC_PREFIX, limit: int | None = None) -> list[str]:
    """The files a listing names, each line resolved under `prefix` (the first `limit` of them). Every
    line must be a relative path that stays under the prefix: a line that is absolute, has a scheme or
    climbs with `..` would read something the prefix does not hold (a local file, another host), so it
    refuses the whole listing before the job starts, rather than being read or silently dropped."""
    with open_stream(path) as raw:
        data = raw.read()
    if is_gzip(data):
        data = gzip.decompress(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a listing of paths: byte {exc.start} is not UTF-8") from None
    lines = [(number, ln.strip()) for number, ln in enumerate(text.splitlines(), 1) if ln.strip()]
    for number, line in lines:
        _check_listed_path(path, number, line)
    if limit is not None:
        lines = lines[:limit]
    return [prefix.rstrip("/") + "/" + line for _, line in lines]


def _check_listed_path(listing: str, number: int, line: str) -> None:
    segments = line.replace("\\", "/").split("/")
    if line.startswith(("/", "\\")):
        why = "is absolute"
    elif "://" in line or ":" in segments[0]:
        why = "has a scheme"
    elif ".." in segments:
        why = "has a '..' segment"
    else:
        return
    raise InputError(f"{listing}: line {number}: {line[:200]!r} {why}; a listing's lines are paths relative to "
                     "--paths-prefix")


def spec_items(spec: str | list[str]) -> list[str]:
    """The items of a comma-separated input list (globs, paths, URLs, listings), as written."""
    return spec if isinstance(spec, list) else [s.strip() for s in spec.split(",") if s.strip()]


def expand_inputs(spec: str | list[str], prefix: str = CC_PREFIX, limit: int | None = None) -> list[str]:
    """Every input file named by a comma-separated list of globs, paths, URLs and listings, in a stable
    order (sorted within each glob, listing order within each listing), without repeats."""
    items = spec_items(spec)
    if not items:
        raise InputError("no input given")
    out: list[str] = []
    for item in items:
        if _is_listing(item):
            out += read_listing(item, prefix, limit)
        elif _is_http(item) or not (_GLOB_CHARS & set(item)):
            out.append(item)
        else:
            out += _glob(item)
    seen: set[str] = set()
    unique = [p for p in out if not (p in seen or seen.add(p))]
    return unique[:limit] if limit is not None else unique


def expand_files(spec: str, accept: Callable[[str], bool] | None = None, limit: int | None = None,
                 what: str = "input") -> list[str]:
    """Like `expand_inputs`, and a directory (local, or a `gs://.../` prefix ending in a slash) stands
    for the files under it, searched recursively, sorted, kept when `accept(path)` says so."""
    out: list[str] = []
    for item in expand_inputs(spec):
        if "://" in item and item.endswith("/"):
            from apache_beam.io.filesystems import FileSystems
            found = sorted(m.path for r in FileSystems.match([item + "**"]) for m in r.metadata_list)
        elif "://" not in item and os.path.isdir(item):
            found = sorted(os.path.abspath(os.path.join(d, f)) for d, _, names in os.walk(item) for f in names)
        else:
            out.append(item)
            continue
        kept = [f for f in found if accept is None or accept(f)]
        if not kept:
            raise InputError(f"no {what} file in {item}")
        out += kept
    unique = list(dict.fromkeys(out))
    return unique[:limit] if limit is not None else unique


def _glob(pattern: str) -> list[str]:
    if "://" in pattern:
        from apache_beam.io.filesystems import FileSystems
        found = sorted(m.path for r in FileSystems.match([pattern]) for m in r.metadata_list)
    else:
        # the local glob lists what Beam's matcher hides (broken links, directories), so that an
        # unreadable file becomes a dead letter instead of silently vanishing from the run
        found = sorted(os.path.abspath(p) for p in glob.glob(pattern))
    if not found:
        raise InputError(f"no file matches {pattern!r}")
    return found


class RetryingHttpReader(io.RawIOBase):
    """Sequential reads over http(s) that survive throttling (408/429/5xx), timeouts and dropped
    connections by reopening at the current offset with a Range request, with exponential back-off: at
    most `retries` retries, each wait at most `max_delay` s, and none starting more than `deadline` s after
    the read began. A refused connection or a host name that does not resolve is nobody there rather than
    a passing load: it gets `refused_retries` retries (about 3 s with the defaults), then the read fails
    and the file is the job's dead letter."""

    def __init__(self, url: str, retries: int = 8, timeout: float = 60.0, backoff: float = 1.0,
                 deadline: float = 600.0, refused_retries: int = 2, max_delay: float = 60.0, start: int = 0):
        self.url, self.retries, self.timeout, self.backoff = url, retries, timeout, backoff
        self.deadline, self.refused_retries, self.max_delay = deadline, refused_retries, max_delay
        self.pos = start
        self._resp = None
        self._end: int | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        headers = {"User-Agent": "smallgiant"}
        if self.pos:
            headers["Range"] = f"bytes={self.pos}-"
        resp = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=self.timeout)
        if self.pos and resp.status != 206:
            resp.close()
            raise OSError(f"{self.url}: server ignored the Range request (status {resp.status})")
        length = resp.headers.get("Content-Length")
        self._end = self.pos + int(length) if length and length.isdigit() else None
        self._resp = resp

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                if self._resp is None:
                    self._open()
                data = self._resp.read(n if n and n > 0 else -1)
                if not data:
                    if self._end is not None and self.pos < self._end:
                        raise OSError(f"connection closed at byte {self.pos} of {self._end}")
                    self._done = True
                self.pos += len(data)
                return data
            except urllib.error.HTTPError as exc:
                self._close_resp()
                if exc.code == 416 and self.pos:  # nothing left past our offset
                    self._done = True
                    return b""
                if exc.code not in (408, 429) and exc.code < 500:
                    raise OSError(f"{self.url}: HTTP {exc.code}") from exc
                failure: Exception = exc
            except (OSError, urllib.error.URLError) as exc:
                self._close_resp()
                failure = exc
            delay = self._retry_delay(failure, attempt, started)
            if delay is None:
                raise OSError(f"{self.url}: {failure} (given up after {attempt} retries, "
                              f"{time.monotonic() - started:.1f} s)") from failure
            log.warning("retrying %s at byte %d in %.1fs: %s", self.url, self.pos, delay, failure)
            time.sleep(delay)
            attempt += 1

    def _retry_delay(self, failure: Exception, attempt: int, started: float) -> float | None:
        """How long to wait before the next try, or None when the read gives up."""
        limit = self.refused_retries if self._nobody_there(failure) else self.retries
        delay = min(self.backoff * 2 ** attempt, self.max_delay)
        if attempt >= limit or time.monotonic() - started + delay > self.deadline:
            return None
        return delay

    @staticmethod
    def _nobody_there(failure: Exception) -> bool:
        reason = getattr(failure, "reason", failure)  # urllib wraps the socket's error in a URLError
        return isinstance(reason, (ConnectionRefusedError, socket.gaierror))

    def _close_resp(self) -> None:
        if self._resp is not None:
            try:
                self._resp.close()
            finally:
                self._resp = None

    def close(self) -> None:
        self._close_resp()
        super().close()
