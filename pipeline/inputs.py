"""Where a job's input files come from: globs on any Beam filesystem (local, gs://, s3://), http(s) URLs,
or a CommonCrawl `*.paths.gz` listing (one relative path per line) with a prefix and an optional count.
Streams are opened raw (the readers decompress themselves) and http(s) reads retry with resumption."""
from __future__ import annotations

import glob
import gzip
import io
import os
import logging
import time
import urllib.error
import urllib.request
from typing import BinaryIO, Callable

CC_PREFIX = "https://data.commoncrawl.org/"
_GLOB_CHARS = set("*?[")
log = logging.getLogger(__name__)


class InputError(ValueError):
    pass


def _is_http(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def _is_listing(path: str) -> bool:
    return path.endswith((".paths.gz", ".paths"))


def join(*parts: str) -> str:
    """Join path parts on any Beam filesystem (gs://bucket/a + b) or on local disk."""
    if "://" in parts[0]:
        from apache_beam.io.filesystems import FileSystems
        return FileSystems.join(*parts)
    return os.path.join(*parts)


def open_stream(path: str) -> BinaryIO:
    """A raw byte stream of a file on any Beam filesystem or over http(s)."""
    if _is_http(path):
        return RetryingHttpReader(path)
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_listing(path: str, prefix: str = CC_PREFIX, limit: int | None = None) -> list[str]:
    with open_stream(path) as raw:
        data = raw.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    lines = [ln.strip() for ln in data.decode("utf-8").splitlines() if ln.strip()]
    if limit is not None:
        lines = lines[:limit]
    return [ln if "://" in ln or ln.startswith("/") else prefix.rstrip("/") + "/" + ln for ln in lines]


def expand_inputs(spec: str | list[str], prefix: str = CC_PREFIX, limit: int | None = None) -> list[str]:
    """Every input file named by a comma-separated list of globs, paths, URLs and listings, in a stable
    order (sorted within each glob, listing order within each listing), without repeats."""
    items = spec if isinstance(spec, list) else [s.strip() for s in spec.split(",") if s.strip()]
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
    """Sequential reads over http(s) that survive throttling (429/5xx), timeouts and dropped connections
    by reopening at the current offset with a Range request, with exponential back-off."""

    def __init__(self, url: str, retries: int = 8, timeout: float = 60.0, backoff: float = 1.0):
        self.url, self.retries, self.timeout, self.backoff = url, retries, timeout, backoff
        self.pos = 0
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
        for attempt in range(self.retries + 1):
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
                if exc.code not in (408, 429) and exc.code < 500 or attempt == self.retries:
                    raise OSError(f"{self.url}: HTTP {exc.code}") from exc
            except (OSError, urllib.error.URLError) as exc:
                self._close_resp()
                if attempt == self.retries:
                    raise OSError(f"{self.url}: {exc} after {self.retries} retries") from exc
            delay = self.backoff * 2 ** attempt
            log.warning("retrying %s at byte %d in %.1fs", self.url, self.pos, delay)
            time.sleep(delay)
        return b""

    def _close_resp(self) -> None:
        if self._resp is not None:
            try:
                self._resp.close()
            finally:
                self._resp = None

    def close(self) -> None:
        self._close_resp()
        super().close()
