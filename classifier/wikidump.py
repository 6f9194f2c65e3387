"""Reading a Wikipedia dump: the articles, and the URLs their references cite.

The positive class of the quality classifier is "pages Wikipedia articles cite". This module streams a
MediaWiki XML export (pages-articles, bz2 as Wikimedia ships it, or gzip, or plain), yields its pages one
at a time with memory bounded by one page, tells articles from redirects, disambiguation pages and other
namespaces, and pulls the cited URLs out of an article's wikitext.

A dump that ends early (a truncated download) or is not well-formed XML raises `DumpError`, but only after
every page read before the damage has been yielded, so a caller can keep what it got and report the rest.
"""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import re
import xml.etree.ElementTree as ET
import zlib
from typing import BinaryIO, Iterator

import mwparserfromhell
from mwparserfromhell.nodes import ExternalLink, Template

BZ2_MAGIC = b"BZh"
GZIP_MAGIC = b"\x1f\x8b"
URL_PARAMS = frozenset({
    "url", "chapter-url", "chapterurl", "contribution-url", "article-url", "conference-url", "transcript-url",
    "map-url",
})
ARCHIVE_PARAMS = frozenset({"archive-url", "archiveurl", "archive_url"})
_TEMPLATE_NAME = re.compile(r"\{\{\s*([^{}|]+?)\s*(?:\||\}\})")
# "Disambiguation", "Hospital disambiguation", "Disambig", "Dab", "Set index article" and the short aliases
# hndis, geodis, SIA; but not the inline "Disambiguation needed" that ordinary articles carry.
_DISAMBIGUATION_NAME = re.compile(
    r"(?:^|[\s_:-])(?:disambiguation|disambig|dab)$|^(?:template:)?(?:set[\s_]index|(?:hndis|geodis|sia)$)",
    re.IGNORECASE)
_FALLBACK_URL = re.compile(r"https?://[^\s\]|<>\"{}]+", re.IGNORECASE)
_SCHEME = re.compile(r"https?://\S", re.IGNORECASE)


class DumpError(Exception):
    """The dump is truncated or corrupt; the message says how many pages were read before the damage."""


@dataclasses.dataclass
class WikiPage:
    title: str
    ns: int
    redirect: bool
    text: str


class _Prefixed:
    """A reader that gives back the magic bytes already read from `stream` before the rest of it."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self._head, self._stream = head, stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        if size is None or size < 0:
            data, self._head = self._head + self._stream.read(), b""
        else:
            data, self._head = self._head[:size], self._head[size:]
        return data


class _ShortReads:
    """Hands the parser whatever has been decompressed so far (`read1`). A plain `read(n)` keeps reading
    until it has n bytes, so a truncation would swallow the pages decompressed just before it."""

    def __init__(self, f):
        self.read = f.read1


def _decompressed(stream: BinaryIO):
    head = stream.read(3)
    source = _Prefixed(head, stream)
    if head.startswith(BZ2_MAGIC):
        return _ShortReads(bz2.BZ2File(source))
    if head.startswith(GZIP_MAGIC):
        return _ShortReads(gzip.GzipFile(fileobj=source))
    return source


def iter_pages(stream: BinaryIO) -> Iterator[WikiPage]:
    """Every page of the export in `stream` (all namespaces, redirects included), in dump order.

    Raises DumpError, after yielding the pages before the damage, if the dump is truncated or corrupt
    (bz2/gzip data that ends early or does not decompress, XML that is not well-formed, a non-integer
    `<ns>`)."""
    pages = _parse(stream)
    count = 0
    while True:
        # The failure is caught around next() only, so that nothing the caller throws in is mislabelled.
        try:
            page = next(pages)
        except StopIteration:
            return
        except (EOFError, OSError, zlib.error, ET.ParseError, ValueError) as e:
            raise DumpError(f"dump is truncated or corrupt after {count} pages: {e}") from e
        count += 1
        yield page


def _parse(stream: BinaryIO) -> Iterator[WikiPage]:
    root = None
    # "start" only to get hold of the root, which is cleared after each page so memory stays bounded.
    for event, elem in ET.iterparse(_decompressed(stream), events=("start", "end")):
        if root is None:
            root = elem
        if event == "end" and _local(elem.tag) == "page":
            page = _page(elem)
            root.clear()
            yield page


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _page(elem: ET.Element) -> WikiPage:
    children = {}
    revisions = []
    for child in elem:
        name = _local(child.tag)
        children.setdefault(name, child)
        if name == "revision":
            revisions.append(child)
    title = children.get("title")
    ns = children.get("ns")
    text = None
    if revisions:
        text = next((c for c in revisions[-1] if _local(c.tag) == "text"), None)
    return WikiPage(
        title=(title.text or "") if title is not None else "",
        ns=int(ns.text or 0) if ns is not None else 0,  # a non-integer ns is a corrupt dump (ValueError)
        redirect="redirect" in children,
        text=(text.text or "") if text is not None else "",
    )


def is_article(page: WikiPage) -> bool:
    """A main-namespace page with text that is neither a redirect nor a disambiguation page."""
    return page.ns == 0 and not page.redirect and bool(page.text.strip()) and not _is_disambiguation(page.text)


def _is_disambiguation(text: str) -> bool:
    return any(_DISAMBIGUATION_NAME.search(name) for name in _TEMPLATE_NAME.findall(text))


def reference_urls(wikitext: str) -> list[str]:
    """The http(s) URLs the wikitext cites, in order of appearance, without duplicates: the `url`-like
    parameters of templates (not archive URLs) and every external link, bracketed or bare."""
    try:
        candidates = _parsed_urls(wikitext)
    except Exception:  # mwparserfromhell is not meant to raise, but a bad page must not stop a dump
        candidates = _FALLBACK_URL.findall(wikitext)
    urls = []
    for candidate in candidates:
        url = _clean(candidate)
        if url and url not in urls:
            urls.append(url)
    return urls


def _parsed_urls(wikitext: str) -> list[str]:
    code = mwparserfromhell.parse(wikitext)
    archived = {id(link)
                for template in code.filter_templates(recursive=True)
                for param in template.params if _param_name(param) in ARCHIVE_PARAMS
                for link in param.value.filter_external_links(recursive=True)}
    found = []
    # Templates and links together, so that the result is in document order.
    for node in code.ifilter(recursive=True, forcetype=(Template, ExternalLink)):
        if isinstance(node, Template):
            found += [param.value.strip_code() for param in node.params if _param_name(param) in URL_PARAMS]
        elif id(node) not in archived:
            found.append(node.url.strip_code())
    return found


def _param_name(param) -> str:
    return str(param.name).strip().lower()


def _clean(candidate: str) -> str | None:
    """The URL in a candidate string (its first word, trailing punctuation stripped), or None if the
    candidate is not an http(s) or protocol-relative URL."""
    words = candidate.split()
    if not words:
        return None
    url = words[0]
    while url and (url[-1] in ".,;:" or (url[-1] == ")" and "(" not in url)):
        url = url[:-1]
    if url.startswith("//"):
        url = "https:" + url
    return url if _SCHEME.match(url) else None
