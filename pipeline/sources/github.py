"""The GitHub source: MIT, BSD and Apache licensed repositories, one document per source file."""
from __future__ import annotations

import argparse
import posixpath
import tarfile
import zipfile
import zlib
from typing import Iterator

from pipeline.argtypes import fraction, positive_float, positive_int
from pipeline.schema import DeadLetter, Document, Rejected
from pipeline.sources.base import Source, Step
from pipeline.sources.github_code import QualityRule, language_of, strip_license_header
from pipeline.sources.github_license import KEPT, is_license_file, licenses_in_text, normalise_id, verdict
from pipeline.sources.github_repos import ArchiveBroken, Broken, Repository, export_licenses, export_records, \
    export_row, is_archive, is_export, list_units
from pipeline.sources.streams import MAX_JSON_LINE_BYTES, Damage

_BROKEN_ARCHIVE = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError)


def _skipped() -> None:
    from pipeline.runtime.counters import inc
    inc("read.skipped_records")


def decode_source(data: bytes) -> tuple[str | None, str]:
    """(text, "") for a UTF-8 text file, or (None, why) for a binary or undecodable one."""
    nul = data.find(b"\0")
    if nul >= 0:
        return None, f"binary file (NUL byte at offset {nul})"
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError as exc:
        return None, f"undecodable text: not UTF-8 ({exc.reason} at byte {exc.start})"


class GithubSource(Source):
    """GitHub: source files of MIT, BSD and Apache licensed repositories, one document per file.

    Input: directories of repositories (each subdirectory, or .tar.gz/.tgz/.tar.bz2/.tar.xz/.tar/.zip archive,
    is one repository; on gs:// or s3:// a directory is a key prefix), single repository archives, or
    BigQuery-style exports (.jsonl/.ndjson/.json, optionally .gz/.bz2/.zst, or .parquet; one row per file
    with repo_name, path, content and optionally license and binary).

    License: from the row's license field when there is one, else from the repository's root license files
    (LICENSE, LICENCE.md, COPYING, LICENSE-MIT, ...), recognised by their text: kept only when every license
    found is MIT, BSD-2-Clause, BSD-3-Clause or Apache-2.0 (--licenses). An export without a license field
    must hold the repository's root license file rows in the same export file.

    Files read: those whose extension or name is in the list below; others (images, data, lock files,
    license files) are skipped and counted. Binary files (a NUL byte) and files that are not UTF-8 become
    dead letters; files over --max-file-bytes (1,000,000) are rejected unread (stage "size").

    Damage: a zip member that does not inflate, fails its CRC or inflates past the size its header
    declares (a zip bomb: inflated bytes are counted, at most --max-file-bytes + 1 of them) is one dead
    letter and the other files are read; a tar's unreadable member headers are read past (one dead letter
    per stretch); a truncated or corrupt tar keeps the files before the damage and adds one dead letter;
    an export row over max(8 MiB, 4 x --max-file-bytes) is a dead letter; an empty archive or export is
    one dead letter.

    Cleaning, in order:
      header   leading comment blocks that hold a license or copyright statement are removed, per comment
               style (# // /* */ -- ; <!-- --> {- -} (* *) % ! ...); a leading comment that is not a license
               stays, and so does everything after it; docstrings are code and stay.
      quality  a file is dropped when its longest line has more than 1000 characters (--max-line-length),
               its mean line length is over 100 (--max-mean-line-length), or letters and digits are less
               than 0.25 of its characters (--min-alphanumeric); an empty file is dropped too.
      exact_dedup  files with identical text (after header removal) across the whole run: the one with the
               smallest key (first input, first file) stays.

    Extensions (language: extensions and file names):
      assembly .asm .nasm .s; batchfile .bat .cmd; c .c .h; c# .cs; c++ .c++ .cc .cpp .cxx .h++ .hh .hpp .hxx
      .ipp; clojure .clj .cljc .cljs; cmake .cmake CMakeLists.txt; css .css .less .scss; dart .dart;
      dockerfile .dockerfile Dockerfile; elixir .ex .exs; emacs-lisp .el; erlang .erl .hrl; fortran .f .f03
      .f08 .f77 .f90 .f95 .for; go .go; groovy .gradle .groovy; haskell .hs .lhs; html .htm .html .xhtml;
      java .java; javascript .cjs .js .jsx .mjs; julia .jl; kotlin .kt .kts; lisp .cl .lisp .lsp; lua .lua;
      makefile .mak .mk GNUmakefile Makefile; markdown .markdown .md; objective-c .mm; ocaml .ml .mli;
      perl .pl .pm .pod .t; php .php .php3 .php4 .php5 .phtml; powershell .ps1 .psd1 .psm1; python .py .pyi
      .pyx; r .r; restructuredtext .rst; ruby .rake .rb Gemfile Rakefile; rust .rs; scala .sc .scala;
      scheme .rkt .scm .ss; shell .bash .ksh .sh .zsh; sql .sql; swift .swift; tex .sty .tex; typescript .ts
      .tsx; visual-basic .vb .vbs; vue .vue; xml .xml .xsl .xslt
    (extensions and names match in any case).

    Documents: id github/<repo>/<path>, url https://github.com/<repo>/blob/HEAD/<path> for exports' owner/name
    repositories, metadata repo, path, language (the programming language above), license.
    """
    name = "github"
    stages = ("size", "license", "header", "quality", "exact_dedup")

    def __init__(self, max_file_bytes: int = 1_000_000, max_line_length: int = 1000,
                 max_mean_line_length: float = 100.0, min_alphanumeric: float = 0.25,
                 licenses: tuple[str, ...] = KEPT):
        self.max_file_bytes = max_file_bytes
        self.max_line_length, self.max_mean_line_length = max_line_length, max_mean_line_length
        self.min_alphanumeric = min_alphanumeric
        self.licenses = tuple(sorted(normalise_id(x) for x in licenses))

    def files(self, spec: str, max_files: int | None = None) -> list[str]:
        return list_units(spec, max_files)

    # ------------------------------------------------------------ reading
    def read(self, path: str) -> Iterator[Document | Rejected | DeadLetter]:
        if is_export(path):
            yield from self._read_export(path)
        elif path.endswith("/") or is_archive(path):
            yield from self._read_repository(path)
        else:
            yield DeadLetter(path, -1, "not a repository directory, archive (.tar.gz, .zip, ...) "
                                       "or export (.jsonl, .parquet, ...)")

    def _read_repository(self, unit: str) -> Iterator[Document | Rejected | DeadLetter]:
        try:
            repo = Repository(unit, is_license_file)
        except _BROKEN_ARCHIVE as exc:
            yield DeadLetter(unit, -1, f"unreadable repository archive: {type(exc).__name__}: {exc}")
            return
        texts = [t.decode("utf-8", "replace") for _, t in sorted(repo.license_texts.items())]
        licenses = sorted({lid for t in texts for lid in licenses_in_text(t)})
        refusal = verdict(licenses, self.licenses) if texts else "no root license file"
        if refusal and repo.error is not None:
            refusal += " (the archive breaks off before its end)"
        done = 0
        for reason in repo.broken_licenses:
            yield DeadLetter(unit, -1, f"unreadable root license file: {reason}", record_id=f"github/{repo.name}")
        try:
            for f in repo.files():
                if isinstance(f, Broken):
                    stopped = f"truncated or corrupt archive: stopped after {done} files: " if f.final else ""
                    yield DeadLetter(unit, f.offset, stopped + f.reason, record_id=f"github/{repo.name}")
                    if f.final:
                        return
                    continue
                try:
                    item = self._file_item(unit, -1, repo.name, f.path, f.size, f.read, licenses, refusal, url="")
                except ArchiveBroken as exc:
                    yield DeadLetter(unit, -1, f"truncated or corrupt archive: stopped after {done} files: {exc}",
                                     record_id=f"github/{repo.name}")
                    return
                except Damage as exc:      # one zip member: the others are read
                    done += 1
                    yield DeadLetter(unit, -1, str(exc), record_id=f"github/{repo.name}/{f.path}")
                    continue
                done += 1
                if item is not None:
                    yield item
        except _BROKEN_ARCHIVE as exc:
            yield DeadLetter(unit, -1, f"truncated or corrupt archive: stopped after {done} files: "
                                       f"{type(exc).__name__}: {exc}", record_id=f"github/{repo.name}")
            return
        if done == 0 and not unit.endswith("/"):
            yield DeadLetter(unit, -1, "an empty repository archive: no files in it", record_id=f"github/{repo.name}")

    def _read_export(self, path: str) -> Iterator[Document | Rejected | DeadLetter]:
        found: dict[str, list[str]] | None = None      # license files of the export, read when first needed
        for n, row, raw in export_records(path, max_line_bytes=self._max_line_bytes()):
            if isinstance(row, Damage):
                yield DeadLetter(path, n, str(row))
                continue
            if isinstance(row, Exception):
                yield DeadLetter(path, n, f"bad export row: {type(row).__name__}: {row}", preview=raw)
                continue
            try:
                r = export_row(row)
            except KeyError as exc:
                yield DeadLetter(path, n, f"bad export row: {exc.args[0]}")
                continue
            if r.license:
                licenses = [normalise_id(r.license)]
                refusal = verdict(licenses, self.licenses)
            else:
                if found is None:
                    found = export_licenses(path, is_license_file, licenses_in_text, self._max_line_bytes())
                licenses = found.get(r.repo, [])
                refusal = (verdict(licenses, self.licenses) if r.repo in found else
                           f"no license field, and no root license file of {r.repo} in {posixpath.basename(path)}")
            content = r.content.encode("utf-8", "surrogatepass") if isinstance(r.content, str) else r.content
            url = f"https://github.com/{r.repo}/blob/HEAD/{r.path}" if "/" in r.repo else ""
            if r.binary or content is None:
                if language_of(r.path) is not None and not is_license_file(r.path):
                    yield DeadLetter(path, n, "binary file (the export holds no text for it)",
                                     record_id=f"github/{r.repo}/{r.path}")
                else:
                    _skipped()
                continue
            item = self._file_item(path, n, r.repo, r.path, len(content), lambda k, c=content: c[:k],
                                   licenses, refusal, url)
            if item is not None:
                yield item

    def _max_line_bytes(self) -> int:
        """An export row's cap: its content is at most --max-file-bytes, up to 4x longer JSON-escaped."""
        return max(MAX_JSON_LINE_BYTES, 4 * self.max_file_bytes + (64 << 10))

    def _file_item(self, where: str, offset: int, repo: str, path: str, size: int | None, read, licenses: list[str],
                   refusal: str | None, url: str) -> Document | Rejected | DeadLetter | None:
        """One file as a document, a rejection or a dead letter; None when it is not a source file."""
        language = language_of(path)
        if language is None or is_license_file(path):
            _skipped()
            return None
        doc_id = f"github/{repo}/{path}"
        meta = {"repo": repo, "path": path, "language": language, "license": ", ".join(licenses)}
        known_too_big = size is not None and size > self.max_file_bytes
        data = b"" if known_too_big else read(self.max_file_bytes + 1)
        if known_too_big or len(data) > self.max_file_bytes:       # rejected unread: its text stays empty
            why = (f"file of {size:,} bytes > {self.max_file_bytes:,}" if known_too_big
                   else f"file of more than {self.max_file_bytes:,} bytes")
            return Rejected(Document(doc_id, url, self.name, "", meta), "size", why)
        text, why = decode_source(data)
        if text is None:
            return DeadLetter(where, offset, why, record_id=doc_id, preview=data[:DeadLetter.PREVIEW_BYTES])
        doc = Document(doc_id, url, self.name, text, meta)
        return Rejected(doc, "license", refusal) if refusal else doc

    # ------------------------------------------------------------ cleaning
    def steps(self) -> list[Step]:
        rule = QualityRule(self.max_line_length, self.max_mean_line_length, self.min_alphanumeric)

        def header(doc: Document) -> Document:
            text, removed = strip_license_header(doc.text, doc.metadata.get("language", ""))
            if removed:
                doc = Document(doc.id, doc.url, doc.source, text, {**doc.metadata, "header_lines_removed": removed})
            return doc

        def quality(doc: Document) -> Document | str:
            return rule.reason(doc.text) or doc

        return [Step("header", header), Step("quality", quality)]

    def dedup_steps(self) -> list:
        from pipeline.dedup.exact import ExactDedup
        return [ExactDedup("exact_dedup")]

    # ------------------------------------------------------------ command line
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--max-file-bytes", type=positive_int, default=1_000_000,
                            help="larger files are rejected unread (default 1,000,000)")
        parser.add_argument("--max-line-length", type=positive_int, default=1000,
                            help="drop a file whose longest line is longer (default 1000 characters)")
        parser.add_argument("--max-mean-line-length", type=positive_float, default=100.0,
                            help="drop a file whose mean line length is over this (default 100)")
        parser.add_argument("--min-alphanumeric", type=fraction, default=0.25,
                            help="drop a file whose share of letters and digits is lower (default 0.25)")
        parser.add_argument("--licenses", default=",".join(KEPT),
                            help=f"licenses kept, SPDX ids, comma-separated (default {','.join(KEPT)})")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "GithubSource":
        return cls(args.max_file_bytes, args.max_line_length, args.max_mean_line_length, args.min_alphanumeric,
                   tuple(x.strip() for x in args.licenses.split(",") if x.strip()))
