"""C4's page-cleaning heuristics (Raffel et al. 2020, section 2.2), as pure functions on text.

A line is a *candidate* when, after stripping it and deleting Wikipedia citation markers ("[1]", "[edit]",
"[citation needed]"), it has no word over `MAX_WORD_CHARS` characters, ends in terminal punctuation
(`.`, `?`, `!` or a closing `"`, but not an ellipsis `...`) and has at least `MIN_WORDS` words. Then, in
C4's order:
- a candidate line containing "lorem ipsum" (any case) rejects the page;
- a candidate line containing "javascript" (any case) is dropped;
- any other candidate line containing a curly brace `{` rejects the page (it is probably code);
- a candidate line containing a policy phrase (`POLICY_PHRASES`) is dropped;
- the rest are the page's lines, and a page with fewer than `MIN_SENTENCES` sentences in them is rejected.

Sentences are counted with a regular expression (a run of `.`, `!` or `?`, optionally followed by closing
quotes or brackets, then a space or the end of the line) where C4 used NLTK's Punkt tokenizer: an
abbreviation such as "Dr." counts as a sentence end here.
"""
from __future__ import annotations

import re
from typing import Iterator

MIN_WORDS = 3
MIN_SENTENCES = 5
MAX_WORD_CHARS = 1000
END_MARKS = (".", "?", "!", '"')
ELLIPSIS = "..."
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
                  "use cookies")
CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?]+[\"')\]\u201d\u2019]*(?=\s|$)")


def candidate_lines(text: str) -> Iterator[str]:
    """The page's lines that pass the word-length, terminal-punctuation and word-count tests, cleaned of
    citation markers."""
    for raw in text.splitlines():
        line = raw.strip()
        words = line.split()
        if any(len(w) > MAX_WORD_CHARS for w in words):
            continue
        line = CITATION.sub("", line)
        if not line.endswith(END_MARKS) or line.endswith(ELLIPSIS):
            continue
        if len(line.split()) < MIN_WORDS:
            continue
        yield line


def has_lorem_ipsum(text: str) -> bool:
    return any("lorem ipsum" in line.lower() for line in candidate_lines(text))


def has_curly_brace(text: str) -> bool:
    """Whether a candidate line that is not a javascript notice holds a `{`."""
    return any("{" in line for line in candidate_lines(text) if "javascript" not in line.lower())


def kept_lines(text: str) -> list[str]:
    """The candidate lines without javascript notices and policy lines."""
    out = []
    for line in candidate_lines(text):
        lower = line.lower()
        if "javascript" in lower or any(p in lower for p in POLICY_PHRASES):
            continue
        out.append(line)
    return out


def count_sentences(text: str) -> int:
    return sum(len(SENTENCE_END.findall(line)) for line in text.splitlines())
