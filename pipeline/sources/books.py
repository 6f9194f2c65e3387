"""The Books source: Project Gutenberg plain-text books and other collections (text files, JSONL), one
document per book."""
from __future__ import annotations

import argparse
import logging
import os
import posixpath
import re
import zipfile
from typing import Iterator

from pipeline.argtypes import int_at_least, open_fraction, positive_int
from pipeline.schema import DeadLetter, Document, Rejected
from pipeline.sources.base import Source, Step
from pipeline.sources.books_gutenberg import decode_book, strip_boilerplate
from pipeline.sources.streams import Damage, TarDamage, TooLarge, decompressed, decompression_errors, jsonl_lines, \
    open_tar, read_capped, read_zip_member, tar_members

_COMPRESSIONS = ("", ".gz", ".bz2", ".zst")
TEXTS = tuple(".txt" + c for c in _COMPRESSIONS)
JSONL = tuple(base + c for base in (".jsonl", ".ndjson", ".json") for c in _COMPRESSIONS)
ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
log = logging.getLogger(__name__)


def _kind(path: str) -> str | None:
    lower = path.lower()
    for kind, suffixes in (("archive", ARCHIVES), ("text", TEXTS), ("jsonl", JSONL)):
        if lower.endswith(suffixes):
            return kind
    return None


def _file_name(path: str) -> str:
    """The input file's name, for a document's metadata: where the inputs sit does not change the output."""
    return posixpath.basename(path.replace(os.sep, "/"))


def _stem(path: str) -> str:
    name = _file_name(path)
    for suffix in sorted(ARCHIVES + TEXTS + JSONL, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


class _TarBroken(Exception):
    def __init__(self, dead: DeadLetter):
        super().__init__(dead.reason)
        self.dead = dead


class BooksSource(Source):
    """Books: Project Gutenberg and other book collections, one document per book, near-copies removed.

    Input: book files, globs or directories (searched recursively; on gs:// or s3:// a directory is a key
    prefix): a plain-text book (.txt, .txt.gz, .txt.bz2, .txt.zst), an archive of them (.tar, .tar.gz, .tgz,
    .tar.bz2, .tar.xz, .zip: every .txt member is a book, as in Books3's tarball or Gutenberg's zips), or
    JSONL (.jsonl/.ndjson/.json, optionally .gz/.bz2/.zst; one book per line: "text", and optionally "id",
    "title", "author", "url", "language", "meta"). Text is UTF-8, or the character set a Gutenberg header
    declares ("Character set encoding: ISO-8859-1"); anything else, binary data (a NUL byte) and bad JSON
    lines become dead letters.

    Caps and damage: a book over --max-book-bytes (64 MiB) is a dead letter, read no further than that
    (a .txt.bz2 of zeros inflating to gigabytes is given up after 64 MiB); so is a JSONL line over
    --max-book-bytes + 1 MiB. A zip member that does not inflate, fails its CRC or inflates past its
    declared size costs that book only; a tar's unreadable member headers are read past, and a tar that
    breaks off keeps the books before the break (one dead letter each stretch). An empty file, or an
    archive without a .txt book, is one dead letter.

    Cleaning, in order:
      boilerplate  the Project Gutenberg header (through "*** START OF THE PROJECT GUTENBERG EBOOK ... ***",
                   or the older "*END*THE SMALL PRINT! ..." line, and a "Produced by ..." credit after it) and
                   footer (from "*** END OF THE PROJECT GUTENBERG EBOOK ...", "End of the Project Gutenberg
                   EBook of ...", "End of Project Gutenberg's ...") are removed; title, author, language and
                   ebook number are read from the header. A book left empty is dropped.
      exact_dedup  books with identical text: the one with the smallest key (first file, first record) stays.
      near_dedup   a book is dropped when a book with a smaller key overlaps it by more than 90%
                   (--overlap). Overlap of books A and B = |S(A) ∩ S(B)| / max(|S(A)|, |S(B)|), where S is
                   the set of word 5-grams (--ngram; words are lower-cased runs of letters and digits, so
                   punctuation and line wrapping do not count): the share of the longer book that the other
                   also holds. Candidate pairs come from MinHash LSH (256 permutations; any pair over 90%
                   overlap has Jaccard >= o / (2 - o) = 0.818, and the bands, 32 of 8 rows, make it a
                   candidate with probability >= 0.999); every candidate pair is then checked exactly on
                   its two shingle sets.

    Documents: id books/<file name> for a text file, books/<archive>/<member> for an archive member,
    books/<file name>/<id or line number> for a JSONL line; url https://www.gutenberg.org/ebooks/<n> for
    Gutenberg books; metadata title, author, language (ISO 639-1 when known), gutenberg_id, file (the
    input file's name).
    """
    name = "books"
    stages = ("boilerplate", "exact_dedup", "near_dedup")

    def __init__(self, overlap: float = 0.9, ngram: int = 5, perms: int = 256, max_book_bytes: int = 64 << 20):
        if not 0 < overlap < 1:
            raise ValueError("--overlap must be between 0 and 1")
        self.overlap, self.ngram, self.perms, self.max_book_bytes = overlap, ngram, perms, max_book_bytes

    def files(self, spec: str, max_files: int | None = None) -> list[str]:
        from pipeline.inputs import expand_files

        def is_book(path: str) -> bool:
            if _kind(path):
                return True
            log.warning("%s is not a book file (.txt, .jsonl, or an archive of .txt): not read", path)
            return False
        return expand_files(spec, is_book, max_files, what="book")

    def read(self, path: str) -> Iterator[Document | Rejected | DeadLetter]:
        kind = _kind(path)
        if kind is None:
            yield DeadLetter(path, -1, "not a book file: .txt, .jsonl or an archive of .txt files (optionally "
                                       "compressed) expected")
        elif kind == "text":
            yield self._read_text(path)
        elif kind == "jsonl":
            yield from self._read_jsonl(path)
        elif path.lower().endswith(".zip"):
            yield from self._read_zip(path)
        else:
            yield from self._read_tar(path)

    def _read_text(self, path: str) -> Document | DeadLetter:
        from pipeline.inputs import open_stream
        doc_id = f"books/{_stem(path)}"
        try:
            with open_stream(path) as raw, decompressed(raw, path) as f:
                data = read_capped(f, self.max_book_bytes, "book")
        except TooLarge as exc:
            return DeadLetter(path, -1, str(exc), record_id=doc_id)
        except decompression_errors() as exc:
            return DeadLetter(path, -1, f"cannot read file: {type(exc).__name__}: {exc}", record_id=doc_id)
        if not data:
            return DeadLetter(path, -1, "an empty file: no book in it", record_id=doc_id)
        return self._book(path, -1, doc_id, data, {})

    def _book(self, path: str, offset: int, doc_id: str, data: bytes, meta: dict) -> Document | DeadLetter:
        if len(data) > self.max_book_bytes:
            return DeadLetter(path, offset, f"book longer than {self.max_book_bytes:,} bytes", record_id=doc_id,
                              preview=data[:DeadLetter.PREVIEW_BYTES])
        text, why = decode_book(data)
        if text is None:
            return DeadLetter(path, offset, why, record_id=doc_id, preview=data[:DeadLetter.PREVIEW_BYTES])
        return Document(doc_id, meta.pop("url", ""), self.name, _normalise_newlines(text),
                        {"file": _file_name(path), **meta})

    def _read_tar(self, path: str) -> Iterator[Document | DeadLetter]:
        from pipeline.inputs import open_stream
        stem, found = _stem(path), 0   # books and damaged stretches
        try:
            with open_stream(path) as raw, open_tar(raw) as tar:
                for member in tar_members(tar):
                    if isinstance(member, TarDamage):
                        found += 1
                        yield DeadLetter(path, member.offset, member.reason)
                    elif member.isfile() and member.name.lower().endswith(".txt"):
                        found += 1
                        yield self._tar_book(path, tar, member, f"books/{stem}/{member.name[:-4]}")
        except _TarBroken as broken:              # the stream cannot go on past a member that breaks off
            yield broken.dead
            return
        except decompression_errors() as exc:     # not a tar at all, or nothing in it
            yield DeadLetter(path, 0, f"cannot read the archive: {type(exc).__name__}: {exc}")
            return
        if not found:
            yield DeadLetter(path, -1, "no .txt book in the archive")

    def _tar_book(self, path: str, tar, member, doc_id: str) -> Document | DeadLetter:
        if member.size > self.max_book_bytes:      # tar keeps members whole: the header's size is the size
            return DeadLetter(path, member.offset, f"book longer than {self.max_book_bytes:,} bytes "
                                                   f"({member.size:,})", record_id=doc_id)
        try:
            data = tar.extractfile(member).read()
        except decompression_errors() as exc:
            raise _TarBroken(DeadLetter(path, member.offset, f"the archive breaks off in {member.name}: "
                                                             f"{type(exc).__name__}: {exc}", record_id=doc_id))
        return self._book(path, member.offset, doc_id, data, {})

    def _read_zip(self, path: str) -> Iterator[Document | DeadLetter]:
        from pipeline.inputs import open_stream
        stem, books = _stem(path), 0
        try:
            with open_stream(path) as raw, zipfile.ZipFile(raw) as zf:
                for info in sorted(zf.infolist(), key=lambda i: i.filename):
                    if not info.is_dir() and info.filename.lower().endswith(".txt"):
                        books += 1
                        yield self._zip_book(path, zf, info, f"books/{stem}/{info.filename[:-4]}")
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            yield DeadLetter(path, 0, f"cannot read the zip archive: {type(exc).__name__}: {exc}")
            return
        if not books:
            yield DeadLetter(path, -1, "no .txt book in the archive")

    def _zip_book(self, path: str, zf, info, doc_id: str) -> Document | DeadLetter:
        try:
            data = read_zip_member(zf, info, self.max_book_bytes + 1)
        except Damage as exc:
            return DeadLetter(path, info.header_offset, str(exc), record_id=doc_id)
        return self._book(path, info.header_offset, doc_id, data, {})

    def _read_jsonl(self, path: str) -> Iterator[Document | DeadLetter]:
        stem = _stem(path)
        for n, row, line in jsonl_lines(path, self.max_book_bytes + (1 << 20)):
            if isinstance(row, Damage):
                yield DeadLetter(path, n, str(row), record_id=f"books/{stem}/{n}")
                continue
            if not isinstance(row, ValueError) and not (isinstance(row, dict) and isinstance(row.get("text"), str)):
                row = ValueError('a line must be a JSON object with a "text" string')
            if isinstance(row, ValueError):
                yield DeadLetter(path, n, f"bad JSON line: {row}", record_id=f"books/{stem}/{n}",
                                 preview=line[:DeadLetter.PREVIEW_BYTES])
                continue
            meta = _row_metadata(row)
            doc_id = f"books/{stem}/{row.get('id', n)}"
            text = row["text"]
            if "\0" in text:
                yield DeadLetter(path, n, "binary data, not text (NUL character)", record_id=doc_id,
                                 preview=line[:DeadLetter.PREVIEW_BYTES])
                continue
            yield Document(doc_id, meta.pop("url", ""), self.name, _normalise_newlines(text),
                           {"file": _file_name(path), **meta})

    # ------------------------------------------------------------ cleaning
    def steps(self) -> list[Step]:
        def boilerplate(doc: Document) -> Document | str:
            text, found = strip_boilerplate(doc.text)
            if not text.strip():
                return "no text left after removing the Project Gutenberg header and footer"
            meta = {**found, **doc.metadata}          # what the collection says wins over the header
            url = doc.url
            if not url and meta.get("gutenberg_id"):
                url = f"https://www.gutenberg.org/ebooks/{meta['gutenberg_id']}"
            return Document(doc.id, url, doc.source, text, meta)

        return [Step("boilerplate", boilerplate)]

    def dedup_steps(self) -> list:
        from pipeline.dedup.books import NearDuplicateBooks
        from pipeline.dedup.exact import ExactDedup
        return [ExactDedup("exact_dedup"),
                NearDuplicateBooks(self.overlap, self.ngram, self.perms, "near_dedup")]

    # ------------------------------------------------------------ command line
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--overlap", type=open_fraction, default=0.9,
                            help="drop a book that overlaps an earlier one by more than this (default 0.9)")
        parser.add_argument("--ngram", type=positive_int, default=5, help="words per shingle (default 5)")
        parser.add_argument("--minhash-perms", type=int_at_least(2), default=256,
                            help="MinHash permutations (default 256)")
        parser.add_argument("--max-book-bytes", type=positive_int, default=64 << 20,
                            help="longer books become dead letters (default 64 MiB)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "BooksSource":
        return cls(args.overlap, args.ngram, args.minhash_perms, args.max_book_bytes)


_LANG = re.compile(r"[a-z]{2,3}")


def _row_metadata(row: dict) -> dict:
    """What a JSONL book row says about itself: title, author, url, language (a short code), from the row
    or its "meta" object."""
    meta_obj = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    out = {}
    for key, alts in (("title", ("title", "short_book_title")), ("author", ("author",)), ("url", ("url",)),
                      ("language", ("language", "lang"))):
        for source in (row, meta_obj):
            value = next((source[a] for a in alts if isinstance(source.get(a), str) and source[a].strip()), None)
            if value:
                out[key] = value.strip()
                break
    if "language" in out and not _LANG.fullmatch(out["language"].lower()):
        from pipeline.sources.books_gutenberg import LANGUAGE_CODES
        out["language"] = LANGUAGE_CODES.get(out["language"].lower(), out["language"].lower())
    elif "language" in out:
        out["language"] = out["language"].lower()
    return out
