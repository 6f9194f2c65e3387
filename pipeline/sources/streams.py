"""Streaming reads of the sources' input containers, in memory bounded by one member: files compressed
by name (`.gz`, `.bz2`, `.zst`), JSON lines, and tar archives read as streams."""
from __future__ import annotations

import io
import tarfile
from typing import BinaryIO, Iterator


def decompressed(raw: BinaryIO, path: str) -> BinaryIO:
    """`raw` (the opened file at `path`) decompressed according to the path's suffix; anything else as it is."""
    lower = path.lower()
    if lower.endswith(".gz"):
        import gzip
        return gzip.GzipFile(fileobj=raw)
    if lower.endswith(".bz2"):
        import bz2
        return bz2.BZ2File(raw)
    if lower.endswith(".zst"):
        import zstandard
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return raw


def jsonl_lines(path: str) -> Iterator[tuple[int, object, bytes]]:
    """(line number, parsed value or the ValueError that made the line unreadable, the raw line) for every
    non-blank line of a JSON-lines file on any Beam filesystem, compressed by name or not. What shape a
    value must have is the caller's to check."""
    import json

    from pipeline.inputs import open_stream
    with open_stream(path) as raw, decompressed(raw, path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line), line
            except ValueError as exc:   # bad JSON, bad UTF-8
                yield n, exc, line


def tar_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Every member of a tar opened as a stream (`mode="r|*"`), in order. Iterating the TarFile itself
    keeps every member's TarInfo in `tar.members` to the end: hundreds of MB for an archive of millions
    of files. A stream never goes back to a member, so the list is emptied as it goes."""
    while (member := tar.next()) is not None:
        tar.members.clear()
        yield member
