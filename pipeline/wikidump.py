"""A streaming reader of MediaWiki XML dumps (pages-articles, bz2 as Wikimedia ships it, gzip, or plain).

Memory stays bounded by one page: the decompressed stream is cut at `<page>` ... `</page>` and each page is
parsed on its own with `xml.etree` (inside a dump's text `<` is always escaped, so these tags only ever
mark pages). Parsing page by page instead of running one `iterparse` over the whole file is what lets a
damaged page cost that page only: a stray byte that is not UTF-8, a broken tag or a page that never closes
is reported as a `BadPage` and reading resumes at the next `<page>` (a page over MAX_PAGE_BYTES, a bomb of
zeros among them, is one `BadPage`, its rest skipped in constant memory), where one parser over the whole
stream would stop at the first error and lose the rest of the dump.

The `<siteinfo>` header says which wiki the dump is of (`SiteInfo.language`: "en" for enwiki) and how its
article URLs are built. A dump whose compressed data ends early or does not decompress, or whose XML ends
before `</mediawiki>` (a truncated download), raises `DumpError` after every page read before the damage
has been yielded.
"""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import re
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from typing import BinaryIO, Iterator

from pipeline.inputs import is_gzip

BZ2_MAGIC = b"BZh"
CHUNK = 1 << 20
MAX_PAGE_BYTES = 64 << 20    # a bigger "page" is damage (Wikipedia's largest pages are a few MB)
MAX_HEAD_BYTES = 16 << 20    # the root tag and <siteinfo> come before the first page
PAGE_START, PAGE_END, DUMP_END = b"<page>", b"</page>", b"</mediawiki>"
PREVIEW_BYTES = 256
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_ROOT_TAG = re.compile(rb"<mediawiki\b[^>]*>")
_ROOT_LANG = re.compile(rb"""\bxml:lang\s*=\s*["']([^"']+)["']""")
_SITEINFO = re.compile(rb"<siteinfo>.*?</siteinfo>", re.DOTALL)
_TEMPLATE_NAME = re.compile(r"\{\{\s*([^{}|]+?)\s*(?:\||\}\})")
# "Disambiguation", "Hospital disambiguation", "Disambig", "Dab", "Set index article" and the short aliases
# hndis, geodis, SIA; but not the inline "Disambiguation needed" that ordinary articles carry.
_DISAMBIGUATION_NAME = re.compile(
    r"(?:^|[\s_:-])(?:disambiguation|disambig|dab)$|^(?:template:)?(?:set[\s_]index|(?:hndis|geodis|sia)$)",
    re.IGNORECASE)
# The disambiguation templates of the other Wikipedias of LLaMA's 20 languages, matched as whole names.
LOCAL_DISAMBIGUATION = frozenset({
    "пояснение", "desambiguació", "rozcestník", "flertydig", "begriffsklärung", "desambiguación", "homonymie",
    "razdvojba", "egyért", "disambigua", "dp", "dpintro", "ujednoznacznienie", "desambiguação",
    "dezambiguizare", "неоднозначность", "многозначность", "razločitev", "вишезначна одредница",
    "förgrening", "неоднозначність",
})


class DumpError(Exception):
    """The dump is truncated or corrupt; the message says how many pages were read before the damage."""


@dataclasses.dataclass
class WikiPage:
    title: str
    ns: int
    redirect: bool
    text: str               # the wikitext of the page's last revision in the dump
    id: int = 0
    timestamp: str = ""     # of that revision


@dataclasses.dataclass
class BadPage:
    """A stretch of the dump that should have been one page and is not well-formed XML."""
    offset: int             # in the decompressed dump
    reason: str
    title: str = ""
    preview: bytes = b""


@dataclasses.dataclass(frozen=True)
class SiteInfo:
    """The dump's `<siteinfo>`: which wiki it is of, and its namespace names (number -> local name)."""
    dbname: str = ""
    base: str = ""
    xml_lang: str = ""
    namespaces: tuple[tuple[int, str], ...] = ()

    @property
    def language(self) -> str:
        """The wiki's language code: from the database name (enwiki -> en, zh_min_nanwiki -> zh-min-nan),
        else from the host of the base URL (de.wikipedia.org -> de), else the root's xml:lang; "" if none."""
        if self.dbname.endswith("wiki") and len(self.dbname) > 4:
            return self.dbname[:-4].replace("_", "-").lower()
        host = urllib.parse.urlsplit(self.base).hostname or ""
        if host.endswith(".wikipedia.org") and host.count(".") == 2:
            return host.split(".")[0].lower()
        return self.xml_lang.lower()

    def page_url(self, title: str) -> str:
        """The URL of an article: the base URL's directory (https://en.wikipedia.org/wiki/) + the title."""
        if "://" not in self.base:
            return ""
        prefix = self.base.rsplit("/", 1)[0] + "/"
        return prefix + urllib.parse.quote(title.replace(" ", "_"), safe="/:(),'!*@$;~")


def read_dump(stream: BinaryIO) -> Iterator[SiteInfo | WikiPage | BadPage]:
    """The dump's `SiteInfo` (always first, empty fields if the dump has none), then every page in dump
    order (all namespaces, redirects included), with a `BadPage` for each page that cannot be parsed.
    Raises DumpError, after yielding what came before, if the data is truncated or does not decompress."""
    pages = 0
    items = _split(_decompressed(stream))
    while True:
        # The failure is caught around next() only, so that nothing the caller throws in is mislabelled.
        try:
            item = next(items)
        except StopIteration:
            return
        except (EOFError, OSError, zlib.error, ValueError) as e:
            raise DumpError(f"dump is truncated or corrupt after {pages} pages: {e}") from e
        pages += isinstance(item, WikiPage)
        yield item


def iter_pages(stream: BinaryIO) -> Iterator[WikiPage]:
    """Every page of the export in `stream`; raises DumpError, after yielding the pages before it, at the
    first damage (truncated or corrupt data, a page that is not well-formed XML)."""
    count = 0
    for item in read_dump(stream):
        if isinstance(item, BadPage):
            raise DumpError(f"dump is corrupt after {count} pages: {item.reason}")
        if isinstance(item, WikiPage):
            count += 1
            yield item


def is_article(page: WikiPage) -> bool:
    """A main-namespace page with text that is neither a redirect nor a disambiguation page."""
    return page.ns == 0 and not page.redirect and bool(page.text.strip()) and not is_disambiguation(page.text)


def is_disambiguation(text: str) -> bool:
    """Whether the wikitext carries a disambiguation (or set index) template, in English or in the local
    name of one of the 20 languages."""
    return disambiguation_template(text) is not None


def disambiguation_template(text: str) -> str | None:
    for name in _TEMPLATE_NAME.findall(text):
        if _DISAMBIGUATION_NAME.search(name) or " ".join(name.replace("_", " ").split()).lower() in \
                LOCAL_DISAMBIGUATION:
            return name
    return None


# ------------------------------------------------------------------------------------------- decompression

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

    read1 = read


def _decompressed(stream: BinaryIO):
    """A reader with `read1`: whatever has been decompressed so far. A plain `read(n)` keeps reading until
    it has n bytes, so a truncation would swallow the pages decompressed just before it."""
    head = stream.read(3)
    source = _Prefixed(head, stream)
    if head.startswith(BZ2_MAGIC):
        return bz2.BZ2File(source)   # multistream dumps too: one bz2 stream after another
    if is_gzip(head):
        return gzip.GzipFile(fileobj=source)
    return source


# ------------------------------------------------------------------------------------------- page splitting

def _split(reader) -> Iterator[SiteInfo | WikiPage | BadPage]:
    buf = bytearray()
    base = 0           # offset in the decompressed dump of buf[0]
    head, ended, eof = True, False, False
    skipping = False   # inside the rest of a page already reported as over MAX_PAGE_BYTES
    while not eof:
        data = reader.read1(CHUNK)
        eof = not data
        buf += data
        if head:
            start = buf.find(PAGE_START)
            if start < 0 and not eof:
                if len(buf) > MAX_HEAD_BYTES:
                    raise ValueError(f"no <page> in the first {MAX_HEAD_BYTES} bytes: not a MediaWiki dump")
                continue
            header = bytes(buf[:start] if start >= 0 else buf)
            if not _ROOT_TAG.search(header):
                raise ValueError("no <mediawiki> root element: not a MediaWiki dump")
            yield _site_info(header)
            head = False
        if skipping:
            used, skipping = _past_oversized(buf)
            del buf[:used]
            base += used
            if skipping:
                continue
        items, used, skipping = _cut_pages(buf, base)
        yield from items
        ended = ended or DUMP_END in buf
        del buf[:used]
        base += used
    if PAGE_START in buf:
        raise ValueError(f"the dump ends inside a page starting at byte {base + buf.find(PAGE_START)}")
    if not ended:
        raise ValueError("the dump ends before </mediawiki> (a truncated file)")


def _past_oversized(buf: bytearray) -> tuple[int, bool]:
    """How many bytes of buf still belong to an oversized page being skipped (through its `</page>`, or up
    to the next `<page>`), and whether the page goes on past buf."""
    start, end = buf.find(PAGE_START), buf.find(PAGE_END)
    if end >= 0 and (start < 0 or end < start):
        return end + len(PAGE_END), False
    if start >= 0:
        return start, False
    return max(0, len(buf) - len(PAGE_END)), True


def _cut_pages(buf: bytearray, base: int) -> tuple[list[WikiPage | BadPage], int, bool]:
    """The whole pages in buf (or bad stretches where pages should be), how many bytes of buf they and the
    space between them use up, and whether the last is an oversized page whose rest is still to skip."""
    items, pos = [], 0
    while True:
        start = buf.find(PAGE_START, pos)
        stray_end = buf.find(PAGE_END, pos, start if start >= 0 else len(buf))
        if stray_end >= 0:  # a page whose start tag is damaged
            pos = stray_end + len(PAGE_END)
            items.append(_bad(buf, base, stray_end, pos, "a </page> without its <page>"))
            continue
        if start < 0:  # keep only what could be the beginning of a tag cut by the chunk boundary
            return items, max(pos, len(buf) - len(DUMP_END)), False
        end = buf.find(PAGE_END, start)
        following = buf.find(PAGE_START, start + len(PAGE_START), end if end >= 0 else len(buf))
        if following >= 0:  # the page's end tag is damaged: resume at the next page
            items.append(_bad(buf, base, start, following, "a <page> without its </page>"))
            pos = following
            continue
        if end < 0:  # the rest of the page is still to come
            if len(buf) - start > MAX_PAGE_BYTES:
                items.append(_bad(buf, base, start, len(buf), f"a page over {MAX_PAGE_BYTES} bytes"))
                return items, len(buf) - len(PAGE_END), True
            return items, start, False
        end += len(PAGE_END)
        items.append(_parse_page(bytes(buf[start:end]), base + start))
        pos = end


def _bad(buf: bytearray, base: int, start: int, end: int, reason: str) -> BadPage:
    chunk = bytes(buf[start:min(end, start + 4096)])
    return BadPage(base + start, reason, _title_of(chunk), chunk[:PREVIEW_BYTES])


def _title_of(chunk: bytes) -> str:
    m = re.search(rb"<title>([^<]{0,512})<", chunk)
    return m.group(1).decode("utf-8", "replace") if m else ""


def _parse_page(chunk: bytes, offset: int) -> WikiPage | BadPage:
    try:
        return _page(ET.fromstring(chunk))
    except (ET.ParseError, ValueError) as e:
        return BadPage(offset, f"page cannot be parsed: {type(e).__name__}: {e}", _title_of(chunk),
                       chunk[:PREVIEW_BYTES])


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
    last = {_local(c.tag): c for c in revisions[-1]} if revisions else {}
    return WikiPage(
        title=_text(children.get("title")),
        ns=int(_text(children.get("ns")) or 0),  # a non-integer ns is a damaged page (ValueError)
        redirect="redirect" in children,
        text=_text(last.get("text")),
        id=int(_text(children.get("id")) or 0),
        timestamp=_text(last.get("timestamp")),
    )


def _text(elem: ET.Element | None) -> str:
    return (elem.text or "") if elem is not None else ""


def _site_info(head: bytes) -> SiteInfo:
    """What the bytes before the first page say about the wiki; a damaged header gives empty fields."""
    root = _ROOT_TAG.search(head)
    lang = _ROOT_LANG.search(root.group(0)) if root else None
    xml_lang = lang.group(1).decode("ascii", "replace") if lang else ""
    block = _SITEINFO.search(head)
    if not block:
        return SiteInfo(xml_lang=xml_lang)
    try:
        elem = ET.fromstring(block.group(0))
    except ET.ParseError:
        return SiteInfo(xml_lang=xml_lang)
    fields = {_local(c.tag): c for c in elem}
    namespaces = []
    for ns in (fields["namespaces"] if "namespaces" in fields else []):
        key = ns.get("key", "")
        if key.lstrip("-").isdigit():
            namespaces.append((int(key), ns.text or ""))
    return SiteInfo(dbname=_text(fields.get("dbname")).strip(), base=_text(fields.get("base")).strip(),
                    xml_lang=xml_lang, namespaces=tuple(namespaces))
