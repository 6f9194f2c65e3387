"""The URLs a Wikipedia article's references cite: the positive class of the quality classifier is
"pages Wikipedia articles cite". The dump itself is read by `pipeline.wikidump` (pages, articles, damage)."""
from __future__ import annotations

import re

import mwparserfromhell
from mwparserfromhell.nodes import ExternalLink, Template

URL_PARAMS = frozenset({
    "url", "chapter-url", "chapterurl", "contribution-url", "article-url", "conference-url", "transcript-url",
    "map-url",
})
ARCHIVE_PARAMS = frozenset({"archive-url", "archiveurl", "archive_url"})
_FALLBACK_URL = re.compile(r"https?://[^\s\]|<>\"{}]+", re.IGNORECASE)
_SCHEME = re.compile(r"https?://\S", re.IGNORECASE)


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
