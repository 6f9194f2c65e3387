"""The LaTeX side of an arXiv paper: decoding its files, choosing the main file, joining the files it
`\\input`s, removing comments, and cutting the text down to the part between the first section and the
bibliography (the recipe's cuts).

Paths inside a paper are normalised POSIX paths relative to the paper's root (`sec/intro.tex`).
"""
from __future__ import annotations

import dataclasses
import posixpath
import re

TEX_EXTENSIONS = (".tex", ".ltx", ".latex")
SOURCE_EXTENSIONS = TEX_EXTENSIONS + (".sty", ".def", ".inc", "")
MAX_DEPTH = 16           # \input nesting
MAX_JOINED_CHARS = 16_000_000

_DOCCLASS = re.compile(r"^[^%\n]*\\document(?:class|style)(?![A-Za-z])", re.M)
_BEGIN_DOCUMENT = re.compile(r"\\begin\s*\{document\}")
_INCLUDE = re.compile(
    r"\\(input|include|subfile)(?![A-Za-z@])\s*(?:\{([^{}\n]*)\}|([^\s{}\\%]+))"
    r"|\\(sub)?(?:import|inputfrom|includefrom)\*?\s*\{([^{}\n]*)\}\s*\{([^{}\n]*)\}"
    r"|\\(?:usepackage|RequirePackage)(?![A-Za-z@])\s*(?:\[[^\]]*\])?\s*\{([^{}]*)\}")
_COMMENT_OR_ESCAPE = re.compile(r"\\.|%", re.S)
_VERBATIM = re.compile(r"\\begin\s*\{(verbatim\*?|Verbatim\*?|lstlisting|minted|alltt)\}")
_COMMENT_ENV = re.compile(r"^[ \t]*\\begin\s*\{comment\}.*?^[ \t]*\\end\s*\{comment\}[^\n]*\n?", re.M | re.S)
_CONDITIONAL = re.compile(r"\\(iffalse|if[A-Za-z@]*|else|fi)(?![A-Za-z@])")
_NOT_CONDITIONALS = {"iff", "ifthenelse"}
_FIRST_SECTION = re.compile(r"\\(?:section|chapter)(?![A-Za-z@])")
_BIBLIOGRAPHY = re.compile(r"\\begin\s*\{thebibliography\}|\\bibliography(?![A-Za-z@])\s*\{"
                           r"|\\printbibliography(?![A-Za-z@])|\\end\s*\{document\}")
_TRAILING_BIBSTYLE = re.compile(r"(?:\\bibliographystyle\s*\{[^{}]*\}\s*)+$")
_APPENDIX = re.compile(r"\\appendix(?![A-Za-z@])|\\begin\s*\{appendi(?:x|ces)\}")
_INPUTENC = re.compile(rb"\\usepackage\s*\[([^\]]*)\]\s*\{inputenc\}")
_ENCODINGS = {"latin1": "latin-1", "latin9": "iso8859-15", "ansinew": "cp1252", "cp1252": "cp1252",
              "utf8": "utf-8", "utf8x": "utf-8", "latin2": "iso8859-2", "cp1250": "cp1250", "koi8-r": "koi8-r"}
MAX_NON_ASCII_SHARE = 0.02


class UndecodableError(ValueError):
    pass


def decode_tex(data: bytes, name: str) -> tuple[str, str]:
    """(text, encoding): UTF-8, else the encoding `inputenc` declares, else Latin-1 when only a few bytes
    (under 2%) are not ASCII (an accented name in a file that never said its encoding). Binary data and
    text that is none of these is undecodable."""
    if b"\x00" in data:
        raise UndecodableError(f"{name}: binary data (NUL bytes) in a LaTeX file")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        error = exc
    m = _INPUTENC.search(data)
    for option in (m.group(1).decode("ascii", "replace").split(",") if m else []):
        codec = _ENCODINGS.get(option.strip().lower())
        if codec and codec != "utf-8":
            return data.decode(codec, "replace"), codec
    share = sum(b >= 0x80 for b in data) / max(1, len(data))
    if share < MAX_NON_ASCII_SHARE:
        return data.decode("latin-1"), "latin-1"
    raise UndecodableError(f"{name}: not UTF-8 ({error.reason} at byte {error.start}), no inputenc "
                           f"encoding declared, {share:.0%} of bytes not ASCII")


def is_source_name(name: str) -> bool:
    return posixpath.splitext(name.lower())[1] in SOURCE_EXTENSIONS


def normalise(path: str) -> str:
    path = posixpath.normpath(path.replace("\\", "/").lstrip("/"))
    return "" if path in (".", "..") or path.startswith("../") else path


def choose_main(files: dict[str, str]) -> str | None:
    """The file that LaTeX would be run on: one with `\\documentclass` (or LaTeX 2.09's `\\documentstyle`)
    and `\\begin{document}`; among several, one no other file includes, then the largest, then by name."""
    tex = {p: t for p, t in files.items() if posixpath.splitext(p.lower())[1] in TEX_EXTENSIONS + ("",)}
    candidates = [p for p, t in tex.items() if _DOCCLASS.search(t) and _BEGIN_DOCUMENT.search(t)]
    candidates = candidates or [p for p, t in tex.items() if _DOCCLASS.search(t) or _BEGIN_DOCUMENT.search(t)]
    if not candidates:
        return None
    included = {resolve(name, "", "", files) for t in tex.values() for names, _ in _included_names(t)
                for name in names}
    return min(candidates, key=lambda p: (p in included, -len(files[p]), p))


def _included_names(text: str):
    """(names, match) for every inclusion outside comments: one name for \\input and \\import, one
    `<package>.sty` per package of a \\usepackage."""
    for m in _INCLUDE.finditer(text):
        if in_comment(text, m.start()):
            continue
        if m.group(1):
            yield [(m.group(2) if m.group(2) is not None else m.group(3)).strip()], m
        elif m.group(6) is not None:
            yield [posixpath.join(m.group(5).strip(), m.group(6).strip())], m
        else:
            yield [p.strip() + ".sty" for p in m.group(7).split(",") if p.strip()], m


def in_comment(text: str, index: int) -> bool:
    start = text.rfind("\n", 0, index) + 1
    return any(m.group() == "%" for m in _COMMENT_OR_ESCAPE.finditer(text, start, index))


def resolve(name: str, main_dir: str, including_dir: str, files: dict[str, str]) -> str | None:
    """The paper file `\\input{name}` means: relative to the main file's directory (TeX's rule), then to
    the including file's; `name.tex` before `name`."""
    name = name.strip().strip('"')
    if not name or "#" in name:
        return None
    for base in dict.fromkeys((main_dir, including_dir)):
        for candidate in (name + ".tex", name):
            path = normalise(posixpath.join(base, candidate))
            if path in files:
                return path
    return None


@dataclasses.dataclass
class Joined:
    text: str
    files: list[str]
    missing: list[str]
    cycles: list[str]


def join_inputs(main: str, files: dict[str, str]) -> Joined:
    """The main file with every `\\input`, `\\include`, `\\subfile`, `\\import` and local package
    (`\\usepackage{x}` with `x.sty` in the paper) replaced by the file's text, recursively. A file that
    is already being included (a cycle), a file nested deeper than MAX_DEPTH, and inclusions past
    MAX_JOINED_CHARS are left out; missing files are listed. Commented-out inclusions are not followed."""
    used, missing, cycles = [main], [], []
    size = [len(files[main])]
    main_dir = posixpath.dirname(main)

    def include(name: str, path: str, stack: tuple[str, ...], is_package: bool) -> str | None:
        target = resolve(name, main_dir, posixpath.dirname(path), files)
        if target is None:
            if not is_package:
                missing.append(name)
            return None
        if target in stack:
            cycles.append(target)
            return ""
        if len(stack) >= MAX_DEPTH or size[0] + len(files[target]) > MAX_JOINED_CHARS:
            return None
        size[0] += len(files[target])
        if target not in used:
            used.append(target)
        return expand(target, stack + (target,))

    def expand(path: str, stack: tuple[str, ...]) -> str:
        text, out, last = files[path], [], 0
        for names, m in _included_names(text):
            is_package = m.group(7) is not None
            parts = [include(name, path, stack, is_package) for name in names]
            if all(p is None for p in parts):
                continue
            out.append(text[last:m.start()])
            inlined = "".join(p for p in parts if p)
            out.append(inlined + "\n" + m.group(0) if is_package else inlined)
            last = m.end()
        out.append(text[last:])
        return "".join(out)

    return Joined(expand(main, (main,)), used, sorted(set(missing)), sorted(set(cycles)))


def strip_comments(text: str) -> str:
    """Remove `%` comments (not `\\%`), `comment` environments and `\\iffalse ... \\fi` blocks; text in
    verbatim environments is kept. A line that is only a comment disappears; a comment right after text
    joins the next line to it, as TeX does."""
    text = _COMMENT_ENV.sub("", text)
    out: list[str] = []
    lines = text.split("\n")
    verbatim, join_next = None, False
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if verbatim:
            out.append(line + ("" if last else "\n"))
            if "\\end{" + verbatim + "}" in line:
                verbatim = None
            continue
        if join_next:
            line = line.lstrip(" \t")
            if not line:
                out.append("\n")
            join_next = False
        cut = next((m.start() for m in _COMMENT_OR_ESCAPE.finditer(line) if m.group() == "%"), -1)
        if cut < 0:
            out.append(line + ("" if last else "\n"))
            m = _VERBATIM.search(line)
            if m and "\\end{" + m.group(1) + "}" not in line[m.end():]:
                verbatim = m.group(1)
            continue
        kept = line[:cut]
        if not kept.strip():
            continue
        if kept[-1] in " \t":
            out.append(kept.rstrip(" \t") + ("" if last else "\n"))
        else:
            out.append(kept)
            join_next = True
    return remove_iffalse("".join(out))


def remove_iffalse(text: str) -> str:
    """Drop `\\iffalse ... \\fi` blocks (keeping an `\\else` branch), nested conditionals counted."""
    out, pos = [], 0
    while True:
        start = text.find("\\iffalse", pos)
        if start < 0:
            break
        depth, else_at, end = 0, None, None
        for m in _CONDITIONAL.finditer(text, start):
            word = m.group(1)
            if word in _NOT_CONDITIONALS:
                continue
            if word == "fi":
                depth -= 1
                if depth == 0:
                    end = m
                    break
            elif word == "else":
                if depth == 1 and else_at is None:
                    else_at = m.end()
            else:
                depth += 1
        if end is None:  # no matching \fi: leave the rest alone
            break
        out.append(text[pos:start])
        if else_at is not None:
            out.append(text[else_at:end.start()])
        pos = end.end()
    out.append(text[pos:])
    return "".join(out)


def tidy(text: str) -> str:
    """Trailing spaces off every line, at most one blank line in a row, no blank lines at the ends."""
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def from_first_section(text: str) -> str | None:
    """The text from the first `\\section` (or `\\chapter`) of the document body on; None if it has none."""
    begin = _BEGIN_DOCUMENT.search(text)
    m = _FIRST_SECTION.search(text, begin.end() if begin else 0)
    return text[m.start():] if m else None


def before_bibliography(text: str) -> str:
    """The text before the bibliography (`thebibliography`, `\\bibliography{}`, `\\printbibliography`) or
    `\\end{document}`, whichever comes first, without a `\\bibliographystyle` left just before it."""
    m = _BIBLIOGRAPHY.search(text)
    kept = text[:m.start()] if m else text
    return _TRAILING_BIBSTYLE.sub("", kept.rstrip()).rstrip()


def before_appendix(text: str) -> str:
    m = _APPENDIX.search(text)
    return text[:m.start()].rstrip() if m else text
