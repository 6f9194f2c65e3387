"""Project Gutenberg's plain-text books: their character set, their header and footer boilerplate, and what
the header says about the book (title, author, language, ebook number).

Header: everything up to and including the last header-end marker found in the first half of the book:
`*** START OF THE PROJECT GUTENBERG EBOOK ... ***` (also THIS, ETEXT, E-BOOK, any run of stars or none),
or, in the 1990s files, `*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*...*END*`; then a production
credit paragraph right after it ("Produced by ...", "E-text prepared by ...", ...).
Footer: everything from the first footer marker after the header: `*** END OF THE PROJECT GUTENBERG
EBOOK ... ***`, `End of the Project Gutenberg EBook of ...`, `End of Project Gutenberg's ...`, or `End of
this Etext of ...` (the older variants, with or without stars). A text with none of these markers (another
collection's book) is left as it is.
"""
from __future__ import annotations

import codecs
import re

_HEADER_END = re.compile(
    r"\W*START\W+OF\W+(?:THE\W+|THIS\W+)?PROJECT\W+GUTENBERG\W+E\W?(?:BOOK|TEXT)"
    r"|\W*END\W*THE\W+SMALL\W+PRINT\b", re.IGNORECASE)
_FOOTER_START = re.compile(
    r"\W*END\W+OF\W+(?:THE\W+|THIS\W+)?PROJECT\W+GUTENBERG(?:\W+E\W?(?:BOOK|TEXT)|'S\b|\W*$)"
    r"|\W*END\W+OF\W+(?:THE\W+|THIS\W+)E\W?(?:BOOK|TEXT)\b", re.IGNORECASE)
_CREDIT = re.compile(r"(?:produced\s+by|e-?text\s+prepared\s+by|this\s+e-?(?:book|text)\s+was\s+(?:produced|prepared)"
                     r"|prepared\s+by|transcribed\s+(?:from|by))\b", re.IGNORECASE)
_FIELDS = {name: re.compile(rf"^\s*{name}:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
           for name in ("Title", "Author", "Language")}
_EBOOK_NO = re.compile(r"\[\s*E-?(?:Book|text)\s*#\s*(\d+)\s*\]|\bE-?Book\s*#\s*(\d+)|^\s*EBook-No\.\s*:?\s*(\d+)",
                       re.IGNORECASE | re.MULTILINE)
_CHARSET = re.compile(rb"Character set encoding:\s*([A-Za-z0-9_. -]+?)\s*(?:\r?\n|$)", re.IGNORECASE)
_CODEC_ALIASES = {"iso-latin-1": "latin-1", "iso-latin1": "latin-1", "cp-1252": "cp1252", "windows-1252": "cp1252"}
LANGUAGE_CODES = {
    "english": "en", "french": "fr", "german": "de", "spanish": "es", "italian": "it", "dutch": "nl",
    "portuguese": "pt", "finnish": "fi", "swedish": "sv", "danish": "da", "norwegian": "no", "latin": "la",
    "polish": "pl", "russian": "ru", "hungarian": "hu", "czech": "cs", "catalan": "ca", "greek": "el",
    "esperanto": "eo", "chinese": "zh", "japanese": "ja", "tagalog": "tl", "welsh": "cy", "romanian": "ro",
    "bulgarian": "bg", "croatian": "hr", "serbian": "sr", "slovenian": "sl", "ukrainian": "uk", "icelandic": "is",
}


def decode_book(data: bytes) -> tuple[str | None, str]:
    """(text, "") or (None, why): UTF-8 (a BOM is dropped), else the character set the Gutenberg header
    declares. Text with NUL bytes is binary data, not a book."""
    nul = data.find(b"\0")
    if nul >= 0:
        return None, f"binary data, not text (NUL byte at offset {nul})"
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError as exc:
        utf8_error = f"{exc.reason} at byte {exc.start}"
    declared = _CHARSET.search(data[:65536])
    if not declared:
        return None, f"undecodable text: not UTF-8 ({utf8_error}) and no declared character set"
    name = declared.group(1).decode("ascii").strip()
    key = re.sub(r"[\s_]+", "-", name.lower())
    try:
        return data.decode(codecs.lookup(_CODEC_ALIASES.get(key, key)).name), ""
    except (LookupError, UnicodeDecodeError) as exc:
        return None, f"undecodable text: not UTF-8 and not its declared character set {name!r} ({exc})"


def _credit_end(lines: list[str], start: int) -> int:
    """Where the text begins after the header: past a production credit paragraph if one comes first."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines) and _CREDIT.match(lines[i].strip()):
        while i < len(lines) and lines[i].strip():
            i += 1
    return i


def header_metadata(header: str) -> dict[str, str]:
    """Title, author, language (an ISO 639-1 code when known) and ebook number found in a header."""
    meta: dict[str, str] = {}
    for name, pattern in _FIELDS.items():
        m = pattern.search(header)
        if m:
            meta[name.lower()] = m.group(1)
    lang = meta.pop("language", "")
    if lang:
        code = LANGUAGE_CODES.get(lang.split(",")[0].split(" and ")[0].strip().lower())
        meta["language"] = code or lang.strip().lower()
    number = _EBOOK_NO.search(header)
    if number:
        meta["gutenberg_id"] = next(g for g in number.groups() if g)
    return meta


def strip_boilerplate(text: str) -> tuple[str, dict[str, str]]:
    """(the book without the Gutenberg header and footer, what the header says); the text unchanged and no
    metadata when it carries no Gutenberg markers."""
    lines = text.split("\n")
    half = max(1, len(lines) // 2)
    starts = [i for i, ln in enumerate(lines[:half]) if _HEADER_END.match(ln)]
    body_from = starts[-1] + 1 if starts else 0
    end = next((i for i in range(body_from, len(lines)) if _FOOTER_START.match(lines[i])), len(lines))
    if not starts and end == len(lines):
        return text, {}
    meta = header_metadata("\n".join(lines[:body_from])) if starts else {}
    if starts:
        body_from = _credit_end(lines, body_from)
    return "\n".join(lines[body_from:end]).strip("\n") + "\n", meta
