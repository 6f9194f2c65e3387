"""Papers out of arXiv's source formats, streamed: one paper's LaTeX files in memory at a time.

An input file is one of:
- a bulk tar (`arXiv_src_2301_001.tar`, plain or gzip'd) whose members are per-paper entries
  `2301/2301.00001.gz`: each a gzip'd tar of the paper's files or a gzip'd single file (usually the
  .tex; PDF-only submissions appear as `.pdf` entries);
- one paper's entry on its own (`2301.00001.tar.gz`, `2301.00001.gz`, a `.tar`);
- a plain `.tex` file, taken as a whole single-file paper.

A tar is taken as a bulk archive when its first file is a `.gz` entry (or a `.pdf` named like an arXiv
id). Only LaTeX source files are read out of a paper (`.tex`, `.ltx`, `.sty`, `.def`, files without an
extension, each at most MAX_FILE_BYTES); figures and data are skipped without being read. A corrupt
entry is a dead letter and the archive goes on with the next one; a truncated archive keeps every paper
before the cut; unreadable member headers of a bulk tar are read past to the next entry (one dead letter
per stretch). Caps: every decompression is pulled in bounded reads (`pipeline.sources.streams`); a paper's
file over MAX_FILE_BYTES is skipped unread (its tar header gives its size), and a single-file entry that
inflates past MAX_FILE_BYTES (a gzip bomb among them) is a dead letter, read no further.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import posixpath
import re
import tarfile
import zlib
from typing import BinaryIO, Iterator

from pipeline.inputs import is_gzip
from pipeline.schema import DeadLetter
from pipeline.sources.arxiv_latex import TEX_EXTENSIONS, is_source_name, normalise
from pipeline.sources.streams import Prefixed, TarDamage, partial, tar_members, tar_stream

MAX_FILE_BYTES = 8_000_000
MAX_PAPER_BYTES = 32_000_000
_NEW_ID = re.compile(r"^\d{4}\.\d{4,5}(v\d+)?$")
_OLD_ID = re.compile(r"^([a-z][a-z\-]*(?:\.[A-Z]{2})?)(\d{7})(v\d+)?$")
_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".gz", ".tex", ".ltx", ".latex", ".pdf")


@dataclasses.dataclass
class PaperSource:
    """One paper's LaTeX files (path -> bytes), or `not_latex` saying why it has none."""
    stem: str
    entry: str
    offset: int
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    not_latex: str = ""
    skipped: list[str] = dataclasses.field(default_factory=list)

    @property
    def arxiv_id(self) -> str:
        return arxiv_id(self.stem)


def arxiv_id(stem: str) -> str:
    """`2301.00001` stays; old-style `hep-th9901001` (how bulk archives name it) is `hep-th/9901001`."""
    m = _OLD_ID.match(stem)
    return f"{m.group(1)}/{m.group(2)}{m.group(3) or ''}" if m else stem


def abs_url(aid: str) -> str:
    return f"https://arxiv.org/abs/{aid}" if _NEW_ID.match(aid) or "/" in aid else ""


def stem_of(name: str) -> str:
    base = posixpath.basename(name.rstrip("/"))
    for suffix in _SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        data = stream.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block[:512], "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def read_papers(path: str, stream: BinaryIO) -> Iterator[PaperSource | DeadLetter]:
    """Every paper of one input file, in file order."""
    head = _read_up_to(stream, 512)
    if is_gzip(head):
        inner = partial(gzip.GzipFile(fileobj=Prefixed(head, stream)))
        inner_head = _read_up_to(inner, 512)
        if _is_tar_header(inner_head):
            yield from _tar(path, Prefixed(inner_head, inner))
        else:
            yield _single_file(stem_of(path), path, 0, inner_head, inner)
    elif _is_tar_header(head):
        yield from _tar(path, Prefixed(head, stream))
    elif path.lower().endswith(TEX_EXTENSIONS):
        yield _single_file(stem_of(path), path, 0, head, stream, name=posixpath.basename(path))
    else:
        yield DeadLetter(path, 0, "not a tar, a gzip or a .tex file", preview=head[:64])


def _tar(path: str, stream: io.RawIOBase) -> Iterator[PaperSource | DeadLetter]:
    tar = tar_stream(stream)
    members = tar_members(tar)
    first = _next_file(members)
    while isinstance(first, TarDamage):
        yield DeadLetter(path, first.offset, first.reason)
        first = None if "breaks off" in first.reason else _next_file(members)
    if first is None:
        yield DeadLetter(path, 0, "an empty tar archive")
        return
    if not _is_bulk_entry(first.name):
        yield _paper_tar(stem_of(path), path, 0, tar, members, first)
        return
    n, member = 0, first
    while member is not None:
        if isinstance(member, TarDamage):
            if "breaks off" in member.reason:
                yield DeadLetter(path, member.offset, f"archive ends early after {n} entries: {member.reason}")
                return
            yield DeadLetter(path, member.offset, member.reason)
        else:
            n += 1
            yield _entry(path, tar, member)
        member = _next_file(members)


def _next_file(members) -> tarfile.TarInfo | TarDamage | None:
    for member in members:
        if isinstance(member, TarDamage) or member.isfile():
            return member
    return None


def _is_bulk_entry(name: str) -> bool:
    base = posixpath.basename(name).lower()
    return base.endswith((".gz", ".tgz")) or (
        base.endswith(".pdf") and (bool(_NEW_ID.match(base[:-4])) or bool(_OLD_ID.match(base[:-4]))))


def _entry(path: str, tar: tarfile.TarFile, member: tarfile.TarInfo) -> PaperSource | DeadLetter:
    stem = stem_of(member.name)
    where = f"{path}:{member.name}"
    if member.name.lower().endswith(".pdf"):
        return PaperSource(stem, where, member.offset, not_latex="PDF-only submission: no LaTeX source")
    if not member.name.lower().endswith((".gz", ".tgz")):
        return DeadLetter(path, member.offset, f"not a paper entry (.gz or .pdf): {member.name}",
                          record_id=stem)
    try:
        data = tar.extractfile(member)
        inner = gzip.GzipFile(fileobj=data)
        head = _read_up_to(inner, 512)
        if _is_tar_header(head):
            inner_tar = tar_stream(io.BufferedReader(Prefixed(head, inner), 1 << 16))
            members = tar_members(inner_tar)
            return _paper_tar(stem, where, member.offset, inner_tar, members, _next_file(members))
        return _single_file(stem, where, member.offset, head, inner)
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
        return DeadLetter(path, member.offset, f"corrupt entry {member.name}: {type(exc).__name__}: {exc}",
                          record_id=arxiv_id(stem))


def _paper_tar(stem: str, where: str, offset: int, tar: tarfile.TarFile, members,
               first: tarfile.TarInfo | None) -> PaperSource:
    paper = PaperSource(stem, where, offset)
    total, member = 0, first
    while member is not None:
        if isinstance(member, TarDamage):     # the paper's own tar is damaged: the entry is a dead letter
            raise tarfile.ReadError(member.reason)
        name = normalise(member.name)
        if not name or not is_source_name(name):
            pass
        elif member.size > MAX_FILE_BYTES or total + member.size > MAX_PAPER_BYTES:
            paper.skipped.append(f"{name} ({member.size} bytes, over the size limit)")
        else:
            paper.files[name] = tar.extractfile(member).read()
            total += member.size
        member = _next_file(members)
    return paper


def _single_file(stem: str, where: str, offset: int, head: bytes, rest: BinaryIO,
                 name: str | None = None) -> PaperSource | DeadLetter:
    if head.startswith(b"%PDF"):
        return PaperSource(stem, where, offset, not_latex="a PDF, not LaTeX source")
    if head.startswith(b"%!PS"):
        return PaperSource(stem, where, offset, not_latex="a PostScript file, not LaTeX source")
    data = head + _read_up_to(rest, MAX_FILE_BYTES + 1 - len(head))
    if len(data) > MAX_FILE_BYTES:
        return DeadLetter(where, offset, f"a single file inflating past {MAX_FILE_BYTES:,} bytes",
                          record_id=arxiv_id(stem))
    return PaperSource(stem, where, offset, {name or f"{stem}.tex": data})
