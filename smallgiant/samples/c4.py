"""A sample of C4 in its two forms: two shards as C4 was released (`c4-train.0000N-of-00002.json.gz`, one
JSON object a line with text, url and timestamp) and a CommonCrawl WET file of raw pages.

Clean pages are paragraphs of generated English sentences, one paragraph a line. Planted, each at a URL
that names it (https://planted.example/<case>): a "lorem ipsum" line; a curly brace in a sentence; a
brace only in lines C4 drops anyway (no terminal punctuation; a javascript notice), which must not cost the
page; four sentences only; lines without terminal punctuation, with fewer than three words, ending in an
ellipsis, holding a word over 1000 characters, javascript notices, cookie and privacy-policy lines and
citation markers; pages in German, French and Spanish; an exact copy and a near copy (a few words edited)
of earlier pages in the second shard. The raw pages carry a site's menus, cookie banner and footer.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import random

from pipeline.runtime.guard import write_atomically
from pipeline.warc import gzip_member, warc_record_bytes
from smallgiant.samples.crawl import paragraph, record_id, sentence

SHARDS = ("c4-train.00000-of-00002.json.gz", "c4-train.00001-of-00002.json.gz")
WET = "CC-MAIN-20190418101243-20190418123243-00000.warc.wet.gz"
PLANTED = "https://planted.example/"
BOILERPLATE_TOP = ["Home | News | Sport | Contact", "Menu", "Please enable JavaScript to see the comments.",
                   "This website uses cookies to improve your experience."]
BOILERPLATE_END = ["Read our privacy policy and terms of use.", "Share this:", "Posted in Stories",
                   "Copyright 2019 Example Media. All rights reserved."]


def write_sample(directory: str, docs: int = 240, raw_pages: int = 60, seed: int = 0) -> str:
    """Write the two shards (`docs` clean pages between them, plus the planted cases) and the WET file of
    `raw_pages` raw pages into `directory`; return the --input glob."""
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(seed)
    used: set[str] = set()
    first = [_page(rng, used, f"https://site{i % 7}.example.com/article/{i}") for i in range(docs // 2)]
    second = [_page(rng, used, f"https://site{i % 7}.example.com/story/{i}") for i in range(docs - docs // 2)]
    planted_first, planted_second = _planted(rng, used, first)
    _write_shard(os.path.join(directory, SHARDS[0]), _interleave(rng, first, planted_first))
    _write_shard(os.path.join(directory, SHARDS[1]), _interleave(rng, second, planted_second))
    write_atomically(os.path.join(directory, WET), _wet(rng, used, raw_pages))
    return os.path.join(directory, "*.gz")


def _text(rng: random.Random, used: set[str], paragraphs: tuple[int, int] = (3, 5), lang: str = "en") -> str:
    return "\n".join(paragraph(rng, lang, used) for _ in range(rng.randint(*paragraphs)))


def _page(rng: random.Random, used: set[str], url: str, text: str | None = None) -> dict:
    day = rng.randrange(1, 29)
    return {"text": text if text is not None else _text(rng, used), "timestamp": f"2019-04-{day:02d}T"
            f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z", "url": url}


def _planted(rng: random.Random, used: set[str], originals: list[dict]) -> tuple[list[dict], list[dict]]:
    s = lambda: sentence(rng, "en", used)  # noqa: E731
    long_word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(1200))
    cases = {
        "lorem-ipsum": [_text(rng, used), "Lorem ipsum dolor sit amet, consectetur adipiscing elit."],
        "curly-brace": [_text(rng, used), "Add the rule body { color: red; } to the stylesheet of the page."],
        "brace-in-dropped-lines": [_text(rng, used), "if (window.ready) {", "Enable JavaScript {now} to see it."],
        "four-sentences": [" ".join(s() for _ in range(4))],
        "noisy-lines": [
            "Stories from the harbour", _text(rng, used, (2, 2)), "Posted by admin", "Tags: boats, bridges",
            f"{s()[:-1]} [1] and more.[2]", "Early years[edit]", f"{s()} It was quiet[citation needed].",
            "The story goes on...", f"Checksum {long_word} of the file.", _text(rng, used, (1, 1)),
            "Please enable JavaScript in your browser to view this page.",
            "By using this site you agree to our Privacy Policy.", "We use cookies on this site. Accept them.",
            "Two words.", "Last update 2019"],
        "german": [_text(rng, used, lang="de")],
        "french": [_text(rng, used, lang="fr")],
        "spanish": [_text(rng, used, lang="es")],
    }
    first = [_page(rng, used, PLANTED + name, "\n".join(lines)) for name, lines in cases.items()]
    exact, near = rng.sample(originals, 2)
    second = [_page(rng, used, PLANTED + "exact-copy", exact["text"]),
              _page(rng, used, PLANTED + "near-copy", _edit(rng, near["text"]))]
    return first, second


def _edit(rng: random.Random, text: str) -> str:
    """The text with about one word in 40 replaced."""
    words = text.split(" ")
    for _ in range(max(1, len(words) // 40)):
        i = rng.randrange(len(words))
        if "\n" not in words[i]:
            words[i] = rng.choice(["really", "quite", "indeed", "also"])
    return " ".join(words)


def _interleave(rng: random.Random, pages: list[dict], planted: list[dict]) -> list[dict]:
    out = list(pages)
    for page in planted:
        out.insert(rng.randrange(len(out) + 1), page)
    return out


def _write_shard(path: str, pages: list[dict]) -> None:
    data = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pages).encode("utf-8")
    write_atomically(path, gzip.compress(data, mtime=0))


def _wet(rng: random.Random, used: set[str], n: int) -> bytes:
    date = "2019-04-18T11:02:13Z"
    info = b"software: Nutch 1.6 (CC)\r\nisPartOf: CC-MAIN-2019-18\r\n"
    out = [gzip_member(warc_record_bytes([("WARC-Type", "warcinfo"), ("WARC-Date", date),
                                          ("WARC-Record-ID", record_id(rng)),
                                          ("Content-Type", "application/warc-fields")], info))]
    for i in range(n):
        title = sentence(rng, "en", used).rstrip(".")
        lines = [title, *BOILERPLATE_TOP, _text(rng, used, (2, 4)), *BOILERPLATE_END]
        block = ("\n".join(lines) + "\n").encode("utf-8")
        headers = [("WARC-Type", "conversion"), ("WARC-Target-URI", f"https://blog{i % 5}.example.net/post/{i}"),
                   ("WARC-Date", date), ("WARC-Record-ID", record_id(rng)), ("WARC-Refers-To", record_id(rng)),
                   ("WARC-Block-Digest", "sha1:" + hashlib.sha1(block).hexdigest()),
                   ("Content-Type", "text/plain")]
        out.append(gzip_member(warc_record_bytes(headers, block)))
    return b"".join(out)

