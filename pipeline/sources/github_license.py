"""Which license a repository is under, from a license field (a BigQuery export's `license` column) or from
the text of its root license files (LICENSE, LICENCE.md, COPYING, LICENSE-MIT, ...).

Texts are recognised by the clauses that make each license what it is, matched on a normalised text (lower
case, every run of non-alphanumerics one space), so that line wrapping, markdown and punctuation do not
matter: MIT by its grant and its notice condition; BSD by its redistribution grant and retained-notice
condition, then 4-clause (advertising clause), 3-clause (non-endorsement clause) or 2-clause; Apache-2.0 by
its title and version with its terms or its standard notice. Common licenses that are not kept (GPL, LGPL,
AGPL, MPL, ISC, Unlicense, ...) are recognised too, so a rejection says which one it was. An
`SPDX-License-Identifier:` line names licenses directly (`A OR B` keeps the repository when either is kept).

A repository is kept only when every license found among its root license files is kept: a repository that
ships both an MIT and a GPL text cannot be told apart from one under both, so it goes.
"""
from __future__ import annotations

import re

KEPT = ("Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "MIT")

_LICENSE_FILE = re.compile(r"(?:[\w-]+[-_.])?(?:un)?(?:licen[cs]e|copying|copyright)(?:[-_.][\w.-]*)?", re.I)
_SPDX = re.compile(r"SPDX-License-Identifier:\s*([A-Za-z0-9.+\-() ]+)")


def is_license_file(path: str) -> bool:
    """Whether a path (relative to the repository root) is a root license file (not a source file that
    happens to be called `copyright.py`)."""
    from pipeline.sources.github_code import language_of
    name = path.strip("/")
    return ("/" not in name and bool(_LICENSE_FILE.fullmatch(name))
            and language_of(name) in (None, "markdown", "restructuredtext", "html"))


def _norm(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "


def _has(text: str, *phrases: str) -> bool:
    return all(f" {p} " in text for p in phrases)


_GRANTS = [  # (id, test on the normalised text); the first that matches within a family wins
    ("AGPL-3.0", lambda t: _has(t, "gnu affero general public license")),
    ("LGPL", lambda t: _has(t, "gnu lesser general public license") or _has(t, "gnu library general public license")),
    ("GPL", lambda t: _has(t, "gnu general public license")),
    ("MPL-2.0", lambda t: _has(t, "mozilla public license")),
    ("EPL", lambda t: _has(t, "eclipse public license")),
    ("Unlicense", lambda t: _has(t, "this is free and unencumbered software released into the public domain")),
    ("CC0-1.0", lambda t: _has(t, "cc0 1 0") or _has(t, "creative commons zero")),
    ("ISC", lambda t: _has(t, "permission to use copy modify and or distribute this software for any purpose")),
    ("WTFPL", lambda t: _has(t, "do what the fuck you want to public license")),
    ("Apache-2.0", lambda t: _has(t, "apache license") and _has(t, "version 2 0")
     and (_has(t, "terms and conditions for use reproduction and distribution")
          or _has(t, "licensed under the apache license version 2 0"))),
    ("MIT", lambda t: _has(t, "permission is hereby granted free of charge to any person obtaining a copy")
     and _has(t, "the above copyright notice and this permission notice shall be included")),
]
_BSD_GRANT = "redistribution and use in source and binary forms with or without modification are permitted"
_BSD_NOTICE = "redistributions of source code must retain the above copyright notice"


def _bsd(t: str) -> str | None:
    if not (_has(t, _BSD_GRANT) and _has(t, _BSD_NOTICE)):
        return None
    if _has(t, "all advertising materials mentioning features or use of this software must display"):
        return "BSD-4-Clause"
    if _has(t, "neither the name of") or _has(t, "may be used to endorse or promote products derived"):
        return "BSD-3-Clause"
    return "BSD-2-Clause"


def _spdx(text: str) -> list[list[str]]:
    """Each SPDX expression as its alternatives (split on OR), each alternative as its license ids."""
    out = []
    for expr in _SPDX.findall(text):
        expr = expr.replace("(", " ").replace(")", " ")
        out += [[part.strip() for part in re.split(r"\bAND\b|\bWITH\b", alt) if part.strip()]
                for alt in re.split(r"\bOR\b", expr)]
    return out


def licenses_in_text(text: str) -> list[str]:
    """Every license a license file's text grants, sorted; an SPDX `A OR B` contributes the kept
    alternative when there is one."""
    found = set()
    alternatives = _spdx(text)
    if alternatives:
        kept = [alt for alt in alternatives if all(normalise_id(x) in KEPT for x in alt)]
        found.update(normalise_id(x) for x in (kept[0] if kept else alternatives[0]))
    t = _norm(text)
    found.update(lid for lid, test in _GRANTS if test(t))
    bsd = _bsd(t)
    if bsd:
        found.add(bsd)
    return sorted(found)


_FIELD_IDS = {
    "mit": "MIT", "expat": "MIT", "apache2": "Apache-2.0", "apache20": "Apache-2.0", "apachelicense20": "Apache-2.0",
    "bsd2clause": "BSD-2-Clause", "bsd3clause": "BSD-3-Clause", "simplifiedbsd": "BSD-2-Clause",
    "newbsd": "BSD-3-Clause", "freebsd": "BSD-2-Clause", "bsd4clause": "BSD-4-Clause",
}


def normalise_id(value: str) -> str:
    """A license name as written in a field or SPDX tag ("mit", "apache-2.0", "BSD 3-Clause") -> SPDX id
    (unknown names come back as written)."""
    key = re.sub(r"[^a-z0-9]", "", value.lower())
    return _FIELD_IDS.get(key, value.strip())


def verdict(licenses: list[str], kept: tuple[str, ...] = KEPT) -> str | None:
    """None when a repository with these licenses is kept, else why not."""
    if not licenses:
        return "no license recognised"
    refused = [lid for lid in licenses if lid not in kept]
    if refused:
        return f"license {', '.join(refused)} is not one of {', '.join(kept)}"
    return None
