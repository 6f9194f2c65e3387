"""The Wikipedia source: pages-articles XML dumps -> one document of clean prose per article."""
from __future__ import annotations

import argparse
import os
from typing import Iterator

from pipeline.schema import DeadLetter, Document, Rejected
from pipeline.sources.base import Source, Step

# LLaMA-1's 20 Wikipedia languages (June-August 2022 dumps).
LANGUAGES = ("bg", "ca", "cs", "da", "de", "en", "es", "fr", "hr", "hu", "it", "nl", "pl", "pt", "ro", "ru",
             "sl", "sr", "sv", "uk")


class WikipediaSource(Source):
    """Wikipedia pages-articles XML dumps (bz2, gzip or plain) -> clean article prose.

    Input: `<lang>wiki-<date>-pages-articles*.xml[.bz2]` dumps as Wikimedia publishes them (multistream
    and split files too), streamed page by page. The language of a dump is the one its <siteinfo> names
    (database name enwiki -> en, else the base URL's host); a dump in a language not in --languages
    (default: LLaMA-1's 20, bg ca cs da de en es fr hr hu it nl pl pt ro ru sl sr sv uk) is skipped whole
    and reported as one dead letter.

    Rules, in order:
      pages outside the main namespace (talk, user, template, category, file, ... pages) are skipped
      (counted as skipped records);
      redirect: redirect pages are rejected (the dump's <redirect> element, or text starting #REDIRECT);
      disambiguation: pages carrying a disambiguation or set-index template (English names, and the local
      template of each of the 20 languages) are rejected;
      clean: wikitext -> prose with mwparserfromhell: links become their text; templates (nested to any
      depth), tables, references, comments, categories, files/images, interlanguage links and formatting
      markup go; section titles stay as lines; sections left empty lose their title. An article with no
      prose left is rejected.

    A damaged page (XML that is not well-formed, bytes that are not UTF-8) is one dead letter and reading
    goes on at the next page; a truncated or corrupt archive keeps every page before the damage and adds
    one dead letter. Documents: id wikipedia/<lang>/<page id>, the article URL, metadata language, title,
    page_id, revision_timestamp and wiki (the dump's database name)."""

    name = "wikipedia"
    stages = ("redirect", "disambiguation", "clean")

    def __init__(self, languages: tuple[str, ...] | None = LANGUAGES):
        """`languages`: the dump languages to read; None reads every dump."""
        self.languages = tuple(languages) if languages is not None else None

    def files(self, spec: str, max_files: int | None = None) -> list[str]:
        """Files and globs as given; a directory stands for the pages-articles dumps under it (a dump
        download holds other files too: multistream indexes, abstracts, checksums)."""
        from pipeline.inputs import expand_files
        return expand_files(spec, _is_articles_dump, max_files, what="pages-articles dump")

    def read(self, path: str) -> Iterator[Document | Rejected | DeadLetter]:
        from pipeline.inputs import open_stream
        from pipeline.wikidump import BadPage, DumpError, SiteInfo, read_dump
        site = SiteInfo()
        with open_stream(path) as stream:
            try:
                for item in read_dump(stream):
                    if isinstance(item, SiteInfo):
                        site = item
                        refusal = self._refusal(site)
                        if refusal:
                            yield DeadLetter(path, -1, refusal)
                            return
                    elif isinstance(item, BadPage):
                        yield DeadLetter(path, item.offset, item.reason, item.title, item.preview)
                    else:
                        result = self._page(item, site)
                        if result is not None:
                            yield result
            except DumpError as exc:
                yield DeadLetter(path, -1, str(exc))

    def _refusal(self, site) -> str | None:
        lang = site.language
        if not lang:
            return "the dump does not say its language (no <siteinfo> database name, base URL or xml:lang)"
        if self.languages is not None and lang not in self.languages:
            return (f"dump of {site.dbname or site.base or lang}: language {lang!r} is not one of --languages "
                    f"({','.join(self.languages)}); file skipped")
        return None

    def _page(self, page, site) -> Document | Rejected | None:
        from pipeline.runtime.counters import inc
        from pipeline.wikidump import disambiguation_template
        if page.ns != 0:
            inc("read.skipped_records")
            return None
        lang = site.language
        meta = {"language": lang, "title": page.title, "page_id": page.id,
                "revision_timestamp": page.timestamp, "wiki": site.dbname}
        doc = Document(id=f"wikipedia/{lang}/{page.id or page.title}", url=site.page_url(page.title),
                       source=self.name, text=page.text, metadata=meta)
        if page.redirect or page.text.lstrip()[:9].lower() == "#redirect":
            return Rejected(doc, "redirect", "redirect page")
        template = disambiguation_template(page.text)
        if template is not None:
            return Rejected(doc, "disambiguation", f"disambiguation page ({{{{{template}}}}})")
        return doc

    def steps(self) -> list[Step]:
        return [Step("clean", _clean)]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--languages", default=",".join(LANGUAGES),
                            help="comma-separated dump languages to read ('all' reads every dump; "
                                 "default: LLaMA-1's 20)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "WikipediaSource":
        return cls(parse_languages(args.languages))


def _is_articles_dump(path: str) -> bool:
    name = os.path.basename(path)
    return "pages-articles" in name and "index" not in name and not name.endswith((".md5", ".sha1", ".txt"))


def parse_languages(spec: str) -> tuple[str, ...] | None:
    if spec.strip().lower() == "all":
        return None
    langs = tuple(dict.fromkeys(s.strip().lower() for s in spec.split(",") if s.strip()))
    if not langs:
        raise ValueError("--languages names no language")
    return langs


def _clean(doc: Document) -> Document | str:
    from pipeline.sources.wikipedia_text import wikitext_to_text
    try:
        text = wikitext_to_text(doc.text)
    except Exception as exc:  # the parser is not meant to raise, but one article must not fail a dump
        return f"wikitext parser failed: {type(exc).__name__}: {exc}"
    if not text:
        return "no prose left after removing markup"
    return Document(doc.id, doc.url, doc.source, text, doc.metadata)
