"""Source trees as users have them, on any Beam filesystem: listing the repositories of an input, and
streaming the files of one repository with its root license files found first.

Inputs (comma-separated, globs allowed):
- a directory of repositories: each immediate subdirectory is one repository, and so is each archive in
  it (`.tar.gz`, `.tgz`, `.tar.bz2`, `.tar.xz`, `.tar`, `.zip`); export files in it are read as exports.
  On object stores (gs://, s3://) directories are key prefixes: the listing takes every object under the
  prefix and groups them by their first path component;
- an archive: one repository. A single top-level folder inside it (GitHub's `owner-repo-<sha>/`) is the
  repository root;
- a BigQuery-style export (`.jsonl`, `.json`, `.ndjson`, optionally `.gz`/`.bz2`/`.zst`, or `.parquet`):
  one row per file with `repo_name` (or `repo`), `path`, `content`, and optionally `license` and `binary`.
The matches of a glob follow the same rules (a matched directory is a directory of repositories).

A unit of work (`Source.files`) is a repository directory (its path ends in `/`), an archive or an export
file. Tar archives are streams, so they are read twice: once for the top folder and the root license files
(nothing else is kept), once for the files; memory stays bounded by one file.

Damage costs what it damages (see `pipeline.sources.streams`): a zip member that does not inflate, fails
its CRC or inflates past its declared size is that member alone; a tar's unreadable member headers are
read past; a tar that breaks off keeps the files before the break. Each becomes a `Broken` item among
the files, for the source to turn into one dead letter.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import posixpath
import tarfile
import zipfile
import zlib
from typing import Callable, Iterable, Iterator

from pipeline.inputs import expand_inputs, open_stream
from pipeline.sources.streams import MAX_JSON_LINE_BYTES, Damage, TarDamage, jsonl_lines, open_tar, \
    read_zip_member, tar_members

ARCHIVES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")
EXPORTS = tuple(base + comp for base in (".jsonl", ".ndjson", ".json") for comp in ("", ".gz", ".bz2", ".zst")) \
    + (".parquet",)
SKIP_DIRS = {".git", ".hg", ".svn"}
log = logging.getLogger(__name__)


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVES)


def is_export(path: str) -> bool:
    return path.lower().endswith(EXPORTS)


def repo_name(unit: str) -> str:
    """A repository's name: its directory's or archive's name without the archive extension."""
    name = posixpath.basename(unit.rstrip("/").replace(os.sep, "/"))
    for ext in ARCHIVES:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


# ---------------------------------------------------------------- listing
def _children_local(directory: str) -> list[str]:
    out = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_dir() and entry.name not in SKIP_DIRS:
            out.append(os.path.join(directory, entry.name) + "/")
        elif entry.is_file() and (is_archive(entry.name) or is_export(entry.name)):
            out.append(entry.path)
        else:
            log.warning("%s is neither a repository nor an archive or export: not read", entry.path)
    return out


def _children_remote(prefix: str) -> list[str]:
    from apache_beam.io.filesystems import FileSystems
    root = prefix.rstrip("/") + "/"
    units: list[str] = []
    seen: set[str] = set()
    for path in sorted(m.path for r in FileSystems.match([root + "**"]) for m in r.metadata_list):
        first, _, rest = path[len(root):].partition("/")
        unit = root + first + "/" if rest else path
        if unit in seen or first in SKIP_DIRS:
            continue
        seen.add(unit)
        if rest or is_archive(first) or is_export(first):
            units.append(unit)
        else:
            log.warning("%s is neither a repository nor an archive or export: not read", path)
    return units


def list_units(spec: str, limit: int | None = None) -> list[str]:
    """Every repository directory (ending in `/`), archive and export file named by the input, in a
    stable order, without repeats."""
    units: list[str] = []
    for item in expand_inputs(spec):
        if is_archive(item) or is_export(item):
            units.append(item)
        elif "://" in item:
            units += _children_remote(item)
        elif os.path.isdir(item):
            units += _children_local(item)
        else:
            units.append(item)           # not a known kind: reading it says why
    seen: set[str] = set()
    units = [u for u in units if not (u in seen or seen.add(u))]
    return units[:limit] if limit is not None else units


# ---------------------------------------------------------------- reading one repository
@dataclasses.dataclass
class RepoFile:
    """One regular file of a repository; `read(n)` returns at most n bytes of it (call it before moving
    on to the next file: archive members are streams)."""
    path: str
    size: int | None
    read: Callable[[int], bytes]


@dataclasses.dataclass
class Broken:
    """A stretch of a repository archive that holds no readable file: `offset` into the archive (-1 for a
    zip member, which the reason names), why, and whether the archive cannot be read past it."""
    offset: int
    reason: str
    final: bool = False


class ArchiveBroken(Damage):
    """A tar member whose data breaks off: the stream cannot go on past it."""


def _read_limited(opener: Callable[[], io.BufferedIOBase]) -> Callable[[int], bytes]:
    def read(n: int) -> bytes:
        with opener() as f:
            return f.read(n)
    return read


def _skipped_dir(rel: str) -> bool:
    return any(part in SKIP_DIRS for part in rel.split("/")[:-1])


def _dir_files_local(root: str) -> Iterator[RepoFile]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue                  # a link may point anywhere, even outside the repository
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            yield RepoFile(rel, os.path.getsize(full), _read_limited(lambda p=full: open(p, "rb")))


def _dir_files_remote(root: str) -> Iterator[RepoFile]:
    from apache_beam.io.filesystems import FileSystems
    prefix = root.rstrip("/") + "/"
    found = sorted(((m.path, m.size_in_bytes) for r in FileSystems.match([prefix + "**"]) for m in r.metadata_list))
    for path, size in found:
        rel = path[len(prefix):]
        if rel and not _skipped_dir(rel):
            yield RepoFile(rel, size, _read_limited(lambda p=path: open_stream(p)))


class _TopFolder:
    """The single folder every name of an archive sits in (with its `/`), or "", told name by name."""

    def __init__(self):
        self.top: str | None = None   # None: no name yet

    def add(self, name: str) -> None:
        first, sep, _ = name.partition("/")
        top = first + "/" if sep else ""
        self.top = top if self.top is None or self.top == top else ""

    @property
    def value(self) -> str:
        return self.top or ""


def _top_folder(names: Iterable[str]) -> str:
    """The single folder every name of an archive sits in (with its `/`), or ""."""
    top = _TopFolder()
    for name in names:
        top.add(name)
    return top.value


def _member_names_and_licenses(path: str, is_license: Callable[[str], bool], max_bytes: int):
    """Pass 1 over a tar stream: the archive's top folder and the texts of root license files. A broken
    archive ends the pass early; what was seen stands (pass 2 reports the damage)."""
    top, licenses, error = _TopFolder(), {}, None
    try:
        with open_stream(path) as raw, open_tar(raw) as tar:
            for m in tar_members(tar):
                if isinstance(m, TarDamage):
                    error = error or Damage(m.reason)
                    continue
                if not m.isfile():
                    continue
                top.add(m.name)
                if is_license(m.name.split("/", 1)[-1]) or is_license(m.name):
                    licenses[m.name] = tar.extractfile(m).read(max_bytes)
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
        error = exc
    root_licenses = {n[len(top.value):]: text for n, text in licenses.items()
                     if n.startswith(top.value) and is_license(n[len(top.value):])}
    return top.value, root_licenses, error


def _tar_member_reader(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Callable[[int], bytes]:
    f = tar.extractfile(member)

    def read(n: int) -> bytes:
        try:
            return f.read(n)
        except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as exc:
            raise ArchiveBroken(f"the archive breaks off in {member.name}: {type(exc).__name__}: {exc}") from exc
    return read


def _tar_files(path: str, top: str) -> Iterator[RepoFile | Broken]:
    with open_stream(path) as raw, open_tar(raw) as tar:
        for m in tar_members(tar):
            if isinstance(m, TarDamage):
                yield Broken(m.offset, m.reason, final="breaks off" in m.reason)
                continue
            if not m.isfile() or not m.name.startswith(top):
                continue
            rel = m.name[len(top):]
            if rel and not _skipped_dir(rel):
                yield RepoFile(rel, m.size, _tar_member_reader(tar, m))


def _zip_files(zf: zipfile.ZipFile, top: str) -> Iterator[RepoFile]:
    for info in sorted(zf.infolist(), key=lambda i: i.filename):
        if info.is_dir() or not info.filename.startswith(top):
            continue
        rel = info.filename[len(top):]
        if rel and not _skipped_dir(rel):
            yield RepoFile(rel, info.file_size, lambda n, i=info: read_zip_member(zf, i, n))


class Repository:
    """One repository unit: its name, its root license texts (path -> bytes) and its files. `error` is
    set when a pass over the archive stopped early (the files read before it still come)."""

    def __init__(self, unit: str, is_license: Callable[[str], bool], max_license_bytes: int = 1 << 20):
        self.unit, self.name = unit, repo_name(unit)
        self._is_license, self._max = is_license, max_license_bytes
        self._zip: zipfile.ZipFile | None = None
        self._top = ""
        self.error: Exception | None = None
        self.broken_licenses: list[str] = []     # root license files of a zip that do not inflate
        self.license_texts = self._license_texts()

    def _license_texts(self) -> dict[str, bytes]:
        if self.unit.endswith("/"):
            return {f.path: f.read(self._max) for f in self._root_files() if self._is_license(f.path)}
        if self.unit.lower().endswith(".zip"):
            self._raw = open_stream(self.unit)
            try:
                self._zip = zipfile.ZipFile(self._raw)
            except Exception:
                self._raw.close()
                raise
            self._top = _top_folder([i.filename for i in self._zip.infolist() if not i.is_dir()])
            return self._zip_licenses()
        self._top, texts, self.error = _member_names_and_licenses(self.unit, self._is_license, self._max)
        return texts

    def _zip_licenses(self) -> dict[str, bytes]:
        texts = {}
        for f in _zip_files(self._zip, self._top):
            if self._is_license(f.path):
                try:
                    texts[f.path] = f.read(self._max)
                except Damage as exc:
                    self.broken_licenses.append(str(exc))
        return texts

    def _root_files(self) -> Iterator[RepoFile]:
        if "://" in self.unit:
            yield from (f for f in _dir_files_remote(self.unit) if "/" not in f.path)
            return
        for entry in sorted(os.scandir(self.unit), key=lambda e: e.name):
            if entry.is_file() and not entry.is_symlink():
                yield RepoFile(entry.name, entry.stat().st_size, _read_limited(lambda p=entry.path: open(p, "rb")))

    def files(self) -> Iterator[RepoFile | Broken]:
        if self.unit.endswith("/"):
            yield from (_dir_files_remote(self.unit) if "://" in self.unit else _dir_files_local(self.unit))
        elif self._zip is not None:
            try:
                yield from _zip_files(self._zip, self._top)
            finally:
                self._zip.close()
                self._raw.close()
        else:
            yield from _tar_files(self.unit, self._top)


# ---------------------------------------------------------------- BigQuery-style exports
_REPO_COLUMNS = ("repo_name", "repo", "sample_repo_name")
_PATH_COLUMNS = ("path", "sample_path")


@dataclasses.dataclass
class ExportRow:
    repo: str
    path: str
    content: str | None
    license: str | None
    binary: bool = False


def _pick(row: dict, names: tuple[str, ...]):
    for name in names:
        if row.get(name) is not None:
            return row[name]
    return None


def export_row(row: dict) -> ExportRow:
    """An export row in our terms; KeyError names what is missing."""
    repo, path = _pick(row, _REPO_COLUMNS), _pick(row, _PATH_COLUMNS)
    if not repo or not path:
        raise KeyError("a row needs repo_name and path")
    content = row.get("content")
    license_ = row.get("license")
    return ExportRow(str(repo), str(path).lstrip("/"), content, str(license_) if license_ else None,
                     bool(row.get("binary")))


def export_records(path: str, batch_rows: int = 256, max_line_bytes: int = MAX_JSON_LINE_BYTES
                   ) -> Iterator[tuple[int, dict | Exception, bytes]]:
    """(row number, row dict or the error that made it unreadable, raw bytes for a preview); a JSON-lines
    row over `max_line_bytes` is a `Damage`."""
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq
        with open_stream(path) as raw:
            pf = pq.ParquetFile(raw)
            n = 0
            for batch in pf.iter_batches(batch_size=batch_rows):
                for row in batch.to_pylist():
                    n += 1
                    yield n, row, b""
        return
    for n, row, line in jsonl_lines(path, max_line_bytes):
        if not isinstance(row, (dict, ValueError)):
            row = ValueError(f"a row is a JSON object, not {type(row).__name__}")
        yield n, row, b"" if isinstance(row, dict) else line[:256]


def export_licenses(path: str, is_license: Callable[[str], bool], detect: Callable[[str], list[str]],
                    max_line_bytes: int = MAX_JSON_LINE_BYTES) -> dict[str, list[str]]:
    """repo -> licenses found in the root license files that the export holds for it (a pass over the
    file that keeps only those rows' verdicts)."""
    found: dict[str, set[str]] = {}
    for _, row, _ in export_records(path, max_line_bytes=max_line_bytes):
        if isinstance(row, Exception):
            continue
        try:
            r = export_row(row)
        except KeyError:
            continue
        if is_license(r.path) and isinstance(r.content, str):
            found.setdefault(r.repo, set()).update(detect(r.content))
    return {repo: sorted(ids) for repo, ids in found.items()}

