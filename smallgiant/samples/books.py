"""A small books sample as users download it: Project Gutenberg plain-text files, a Books3-style tarball of
.txt books and a JSONL collection.

Planted, deterministically from the seed:
- Gutenberg boilerplate: the current header and footer (CRLF line ends, a "Produced by" credit), the
  1990s "SMALL PRINT" header with an "End of The Project Gutenberg Etext" footer on a book in ISO-8859-1
  that declares its character set, and a file that is nothing but boilerplate;
- near copies: another edition of the first book that shares 91% of its words (rewrapped, other header,
  a contiguous passage rewritten) and goes, and one of the second book that shares only 80% and stays;
- books in German (Books3-style tarball) and Spanish (JSONL), from the web sample's grammar;
- an exact copy of the first book's text in the JSONL collection;
- bad input: a truncated .txt.gz, a text that is neither UTF-8 nor declares its character set, and a line
  of the JSONL collection that is not JSON.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import random
import tarfile
import textwrap

from smallgiant.samples.crawl import sentence

FIRST = ["Anna", "Tobias", "Renée", "Walter", "Zoë", "Henrik", "Clara", "Jonas", "Élodie", "Samuel", "Ingrid",
         "Felix", "Maren", "Oskar", "Lucía", "Edmund", "Greta", "Nils", "Beatrix", "Amos", "Søren", "Hester", "Cyril",
         "Ottilie",
         "Jasper", "Mireille", "Ambrose", "Tilda", "Lorenz", "Agathe"]
LAST = ["Hollis", "Venn", "Marlow", "Quist", "Arden", "Bellamy", "Crane", "Dufresne", "Ekberg", "Fairley", "Gage",
        "Holm", "Ivers", "Jessop", "Kerrigan", "Lindqvist", "Morrow", "Nash", "Orme", "Pell", "Rook", "Sallow",
        "Thorne", "Underhill", "Vance", "Wick", "Yarrow", "Zeller", "Brandt", "Colbert"]
ADJ = ["old", "narrow", "silent", "crooked", "bright", "heavy", "painted", "hidden", "distant", "broken", "quiet",
       "golden", "muddy", "frozen", "little", "ancient", "borrowed", "careful", "hollow", "crowded", "pale", "salty",
       "wooden", "restless", "faded", "iron", "secret", "gentle", "stubborn", "empty", "tall", "rusty", "green",
       "bitter", "sleepy", "windy", "humble", "proud", "strange", "weary"]
NOUN = ["lantern", "bridge", "harbour", "orchard", "ledger", "carriage", "chapel", "mill", "letter", "garden",
        "staircase", "window", "ferry", "market", "cottage", "river", "meadow", "lighthouse", "tavern", "wagon",
        "schoolhouse", "well", "granary", "forge", "compass", "map", "violin", "clock", "barn", "quay", "fence",
        "kettle", "ribbon", "sail", "cellar", "attic", "stable", "trunk", "gate", "bell", "candle", "basket",
        "chimney", "pier", "road", "hill", "forest", "pond", "tower", "wheel", "blanket", "shutter", "anchor",
        "saddle", "field", "cart", "oven", "loom", "ladder", "coat"]
VERB = ["mended", "painted", "carried", "watched", "found", "sold", "opened", "closed", "measured", "followed",
        "crossed", "guarded", "described", "remembered", "borrowed", "cleaned", "counted", "visited", "repaired",
        "abandoned", "climbed", "admired", "examined", "promised", "forgot", "unlocked", "lit", "buried", "traded",
        "sketched", "weighed", "polished", "rebuilt", "searched", "inherited", "noticed", "packed", "loaded",
        "tied", "shared", "hid", "lost", "praised", "doubted", "rented", "fixed", "marked", "named", "left", "kept"]
ADV = ["slowly", "quietly", "gladly", "at last", "once more", "without a word", "in secret", "by morning", "again",
       "reluctantly", "carefully", "twice", "alone", "happily", "with care", "in haste", "patiently", "boldly",
       "suddenly", "gravely", "nearly", "eagerly", "calmly", "openly", "for years"]
PREP = ["beside", "behind", "beyond", "near", "under", "above", "across", "past", "toward", "around", "along",
        "inside", "outside", "below", "against"]
WHEN = ["When", "After", "Before", "Although", "Because", "While", "Once", "Since"]
SYL = ["bar", "tel", "mor", "wyn", "ash", "lin", "dal", "ross", "kel", "fen", "hal", "brim", "cor", "vel", "stow",
       "pen", "gar", "mer", "thal", "wick"]


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _place(rng: random.Random) -> str:
    return (rng.choice(SYL) + rng.choice(SYL)).title() + rng.choice(["ford", "holm", "by", "mouth", "ton", "dale"])


def _noun_phrase(rng: random.Random) -> str:
    return f"the {rng.choice(ADJ)} {rng.choice(NOUN)}"


def _subject(rng: random.Random) -> str:
    return _name(rng) if rng.random() < 0.5 else _noun_phrase(rng)


def _tail(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return f"{rng.choice(PREP)} {_noun_phrase(rng)}"
    if r < 0.7:
        return f"in {_place(rng)}"
    return rng.choice(ADV)


def book_sentence(rng: random.Random) -> str:
    """A sentence of English prose from a vocabulary large enough that two books share almost no word
    5-grams (the web sample's grammar is too small for that: its books would overlap by 40%)."""
    k = rng.randrange(3)
    if k == 0:
        s = f"{_subject(rng)} {rng.choice(VERB)} {_noun_phrase(rng)} {_tail(rng)}."
    elif k == 1:
        s = f"{_subject(rng)} {rng.choice(ADV)} {rng.choice(VERB)} the {rng.choice(NOUN)} of {_name(rng)}."
    else:
        s = (f"{rng.choice(WHEN)} {_subject(rng)} {rng.choice(VERB)} {_noun_phrase(rng)}, "
             f"{_subject(rng)} {rng.choice(VERB)} {_noun_phrase(rng)} {_tail(rng)}.")
    return s[0].upper() + s[1:]


ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII", "XIV", "XV", "XVI"]
CHAPTER = {"en": "CHAPTER", "de": "KAPITEL", "es": "CAPÍTULO"}
LANGUAGE = {"en": "English", "de": "German", "es": "Spanish"}

# books the tests look for
NEAR_COPY = "books/pg11003"          # shares 91% of books/pg11001: dropped
FAR_COPY = "books/pg11004"           # shares 80% of books/pg11002: kept
EXACT_COPY = "books/shelf-000/shelf-7"


def _sentences(rng: random.Random, lang: str, used: set[str], words: int) -> str:
    """Sentences of at least `words` words in all."""
    out: list[str] = []
    while sum(len(s.split()) for s in out) < words:
        out.append(book_sentence(rng) if lang == "en" else sentence(rng, lang, used))
    return " ".join(out)


def _paragraphs(rng: random.Random, lang: str, used: set[str], words: int) -> list[str]:
    """Paragraphs of 3 to 6 sentences, about `words` words in all: English from `book_sentence`, other
    languages from the web sample's grammar."""
    out, n = [], 0
    while n < words:
        para = " ".join(book_sentence(rng) if lang == "en" else sentence(rng, lang, used)
                        for _ in range(rng.randint(3, 6)))
        out.append(para)
        n += len(para.split())
    return out


def _chapters(paras: list[str], lang: str, per_chapter: int = 12) -> list[str]:
    """Chapter headings between groups of paragraphs: the body as a list of blocks."""
    blocks = []
    for i in range(0, len(paras), per_chapter):
        blocks.append(f"{CHAPTER[lang]} {ROMAN[(i // per_chapter) % len(ROMAN)]}.")
        blocks += paras[i:i + per_chapter]
    return blocks


def _wrap(blocks: list[str], width: int) -> str:
    return "\n\n".join(textwrap.fill(b, width) for b in blocks) + "\n"


def _rewrite(rng: random.Random, lang: str, used: set[str], paras: list[str], share: float) -> list[str]:
    """The paragraphs with one contiguous run of `share` of their words replaced by as many new words;
    paragraph lengths stay, so chapter breaks stay where they were and the copy shares 1 - share of the
    original's word 5-grams (less the 8 that straddle the edges of the run)."""
    lengths = [len(p.split()) for p in paras]
    words = " ".join(paras).split()
    k = round(share * len(words))
    start = len(words) // 3
    words[start:start + k] = _sentences(rng, lang, used, k).split()[:k]
    out, at = [], 0
    for n in lengths:
        out.append(" ".join(words[at:at + n]))
        at += n
    return out


def modern_gutenberg(body: str, number: int, title: str, author: str, lang: str, credit: str) -> str:
    head = (f"The Project Gutenberg EBook of {title}, by {author}\n\n"
            "This eBook is for the use of anyone anywhere at no cost and with\nalmost no restrictions whatsoever.\n\n"
            f"Title: {title}\n\nAuthor: {author}\n\nRelease Date: March 3, 2004 [EBook #{number}]\n\n"
            f"Language: {LANGUAGE[lang]}\n\nCharacter set encoding: UTF-8\n\n"
            f"*** START OF THIS PROJECT GUTENBERG EBOOK {title.upper()} ***\n\n\n\n\nProduced by {credit}\n\n\n\n\n")
    foot = (f"\n\n\nEnd of the Project Gutenberg EBook of {title}, by {author}\n\n"
            f"*** END OF THIS PROJECT GUTENBERG EBOOK {title.upper()} ***\n\n"
            f"***** This file should be named {number}.txt or {number}.zip *****\n\n"
            "Updated editions will replace the previous one--the old editions\nwill be renamed.\n")
    return head + body + foot


def old_gutenberg(body: str, title: str, lang: str) -> str:
    head = (f"**The Project Gutenberg Etext of {title}**\n\nCharacter set encoding: ISO-8859-1\n"
            f"Language: {LANGUAGE[lang]}\n\n"
            "**START**THE SMALL PRINT!**FOR PUBLIC DOMAIN ETEXTS**START**\n"
            "Why is this \"Small Print!\" statement here?  You know: lawyers.\n"
            "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n\n")
    return head + body + f"\n\nEnd of The Project Gutenberg Etext of {title}\n"


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def _tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(members[name]), 1_600_000_000, 0o644
            tar.addfile(info, io.BytesIO(members[name]))
    return buf.getvalue()


def write_sample(directory: str, seed: int = 0, words_per_book: int = 7000, bad: bool = True) -> str:
    """Writes `gutenberg/`, `books3/books3-sample.tar.gz` and `shelf/shelf-000.jsonl.gz` under `directory`;
    returns the --input spec (the directory). About 300 KB of book text is kept at the default size."""
    rng = random.Random(seed)
    used: set[str] = set()
    n = words_per_book
    gut = os.path.join(directory, "gutenberg")

    first = _paragraphs(rng, "en", used, n)
    first_body = _wrap(_chapters(first, "en"), 70)
    text = modern_gutenberg(first_body, 11001, "The Lantern Keeper", "Mary Hollis", "en",
                            "Anne Wilder and the Online Distributed Proofreading Team")
    _write(os.path.join(gut, "pg11001.txt"), text.replace("\n", "\r\n").encode("utf-8"))

    second = _paragraphs(rng, "en", used, n)
    _write(os.path.join(gut, "pg11002.txt"),
           old_gutenberg(_wrap(_chapters(second, "en"), 72), "The Salt Road", "en").encode("latin-1"))

    near = _rewrite(rng, "en", used, first, 0.09)
    _write(os.path.join(gut, "pg11003.txt"), modern_gutenberg(
        _wrap(_chapters(near, "en"), 60), 11003, "The Lantern Keeper (2nd edition)", "Mary Hollis",
        "en", "Tom Reed").encode("utf-8"))
    far = _rewrite(rng, "en", used, second, 0.20)
    _write(os.path.join(gut, "pg11004.txt"), modern_gutenberg(
        _wrap(_chapters(far, "en"), 66), 11004, "The Salt Road (abridged)", "Renée Dufresne", "en",
        "Claire Martin").encode("utf-8"))
    _write(os.path.join(gut, "pg11005.txt"), modern_gutenberg("", 11005, "Index of the Sample", "Various", "en",
                                                              "the Index Team").encode("utf-8"))

    members = {f"books3/{name}.epub.txt": _wrap(_paragraphs(rng, lang, used, n), 10_000).encode("utf-8")
               for name, lang in (("the-river-path", "en"), ("der-alte-seemann", "de"))}
    _write(os.path.join(directory, "books3", "books3-sample.tar.gz"), _tarball(members))

    rows = [{"id": "shelf-1", "title": "Winter Harvest", "author": "J. Brook", "language": "en",
             "text": _wrap(_paragraphs(rng, "en", used, n), 10_000)},
            {"id": "shelf-2", "title": "El Camino del Río", "language": "Spanish",
             "text": _wrap(_paragraphs(rng, "es", used, n // 2), 10_000)},
            {"id": "shelf-7", "title": "The Lantern Keeper", "author": "Mary Hollis", "text": first_body}]
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rows]
    if bad:
        lines.insert(1, '{"id": "shelf-3", "text": "an unfinished line')
    _write(os.path.join(directory, "shelf", "shelf-000.jsonl.gz"), _gzip(("\n".join(lines) + "\n").encode("utf-8")))

    if bad:
        broken = _gzip(modern_gutenberg(_wrap(_paragraphs(rng, "en", used, 800), 70), 11006, "Broken", "Nobody",
                                        "en", "nobody").encode("utf-8"))
        _write(os.path.join(directory, "bad", "pg11006.txt.gz"), broken[: len(broken) // 2])
        _write(os.path.join(directory, "bad", "notes-cp1252.txt"),
               "Caf\xe9 notes, na\xefve \u201cquotes\u201d.\n".encode("cp1252"))
    return directory
