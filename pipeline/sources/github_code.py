"""What the GitHub job keeps of a source file: which files count as code (the extension list), the leading
license/copyright header comments it strips (per comment style), and the line-length and alphanumeric
heuristics that drop data, minified and generated files.

Header stripping reads the file from the top: after a prelude that always stays (a `#!` line, a coding
cookie, `<?php`, an XML declaration), it takes one comment block at a time, where a block is a run of
consecutive line comments (`#`, `//`, `--`, `;`, ...) or one block comment (`/* */`, `<!-- -->`,
`{- -}`, ...) that ends its line. A block that holds a license or copyright statement goes whole; the first
block that does not, or the first line of code, stops the scan, so a leading comment that explains the
file stays, and so does everything after it. Docstrings are code, not comments, and always stay.
"""
from __future__ import annotations

import dataclasses
import posixpath
import re

# extension (lower case, with the dot) or exact file name -> language
LANGUAGES: dict[str, str] = {
    ".asm": "assembly", ".s": "assembly", ".nasm": "assembly",
    ".bat": "batchfile", ".cmd": "batchfile",
    ".c": "c", ".h": "c",
    ".cc": "c++", ".cpp": "c++", ".cxx": "c++", ".c++": "c++", ".hh": "c++", ".hpp": "c++", ".hxx": "c++",
    ".h++": "c++", ".ipp": "c++",
    ".cs": "c#",
    ".clj": "clojure", ".cljs": "clojure", ".cljc": "clojure",
    ".cmake": "cmake", "cmakelists.txt": "cmake",
    ".css": "css", ".scss": "css", ".less": "css",
    ".dart": "dart",
    ".dockerfile": "dockerfile", "dockerfile": "dockerfile",
    ".ex": "elixir", ".exs": "elixir",
    ".el": "emacs-lisp",
    ".erl": "erlang", ".hrl": "erlang",
    ".f": "fortran", ".f77": "fortran", ".f90": "fortran", ".f95": "fortran", ".f03": "fortran",
    ".f08": "fortran", ".for": "fortran",
    ".go": "go",
    ".groovy": "groovy", ".gradle": "groovy",
    ".hs": "haskell", ".lhs": "haskell",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".java": "java",
    ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jl": "julia",
    ".kt": "kotlin", ".kts": "kotlin",
    ".lisp": "lisp", ".lsp": "lisp", ".cl": "lisp",
    ".lua": "lua",
    "makefile": "makefile", "gnumakefile": "makefile", ".mk": "makefile", ".mak": "makefile",
    ".md": "markdown", ".markdown": "markdown",
    ".ml": "ocaml", ".mli": "ocaml",
    ".mm": "objective-c",
    ".pl": "perl", ".pm": "perl", ".pod": "perl", ".t": "perl",
    ".php": "php", ".php3": "php", ".php4": "php", ".php5": "php", ".phtml": "php",
    ".ps1": "powershell", ".psm1": "powershell", ".psd1": "powershell",
    ".py": "python", ".pyi": "python", ".pyx": "python",
    ".r": "r",
    ".rb": "ruby", ".rake": "ruby", "rakefile": "ruby", "gemfile": "ruby",
    ".rs": "rust",
    ".rst": "restructuredtext",
    ".scala": "scala", ".sc": "scala",
    ".scm": "scheme", ".ss": "scheme", ".rkt": "scheme",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ksh": "shell",
    ".sql": "sql",
    ".swift": "swift",
    ".tex": "tex", ".sty": "tex",
    ".ts": "typescript", ".tsx": "typescript",
    ".vb": "visual-basic", ".vbs": "visual-basic",
    ".vue": "vue",
    ".xml": "xml", ".xsl": "xml", ".xslt": "xml",
}


def language_of(path: str) -> str | None:
    """The language of a file by its name or extension, or None when it is not in the list."""
    name = posixpath.basename(path).lower()
    if name in LANGUAGES:
        return LANGUAGES[name]
    return LANGUAGES.get(posixpath.splitext(name)[1])


@dataclasses.dataclass(frozen=True)
class CommentStyle:
    line: tuple[str, ...] = ()                  # line comment prefixes
    block: tuple[tuple[str, str], ...] = ()     # (open, close) of block comments


HASH = CommentStyle(line=("#",))
C_LIKE = CommentStyle(line=("//",), block=(("/*", "*/"),))
STYLES: dict[str, CommentStyle] = {
    **{lang: HASH for lang in ("python", "shell", "ruby", "perl", "r", "cmake", "makefile", "dockerfile",
                               "elixir")},
    "julia": CommentStyle(line=("#",), block=(("#=", "=#"),)),
    "powershell": CommentStyle(line=("#",), block=(("<#", "#>"),)),
    **{lang: C_LIKE for lang in ("c", "c++", "c#", "java", "javascript", "typescript", "go", "rust", "swift",
                                 "kotlin", "scala", "dart", "groovy", "objective-c")},
    "php": CommentStyle(line=("//", "#"), block=(("/*", "*/"),)),
    "css": CommentStyle(block=(("/*", "*/"),)),
    "sql": CommentStyle(line=("--",), block=(("/*", "*/"),)),
    "lua": CommentStyle(line=("--",), block=(("--[[", "]]"),)),
    "haskell": CommentStyle(line=("--",), block=(("{-", "-}"),)),
    **{lang: CommentStyle(line=(";",), block=(("#|", "|#"),)) for lang in ("lisp", "scheme", "clojure",
                                                                           "emacs-lisp")},
    "assembly": CommentStyle(line=(";", "#", "//"), block=(("/*", "*/"),)),
    "erlang": CommentStyle(line=("%",)),
    "tex": CommentStyle(line=("%",)),
    "fortran": CommentStyle(line=("!",)),
    "ocaml": CommentStyle(block=(("(*", "*)"),)),
    "batchfile": CommentStyle(line=("::", "rem ", "REM ", "@rem ", "@REM ")),
    "visual-basic": CommentStyle(line=("'",)),
    **{lang: CommentStyle(block=(("<!--", "-->"),)) for lang in ("html", "xml", "markdown", "vue")},
}

# the first two lines may be a prelude that stays whatever follows: interpreter line, coding cookie, openers
_PRELUDE = re.compile(r"#!.*|#.*?\bcoding[:=]\s*[-\w.]+.*|<\?php\b.*|<\?xml\b.*|<!DOCTYPE\b.*", re.IGNORECASE)
_LICENSE_MARKERS = re.compile(
    r"copyright\b|\(c\)\s*\d{4}|©|\bspdx-license-identifier\b|\blicensed\s+under\b"
    r"|\bunder\s+the\s+(?:terms\s+of\s+the\s+)?(?:[\w.-]+\s+){0,3}licen[cs]e\b"
    r"|permission\s+is\s+hereby\s+granted|redistribution\s+and\s+use\s+in\s+source"
    r"|all\s+rights\s+reserved|this\s+(?:\w+\s+)?is\s+free\s+software|without\s+warrant(?:y|ies)"
    r"|\bgnu\s+(?:lesser\s+|library\s+|affero\s+)?general\s+public\s+licen[cs]e"
    r"|apache\s+licen[cs]e|\bmit\s+licen[cs]e|\bbsd\s+licen[cs]e|www\.apache\.org/licenses"
    r"|\bsee\s+(?:the\s+)?licen[cs]e\b",
    re.IGNORECASE)


def is_license_comment(text: str) -> bool:
    """Whether a comment's text is license or copyright boilerplate (a notice, a license grant or
    reference, a warranty disclaimer, an SPDX tag)."""
    return bool(_LICENSE_MARKERS.search(text))


def _line_block(lines: list[str], i: int, prefixes: tuple[str, ...]) -> int:
    """The end (exclusive) of the run of line comments starting at line i (i itself when none)."""
    j = i
    while j < len(lines) and lines[j].lstrip().startswith(prefixes):
        j += 1
    return j


def _block_comment(lines: list[str], i: int, blocks: tuple[tuple[str, str], ...]) -> int:
    """The end (exclusive) of a block comment opening at line i and closing at the end of its last line,
    or i when line i opens none (or the comment is followed by code on the line where it closes)."""
    head = lines[i].lstrip()
    for open_, close in sorted(blocks, key=lambda b: -len(b[0])):
        if not head.startswith(open_):
            continue
        rest = head[len(open_):]
        j = i
        while True:
            at = rest.find(close)
            if at >= 0:
                return j + 1 if not rest[at + len(close):].strip() else i
            j += 1
            if j >= len(lines):
                return i                      # never closed: not a header, leave the file alone
            rest = lines[j]
    return i


def strip_license_header(text: str, language: str) -> tuple[str, int]:
    """The text without its leading license/copyright comment blocks, and the number of lines removed."""
    style = STYLES.get(language)
    if style is None:
        return text, 0
    lines = text.split("\n")
    i = 0
    while i < min(2, len(lines)) and _PRELUDE.fullmatch(lines[i].strip()):
        i += 1
    prelude, removed, kept_from = lines[:i], 0, i
    while True:
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines):
            break
        end = _block_comment(lines, i, style.block) if style.block else i
        if end == i and style.line:
            end = _line_block(lines, i, style.line)
        if end == i or not is_license_comment("\n".join(lines[i:end])):
            break
        removed += end - i
        i = kept_from = end
    if not removed:
        return text, 0
    body = lines[kept_from:]
    while body and not body[0].strip():
        body.pop(0)
    return "\n".join(prelude + body), removed


@dataclasses.dataclass(frozen=True)
class QualityRule:
    """RedPajama's GitHub heuristics. Lines are the text split on "\\n"; a file is dropped when its
    longest line has more than `max_line_length` characters, when the mean length of its lines is more
    than `max_mean_line_length`, or when letters and digits (str.isalnum) make up less than
    `min_alphanumeric` of all its characters (white space included)."""
    max_line_length: int = 1000
    max_mean_line_length: float = 100.0
    min_alphanumeric: float = 0.25

    def reason(self, text: str) -> str | None:
        """Why the file goes, or None when it stays."""
        if not text.strip():
            return "no code left (empty, or only a license header)"
        lengths = [len(line) for line in text.split("\n")]
        longest = max(lengths)
        if longest > self.max_line_length:
            return f"longest line {longest:,} chars > {self.max_line_length:,}"
        mean = sum(lengths) / len(lengths)
        if mean > self.max_mean_line_length:
            return f"mean line length {mean:.1f} chars > {self.max_mean_line_length:g}"
        share = sum(ch.isalnum() for ch in text) / len(text)
        if share < self.min_alphanumeric:
            return f"alphanumeric share {share:.3f} < {self.min_alphanumeric:g}"
        return None
