"""Which Stack Exchange site dumps a run reads: every site found in the input, the N largest kept.

The input names site dumps as archive.org publishes them, on any Beam filesystem:
- `<site>.7z` (e.g. `math.stackexchange.com.7z`, holding Posts.xml and the other tables), or
  `<site>-Posts.7z` (Stack Overflow's own split archives; its `-Users.7z`, `-Votes.7z`, ... are ignored);
- `<site>/Posts.xml`, an extracted dump;
- directories holding such files (one level of `<site>.7z` files and `<site>/Posts.xml` folders);
- a listing: a `.txt`, `.lst`, `.list` or `.tsv` file with one site file per line, optionally with its
  size in bytes before or after it (`123456789 math.stackexchange.com.7z`); names are relative to the
  listing's directory; `#` starts a comment line.

A site's size is its file's size (the listing's figure if it gives one), and sites are ranked by it,
largest first, ties by name. Meta sites (`meta.*`, `*.meta.*`) are left out unless asked for. A site found
twice keeps its first file.
"""
from __future__ import annotations

import dataclasses
import logging
import posixpath
import re

LISTING_SUFFIXES = (".txt", ".lst", ".tsv", ".list")
_TABLE_ARCHIVE = re.compile(r"^(?P<site>.+)-(?P<table>[A-Za-z]+)\.7z$")
log = logging.getLogger(__name__)


class SiteError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class SiteFile:
    site: str
    path: str
    size: int


def site_of(path: str) -> str | None:
    """The site a dump file belongs to, or None for a file that holds no posts."""
    base = posixpath.basename(path.replace("\\", "/").rstrip("/"))
    if base.lower() == "posts.xml":
        parent = posixpath.basename(posixpath.dirname(path.replace("\\", "/")))
        return parent or None
    m = _TABLE_ARCHIVE.match(base)
    if m:
        return m.group("site") if m.group("table").lower() == "posts" else None
    if base.lower().endswith(".7z"):
        return base[:-3]
    return None


def is_meta(site: str) -> bool:
    return site.startswith("meta.") or ".meta." in site


def _join(base: str, name: str) -> str:
    if "://" in name or name.startswith("/"):
        return name
    from pipeline.inputs import join
    return join(base, name)


def _match(pattern: str) -> list[tuple[str, int]]:
    from apache_beam.io.filesystems import FileSystems
    found = []
    for result in FileSystems.match([pattern]):
        found += [(m.path, m.size_in_bytes) for m in result.metadata_list]
    return sorted(found)


def _size(path: str) -> int:
    found = _match(path)
    if not found:
        raise SiteError(f"site file not found: {path}")
    return found[0][1]


def _is_dir(path: str) -> bool:
    if "://" in path:
        return path.endswith("/")
    import os
    return os.path.isdir(path)


def _parse_listing_line(line: str) -> tuple[str, int | None] | None:
    fields = line.replace("\t", " ").split()
    if not fields or fields[0].startswith("#"):
        return None
    if len(fields) == 1:
        return fields[0], None
    if len(fields) == 2 and fields[0].isdigit() != fields[1].isdigit():
        return (fields[1], int(fields[0])) if fields[0].isdigit() else (fields[0], int(fields[1]))
    raise SiteError(f"a listing line is a file name, optionally with its size in bytes: {line[:100]!r}")


def read_listing(path: str) -> list[SiteFile]:
    from pipeline.inputs import open_stream
    with open_stream(path) as f:
        lines = f.read().decode("utf-8").splitlines()
    if "://" in path:
        base = path.rsplit("/", 1)[0]
    else:
        import os
        base = os.path.dirname(os.path.abspath(path))
    out = []
    for line in lines:
        parsed = _parse_listing_line(line)
        if parsed is None or site_of(parsed[0]) is None:
            continue
        full = _join(base, parsed[0])
        out.append(SiteFile(site_of(parsed[0]), full, parsed[1] if parsed[1] is not None else _size(full)))
    return out


def find_sites(spec: str) -> list[SiteFile]:
    """Every site file the comma-separated spec names, in the order found."""
    found: list[SiteFile] = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if item.lower().endswith(LISTING_SUFFIXES):
            found += read_listing(item)
        elif any(c in item for c in "*?["):
            found += [SiteFile(s, p, n) for p, n in _match(item) if (s := site_of(p))]
        elif _is_dir(item):
            base = item.rstrip("/")
            entries = _match(base + "/*.7z") + _match(base + "/*/Posts.xml") + _match(base + "/*/posts.xml")
            found += [SiteFile(s, p, n) for p, n in sorted(set(entries)) if (s := site_of(p))]
        else:
            site = site_of(item)
            if site is None:
                raise SiteError(f"not a site dump (<site>.7z, <site>-Posts.7z or <site>/Posts.xml): {item}")
            found.append(SiteFile(site, item, _size(item)))
    if not found:
        raise SiteError(f"no Stack Exchange site dump in {spec!r}")
    return found


def largest_sites(found: list[SiteFile], n: int, include_meta: bool = False) -> tuple[list[SiteFile], list[str]]:
    """(the n largest sites, largest first; the names of the sites left out)."""
    by_site: dict[str, SiteFile] = {}
    for f in found:
        if f.site in by_site:
            log.warning("site %s given twice: reading %s, not %s", f.site, by_site[f.site].path, f.path)
            continue
        by_site[f.site] = f
    sites = [f for f in by_site.values() if include_meta or not is_meta(f.site)]
    ranked = sorted(sites, key=lambda f: (-f.size, f.site))
    left_out = [f.site for f in ranked[n:]] + sorted(s for s in by_site if not include_meta and is_meta(s))
    return ranked[:n], left_out
