"""Inline expansion of user-defined LaTeX macros, with arguments.

Definitions understood: `\\newcommand`, `\\renewcommand`, `\\providecommand`, `\\DeclareRobustCommand`
(starred or not; `{\\name}` or `\\name`; `[n]` arguments; `[default]` for an optional first argument),
`\\def`, `\\gdef`, `\\edef`, `\\xdef` (with `\\long`, `\\global`, `\\protected` prefixes; undelimited and
delimited parameters such as `\\def\\pair(#1,#2){...}`), `\\let` and `\\DeclareMathOperator`. Definitions
are removed from the text; every later use of a defined macro is replaced by its body with the arguments
substituted, and the result is expanded again, as TeX does (the body goes back onto the input, so a body
may take its arguments from the text that follows it). Definitions take effect where they appear.

Text inside `verbatim`-like environments and `\\verb` is copied untouched. Redefinitions of structural
commands (`\\section`, `\\begin`, `\\bibliography`, ...) are dropped, not applied: later stages cut the
paper at those commands.

Broken input never stops the expansion: a use whose arguments cannot be read (an unbalanced brace, an
argument longer than `max_arg_chars`) stays as it is, and so does a definition that cannot be parsed.
Loops are bounded: expansion stops nesting at `max_depth` levels (`\\def\\a{\\a}` stops there), and the
whole document stops expanding after `max_expansions` uses or once the expanded text passes
`max_growth` times the input (plus 1 MB); the rest is then copied as it is and `Expansion.stopped` says
why.
"""
from __future__ import annotations

import dataclasses
import re

_CONTROL = re.compile(r"\\([A-Za-z@]+|.)", re.S)
_BRACES = re.compile(r"\\.|[{}]", re.S)
_BRACKETS = re.compile(r"\\.|[{}\]]", re.S)
_PARAM = re.compile(r"#(#|[1-9])")
_WORD_END = re.compile(r"\\[A-Za-z@]+$")
_VERBATIM_BEGIN = re.compile(r"\s*\{(verbatim\*?|Verbatim\*?|lstlisting|minted|alltt|comment)\}")
_LETTER = re.compile(r"[A-Za-z@]")

NEWCOMMANDS = {"newcommand", "renewcommand", "providecommand", "DeclareRobustCommand"}
DEFS = {"def", "gdef", "edef", "xdef"}
PREFIXES = {"long", "global", "protected", "outer"}
# cut points and structure that later stages look for: never redefined here
PROTECTED = {"section", "subsection", "subsubsection", "chapter", "part", "paragraph", "subparagraph",
             "appendix", "bibliography", "bibliographystyle", "printbibliography", "begin", "end", "item",
             "input", "include", "documentclass", "usepackage", "newcommand", "renewcommand", "def", "let"}


@dataclasses.dataclass
class Macro:
    body: str
    n_args: int = 0
    default: str | None = None        # an optional first argument's default (\newcommand[n][default])
    prefix: str = ""                  # \def: text that must follow the name before #1
    delimiters: tuple[str, ...] = ()  # \def: text that ends each argument ('' = undelimited)


@dataclasses.dataclass
class Expansion:
    text: str
    defined: int
    expanded: int
    stopped: str = ""


class _ArgumentError(Exception):
    """A use or a definition whose arguments cannot be read: it stays in the text as written."""


class Expander:
    def __init__(self, max_depth: int = 32, max_expansions: int = 50_000, max_growth: int = 8,
                 max_arg_chars: int = 32_768, max_merges: int = 2_000):
        self.max_depth, self.max_expansions = max_depth, max_expansions
        self.max_growth, self.max_arg_chars, self.max_merges = max_growth, max_arg_chars, max_merges

    def expand(self, text: str, macros: dict[str, Macro] | None = None) -> Expansion:
        """Expand `text`; `macros` (updated in place) holds definitions seen earlier, e.g. in the preamble."""
        run = _Run(self, text, {} if macros is None else macros)
        out = run.go()
        return Expansion(out, run.defined, run.expanded, run.stopped)


class _Run:
    def __init__(self, cfg: Expander, text: str, macros: dict[str, Macro]):
        self.cfg, self.macros = cfg, macros
        self.frames: list[list] = [[text, 0, 0]]  # [text, position, expansion depth]: an input stack
        self.out: list[str] = []
        self.last_word = False  # did the output just end with a control word (\alpha)?
        self.defined = self.expanded = self.merges = 0
        self.budget = cfg.max_growth * len(text) + 1_000_000
        self.stopped = ""

    # -- output ---------------------------------------------------------------------------------------
    def emit(self, s: str, word: bool = False) -> None:
        if not s:
            return
        if self.last_word and _LETTER.match(s):
            self.out.append(" ")  # keep `\alpha` + `b` from fusing into `\alphab`
        self.out.append(s)
        self.last_word = word

    # -- the input stack ------------------------------------------------------------------------------
    def top(self) -> list:
        while len(self.frames) > 1 and self.frames[-1][1] >= len(self.frames[-1][0]):
            self.frames.pop()
        return self.frames[-1]

    def merge(self) -> bool:
        """Join the top frame's rest with the frame below, for an argument that runs past a body's end."""
        if len(self.frames) < 2 or self.merges >= self.cfg.max_merges:
            return False
        self.merges += 1
        text, pos, depth = self.frames.pop()
        below = self.frames[-1]
        below[0], below[1], below[2] = text[pos:] + below[0][below[1]:], 0, max(depth, below[2])
        return True

    def peek(self) -> str:
        f = self.top()
        return f[0][f[1]] if f[1] < len(f[0]) else ""

    def skip_spaces(self) -> None:
        while True:
            f = self.top()
            text, pos = f[0], f[1]
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            f[1] = pos
            if pos < len(text) or len(self.frames) == 1:
                return

    def skip_blanks_after_word(self) -> None:
        """TeX drops the spaces (and one line end) after a control word."""
        f = self.top()
        text, pos = f[0], f[1]
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == "\n":
            pos += 1
            while pos < len(text) and text[pos] in " \t":
                pos += 1
        f[1] = pos

    def read_control(self) -> str:
        f = self.top()
        m = _CONTROL.match(f[0], f[1])
        if not m:
            raise _ArgumentError("expected a control sequence")
        f[1] = m.end()
        return m.group(1)

    def read_balanced(self, pattern: re.Pattern, close: str) -> str:
        """Text up to the `close` that ends a group (`}`) or an optional argument (`]`), the opener
        already read. Runs into the frames below when a body ends inside the argument."""
        while True:
            f = self.top()
            text, start = f[0], f[1]
            end = min(len(text), start + self.cfg.max_arg_chars)
            depth = 0
            for m in pattern.finditer(text, start, end):
                c = m.group()
                if c == "{":
                    depth += 1
                elif c == "}" and depth:
                    depth -= 1
                elif c == close and depth == 0:
                    f[1] = m.end()
                    return text[start:m.start()]
                elif c == "}":  # a `}` closing an outer group inside an optional argument
                    raise _ArgumentError("unbalanced braces")
            if end < len(text) or not self.merge():
                raise _ArgumentError(f"no closing {close!r} within {self.cfg.max_arg_chars} characters")

    def read_group(self) -> str:
        f = self.top()
        f[1] += 1  # the `{`
        return self.read_balanced(_BRACES, "}")

    def read_argument(self) -> str:
        """An undelimited argument: a braced group without its braces, or a single token."""
        self.skip_spaces()
        c = self.peek()
        if c == "{":
            return self.read_group()
        if c in ("", "}"):
            raise _ArgumentError("missing argument")
        if c == "\\":
            name = self.read_control()
            return "\\" + name
        f = self.top()
        f[1] += 1
        return c

    def read_optional(self) -> str | None:
        self.skip_spaces()
        if self.peek() != "[":
            return None
        self.top()[1] += 1
        return self.read_balanced(_BRACKETS, "]")

    def read_delimited(self, delimiter: str) -> str:
        while True:
            f = self.top()
            text, start = f[0], f[1]
            end = min(len(text), start + self.cfg.max_arg_chars)
            depth, pos = 0, start
            while pos < end:
                c = text[pos]
                if c == "\\":
                    pos += 2
                    continue
                if depth == 0 and text.startswith(delimiter, pos):
                    f[1] = pos + len(delimiter)
                    arg = text[start:pos]
                    return arg[1:-1] if _is_one_group(arg) else arg
                depth += (c == "{") - (c == "}")
                if depth < 0:
                    raise _ArgumentError("unbalanced braces")
                pos += 1
            if end < len(text) or not self.merge():
                raise _ArgumentError(f"delimiter {delimiter!r} not found")

    # -- the main loop --------------------------------------------------------------------------------
    def go(self) -> str:
        while True:
            f = self.top()
            text, pos = f[0], f[1]
            i = text.find("\\", pos)
            if i < 0:
                self.emit(text[pos:])
                f[1] = len(text)
                if len(self.frames) == 1:
                    return "".join(self.out)
                continue
            self.emit(text[pos:i])
            m = _CONTROL.match(text, i)
            if not m:  # a backslash at the very end of a frame
                self.emit("\\")
                f[1] = i + 1
                continue
            f[1] = m.end()
            self.command(m.group(1), m.group(0), f[2])
            if self.stopped:
                for t, p, _ in reversed(self.frames):
                    self.emit(t[p:])
                return "".join(self.out)

    def command(self, name: str, raw: str, depth: int) -> None:
        """Handle the control sequence `raw` read at expansion depth `depth`."""
        word = raw[1:2].isalpha() or raw[1:2] == "@"
        saved = [list(f) for f in self.frames]
        try:
            if self.define(name):
                self.defined += 1
                return
        except _ArgumentError:
            pass
        self.frames = [list(f) for f in saved]
        if name == "verb" or (name == "begin" and self.verbatim_env()):
            if name == "verb":
                self.copy_verb()
            return
        macro = self.macros.get(name)
        if macro is not None and depth < self.cfg.max_depth:
            try:
                self.use(macro, word, depth)
                if not self.stopped:
                    return
            except _ArgumentError:
                pass
            self.frames = saved  # the use stays as written, arguments and all
        self.emit(raw, word)

    def use(self, macro: Macro, word: bool, depth: int) -> None:
        if macro.delimiters or macro.prefix:
            args = self.read_def_args(macro, word)
        else:
            args = []
            if macro.n_args == 0 and word:
                self.skip_blanks_after_word()
            if macro.default is not None and macro.n_args:
                opt = self.read_optional()
                args.append(macro.default if opt is None else opt)
            while len(args) < macro.n_args:
                args.append(self.read_argument())
        body = substitute(macro.body, args)
        self.expanded += 1
        self.budget -= len(body)
        if self.expanded > self.cfg.max_expansions:
            self.stopped = f"more than {self.cfg.max_expansions} macro uses"
        elif self.budget < 0:
            self.stopped = f"expanded text over {self.cfg.max_growth}x the input"
        if self.stopped:
            return
        if _WORD_END.search(body):
            body += " "  # a body ending in a control word must not fuse with the letters after it
        self.frames.append([body, 0, depth + 1])

    def read_def_args(self, macro: Macro, word: bool) -> list[str]:
        if word:
            self.skip_blanks_after_word()
        if macro.prefix:
            f = self.top()
            if not f[0].startswith(macro.prefix, f[1]):
                raise _ArgumentError("the text after the macro does not match its definition")
            f[1] += len(macro.prefix)
        return [self.read_delimited(d) if d else self.read_argument() for d in macro.delimiters]

    # -- definitions ----------------------------------------------------------------------------------
    def define(self, name: str) -> bool:
        if name in PREFIXES:
            self.skip_spaces()
            f = self.top()
            m = _CONTROL.match(f[0], f[1])
            if not m or m.group(1) not in DEFS | PREFIXES | {"let"}:
                return False
            f[1] = m.end()
            return self.define(m.group(1))
        if name in NEWCOMMANDS:
            self.define_newcommand(name)
        elif name in DEFS:
            self.define_def()
        elif name == "let":
            self.define_let()
        elif name == "DeclareMathOperator":
            self.define_operator()
        else:
            return False
        return True

    def target(self) -> str:
        self.skip_spaces()
        if self.peek() == "{":
            inner = self.read_group().strip()
            m = _CONTROL.fullmatch(inner)
            if not m:
                raise _ArgumentError(f"not a command name: {inner[:40]!r}")
            return m.group(1)
        if self.peek() != "\\":
            raise _ArgumentError("no command name")
        return self.read_control()

    def register(self, name: str, macro: Macro, only_new: bool = False) -> None:
        if name in PROTECTED or (only_new and name in self.macros):
            return
        self.macros[name] = macro

    def define_newcommand(self, kind: str) -> None:
        if self.peek() == "*":
            self.top()[1] += 1
        name = self.target()
        n = self.read_optional()
        if n is not None and not n.strip().isdigit():
            raise _ArgumentError(f"bad argument count {n!r}")
        n_args = int(n) if n is not None else 0
        default = self.read_optional() if n_args else None
        body = self.read_argument()
        self.register(name, Macro(body, min(n_args, 9), default), only_new=kind == "providecommand")

    def define_def(self) -> None:
        self.skip_spaces()
        name = self.read_control()
        f = self.top()
        text, pos = f[0], f[1]
        brace = text.find("{", pos, pos + 200)
        if brace < 0:
            raise _ArgumentError("no body after \\def")
        params = text[pos:brace]
        f[1] = brace
        prefix, delimiters = parse_parameters(params)
        body = self.read_group()
        self.register(name, Macro(body, len(delimiters), None, prefix, delimiters)
                      if prefix or any(delimiters) else Macro(body, len(delimiters)))

    def define_let(self) -> None:
        self.skip_spaces()
        name = self.read_control()
        self.skip_spaces()
        if self.peek() == "=":
            self.top()[1] += 1
            f = self.top()
            if f[0].startswith(" ", f[1]):
                f[1] += 1
        self.skip_spaces()
        if self.peek() == "\\":
            source = self.read_control()
            alias = self.macros.get(source)
            self.register(name, dataclasses.replace(alias) if alias else Macro("\\" + source))
        elif self.peek():
            c = self.peek()
            self.top()[1] += 1
            self.register(name, Macro(c))
        else:
            raise _ArgumentError("nothing after \\let")

    def define_operator(self) -> None:
        star = self.peek() == "*"
        if star:
            self.top()[1] += 1
        name = self.target()
        body = self.read_argument()
        self.register(name, Macro(f"\\operatorname{'*' if star else ''}{{{body}}}"))

    # -- verbatim -------------------------------------------------------------------------------------
    def verbatim_env(self) -> bool:
        f = self.top()
        m = _VERBATIM_BEGIN.match(f[0], f[1])
        if not m:
            return False
        end = f[0].find("\\end{" + m.group(1) + "}", m.end())
        stop = len(f[0]) if end < 0 else end + len(m.group(1)) + 6
        self.emit("\\begin" + f[0][f[1]:stop])
        f[1] = stop
        return True

    def copy_verb(self) -> None:
        f = self.top()
        text, pos = f[0], f[1]
        if pos < len(text) and text[pos] == "*":
            pos += 1
        if pos >= len(text):
            self.emit("\\verb")
            return
        end = text.find(text[pos], pos + 1)
        stop = len(text) if end < 0 else end + 1
        self.emit("\\verb" + text[f[1]:stop])
        f[1] = stop


def parse_parameters(params: str) -> tuple[str, tuple[str, ...]]:
    """`\\def` parameter text -> (text before #1, the delimiter after each argument)."""
    parts = re.split(r"#([1-9])", params)
    numbers = parts[1::2]
    if numbers != [str(i) for i in range(1, len(numbers) + 1)]:
        raise _ArgumentError(f"parameters out of order: {params[:40]!r}")
    return parts[0].strip(), tuple(p.strip() if p.strip() else "" for p in parts[2::2])


def substitute(body: str, args: list[str]) -> str:
    """Put the arguments in place of #1..#9 (`##` becomes `#`), without fusing a control word with the
    letters next to it."""
    out, last = [], 0
    for m in _PARAM.finditer(body):
        out.append(body[last:m.start()])
        last = m.end()
        if m.group(1) == "#":
            out.append("#")
            continue
        k = int(m.group(1)) - 1
        arg = args[k] if k < len(args) else m.group(0)
        if arg and _LETTER.match(arg) and _WORD_END.search(body[:m.start()]):
            arg = " " + arg
        if _WORD_END.search(arg) and _LETTER.match(body[m.end():m.end() + 1]):
            arg += " "
        out.append(arg)
    out.append(body[last:])
    return "".join(out)


def _is_one_group(arg: str) -> bool:
    if len(arg) < 2 or arg[0] != "{" or arg[-1] != "}":
        return False
    depth = 0
    for m in _BRACES.finditer(arg):
        depth += (m.group() == "{") - (m.group() == "}")
        if depth == 0 and m.end() < len(arg):
            return False
    return True


def expand_macros(text: str, expander: Expander | None = None) -> Expansion:
    """Expand the user macros of a whole LaTeX document: the preamble (up to `\\begin{document}`) only
    defines (it is copied unexpanded), the body is expanded with everything defined so far."""
    expander = expander or Expander()
    m = re.search(r"\\begin\s*\{document\}", text)
    macros: dict[str, Macro] = {}
    if not m:
        return expander.expand(text, macros)
    pre = expander.expand(text[:m.start()], macros)
    body = expander.expand(text[m.start():], macros)
    return Expansion(text[:m.start()] + body.text, pre.defined + body.defined, body.expanded,
                     body.stopped or pre.stopped)
