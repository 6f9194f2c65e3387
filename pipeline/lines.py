"""CCNet's line normalisation and 64-bit line hash, used by line-level dedup.

Normalisation follows CCNet's `normalize_for_dedup`: strip, lower-case, every Unicode digit to "0", and
remove Unicode punctuation and non-printing characters. Accents are kept, as CCNet's code does (its paper
says they are stripped; the code does not, and keeping them avoids merging distinct words in languages
where accents carry meaning). The steps after lower-casing are folded into one `str.translate` table,
which is about twice as fast as CCNet's regular expressions. Hash: the first 8 bytes of SHA-1, as CCNet.
"""
from __future__ import annotations

import hashlib
import sys
import unicodedata
from typing import Iterable

# CCNet's UNICODE_PUNCT keys: full-width and CJK punctuation mapped to ASCII there, removed here since
# ASCII punctuation is removed too.
_CCNET_PUNCT = "，。、„”“«»１」「《》´∶：？！（）；–—．～’…━〈〉【】％►"
_ASCII_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def _build_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat == "Nd":
            table[cp] = "0"
        elif cp < 32 or 127 <= cp < 160:
            table[cp] = None
    for ch in _CCNET_PUNCT + _ASCII_PUNCT:
        table[ord(ch)] = None
    return table


_TABLE = _build_table()


def normalize_line(line: str) -> str:
    return line.strip().lower().translate(_TABLE).strip()


def line_hash(normalized: str) -> int:
    return int.from_bytes(hashlib.sha1(normalized.encode("utf-8")).digest()[:8], "little")


def hash_lines(lines: Iterable[str]) -> list[int]:
    """Hash of every line; 0 for a line that is empty after normalisation (never deduplicated)."""
    out = []
    for line in lines:
        norm = normalize_line(line)
        out.append(line_hash(norm) if norm else 0)
    return out
