"""The Stack Exchange source: site dumps -> one document per question, its answers best first."""
from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Iterator

from pipeline.argtypes import non_negative_int, positive_int
from pipeline.schema import DeadLetter, Document, Rejected
from pipeline.sources.base import Source, Step

LOCALIZED_STACK_OVERFLOW = {"ru", "es", "pt", "ja"}
log = logging.getLogger(__name__)


class StackExchangeSource(Source):
    """Stack Exchange: the N largest sites, one document per question with its answers, best first.

    Input: site dumps as archive.org publishes them (`<site>.7z`, Stack Overflow's `<site>-Posts.7z`, or
    extracted `<site>/Posts.xml`), directories of them, or a listing (.txt/.lst/.list/.tsv: one file per
    line, optionally with its size in bytes). The --top-sites largest sites by file size are read
    (default 28, the recipe's number); meta sites are left out unless --include-meta. stats.json lists
    the sites read and left out.

    Stages, in order:
      post_type     (read) keeps questions (PostTypeId 1) and answers (PostTypeId 2); tag wikis,
                    nominations and the other post types are rejected.
      html          turns each post's HTML into text (resiliparse): paragraphs as lines, code blocks
                    verbatim with their indentation, lists as bullets or numbers, links as their text.
      join_answers  groups every answer with its question by (site, question id) in a shuffle, so no
                    site is ever held in memory; one document per question: "Q: <title>", the
                    question, then "A: <answer>" for each answer sorted by score as an integer, highest
                    first ("10" before "9"), ties by post id. Answers leave the document count here
                    merged into their question (no reject row); a post id seen twice keeps its first
                    copy.
      answered      rejects questions with fewer than --min-answers answers (default 1) and answers
                    whose question is not in the dump.
    Language is "en", except the localized Stack Overflows (ru., es., pt., ja.stackoverflow.com).

    Damage: an empty file, a .7z that is not one, a 7z that cannot be opened or whose Posts.xml stops
    decompressing is one dead letter (the posts before the break stay); a malformed row or a line over
    16 MiB is one dead letter and reading goes on (see `pipeline.sources.stackexchange_posts`).
    """
    name = "stackexchange"
    stages = ("post_type", "html", "join_answers", "answered")

    def __init__(self, top_sites: int = 28, min_answers: int = 1, include_meta: bool = False):
        if top_sites < 1:
            raise ValueError("--top-sites must be >= 1")
        self.top_sites, self.min_answers, self.include_meta = top_sites, min_answers, include_meta
        self.sites_read: list[str] = []
        self.sites_left_out: list[str] = []

    def files(self, spec: str, max_files: int | None = None) -> list[str]:
        from pipeline.sources.stackexchange_sites import find_sites, largest_sites
        chosen, left_out = largest_sites(find_sites(spec), self.top_sites, self.include_meta)
        chosen = chosen[:max_files] if max_files is not None else chosen
        self.sites_read, self.sites_left_out = [f.site for f in chosen], left_out
        log.info("stackexchange: reading %d sites, leaving out %d", len(chosen), len(left_out))
        return [f.path for f in chosen]

    def read(self, path: str) -> Iterator[Document | Rejected | DeadLetter]:
        from pipeline.inputs import open_stream
        from pipeline.sources.stackexchange_posts import Post, open_posts, read_posts
        from pipeline.sources.stackexchange_sites import site_of
        import py7zr

        from pipeline.sources.streams import decompression_errors
        site = site_of(path) or path
        offset = 0
        try:
            with open_stream(path) as raw, open_posts(raw, path) as posts:
                for post in read_posts(posts, path):
                    if not isinstance(post, Post):
                        yield post
                        continue
                    offset = post.offset
                    yield self._post_item(site, post)
        except decompression_errors() + (py7zr.exceptions.ArchiveError,) as exc:
            where = "cannot read file" if offset == 0 else f"the dump breaks off after the row at byte {offset:,}"
            yield DeadLetter(path, offset if offset else -1, f"{where}: {type(exc).__name__}: {exc}")

    @staticmethod
    def _post_item(site: str, post) -> Document | Rejected:
        from pipeline.sources.stackexchange_posts import POST_TYPES
        doc = post_document(site, post)
        if post.type not in (1, 2):
            return Rejected(doc, "post_type", f"PostTypeId {post.type} ({POST_TYPES.get(post.type, 'unknown')})")
        return doc

    def steps(self) -> list[Step]:
        from pipeline.sources.stackexchange_text import html_to_text
        return [Step("html", lambda d: dataclasses.replace(d, text=html_to_text(d.text)))]

    def dedup_steps(self) -> list:
        from pipeline.sources.stackexchange_join import JoinAnswers
        return [JoinAnswers(self.min_answers)]

    def config(self) -> dict:
        return {"top_sites": self.top_sites, "min_answers": self.min_answers, "include_meta": self.include_meta,
                "sites_read": self.sites_read, "sites_left_out": self.sites_left_out}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--top-sites", type=positive_int, default=28, help="read the N largest sites (default 28)")
        parser.add_argument("--min-answers", type=non_negative_int, default=1,
                            help="keep questions with at least this many answers (default 1; 0 keeps all)")
        parser.add_argument("--include-meta", action="store_true", help="count meta sites among the largest")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "StackExchangeSource":
        return cls(args.top_sites, args.min_answers, args.include_meta)


def site_language(site: str) -> str:
    first, _, rest = site.partition(".")
    return first if rest == "stackoverflow.com" and first in LOCALIZED_STACK_OVERFLOW else "en"


def post_document(site: str, post) -> Document:
    """One post as it enters the job: its HTML body as text, what the join needs in metadata."""
    question = post.type == 1
    meta = {"site": site, "post_id": post.id, "post_type": "question" if question else "answer",
            "score": post.score, "language": site_language(site)}
    if question:
        meta.update(title=post.title, tags=list(post.tags), created=post.created, license=post.license)
        if post.accepted is not None:
            meta["accepted_answer_id"] = post.accepted
    elif post.parent is not None:
        meta["question_id"] = post.parent
    url = f"https://{site}/{'q' if question else 'a'}/{post.id}" if "." in site else ""
    return Document(f"stackexchange/{site}/{post.id}", url, "stackexchange", post.body, meta)
