"""Wikitext to prose, with a real wikitext parser (mwparserfromhell).

What a reader of the rendered article sees as running text stays; the rest goes:
- links become their text: `[[Target|text]]` -> "text", `[[Target]]` -> "Target", `[http://x label]` ->
  "label"; bare URLs and unlabelled external links go;
- templates (infoboxes, citations, navboxes, parser functions: any depth of nesting), template arguments,
  comments, tables, `<ref>`s and reference lists, galleries, math and the other extension tags that render
  no prose go; so do file/image/media links with their captions, category links and interlanguage links
  (namespace names in English and in the 20 languages, plus any link to a media file by its extension);
- formatting markup (bold, italics, list bullets and indentation, HTML tags such as `<span>`, `<small>`)
  goes and its text stays; entities are decoded; `<br>` breaks the line;
- section titles stay as lines of their own, without the `=` marks; a section left without text (e.g.
  "References" once its reference list is gone) loses its title too.
"""
from __future__ import annotations

import html
import re

import mwparserfromhell
from mwparserfromhell.nodes import ExternalLink, Heading, HTMLEntity, Tag, Text, Wikilink

HEADING_MARK = "\ue000"   # private-use character: "this line is a heading of level <next char>"
# Markup characters inside <nowiki>, <pre> and code blocks are text: they travel as private-use stand-ins
# through the clean-up of leftover markup and are restored at the end.
_PROTECT = str.maketrans("{}[]|!'<>", "\ue001\ue002\ue003\ue004\ue005\ue006\ue007\ue008\ue009")
_RESTORE = {v: k for k, v in _PROTECT.items()}
_PRIVATE = re.compile("[\ue000-\ue009]")
RAW_TAGS = frozenset({"nowiki", "pre", "syntaxhighlight", "source"})
DROPPED_TAGS = frozenset({
    "ref", "references", "table", "gallery", "imagemap", "timeline", "graph", "mapframe", "maplink",
    "templatedata", "templatestyles", "math", "chem", "ce", "score", "hiero", "includeonly", "inputbox",
    "categorytree", "indicator", "section", "charinsert", "rss", "dynamicpagelist",
})
BREAK_TAGS = frozenset({"br", "hr"})
BLOCK_TAGS = frozenset({"p", "div", "blockquote", "li", "ul", "ol", "dl", "center", "poem", "h1", "h2", "h3",
                        "h4", "h5", "h6"})
FILE_NAMESPACES = frozenset({
    "file", "image", "media", "файл", "картинка", "медия", "fitxer", "imatge", "soubor", "obrázek", "fil",
    "billede", "datei", "bild", "medium", "archivo", "imagen", "fichier", "média", "datoteka", "slika",
    "fájl", "kép", "immagine", "bestand", "afbeelding", "plik", "grafika", "ficheiro", "arquivo", "imagem",
    "fișier", "imagine", "изображение", "медиа", "датотека", "слика", "медиј", "зображення", "медіа",
})
CATEGORY_NAMESPACES = frozenset({
    "category", "категория", "categoria", "kategorie", "kategori", "categoría", "catégorie", "kategorija",
    "kategória", "categorie", "kategoria", "категорија", "категорія",
})
_MEDIA_FILE = re.compile(r"\.(?:jpe?g|png|gif|svg|tiff?|webp|xcf|ogg|ogv|oga|opus|webm|mp3|mpe?g|wav|flac|"
                         r"midi?|pdf|djvu|stl)\s*$", re.IGNORECASE)
_LANGUAGE_PREFIX = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]+)*$")
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)  # MediaWiki hides an unclosed comment to the end
_SWITCH = re.compile(r"__[A-Z]+__")
_LEFTOVER_LINE = re.compile(r"^(?:\{\||\|\}|\|-|\||!|\{\{|\}\})")
_LEFTOVER = re.compile(r"\{\{|\}\}|\[\[|\]\]|'{2,}")
_EMPTY_PARENS = re.compile(r"\(\s*[,;:]*\s*\)")
_PAREN_OPEN = re.compile(r"\(\s*[,;:]\s*")
_PAREN_CLOSE = re.compile(r"\s*[,;:]\s*\)")
_SPACE_BEFORE = re.compile(r"\s+([,.])(?=\s|$)")
# tags the parser left as text because they are not closed (an unclosed <ref> shows as text on the page)
_STRAY_TAG = re.compile(r"</?(?:ref|references|span|div|small|big|center|font|sup|sub|b|i|u|s|p|br|"
                        r"blockquote|code|tt|abbr|cite|nowiki|gallery|math|poem|includeonly|noinclude|"
                        r"onlyinclude|section|table|tr|td|th)\b[^<>]*>", re.IGNORECASE)


def wikitext_to_text(wikitext: str) -> str:
    """The prose of an article's wikitext: lines, paragraphs split by one blank line, headings as lines."""
    code = mwparserfromhell.parse(_COMMENT.sub("", _PRIVATE.sub("", wikitext)))
    return _tidy(_render(code)).translate(_RESTORE)


def _render(code) -> str:
    return "".join(_node(node) for node in code.nodes)


def _node(node) -> str:
    if isinstance(node, Text):
        return node.value
    if isinstance(node, Wikilink):
        return _wikilink(node)
    if isinstance(node, ExternalLink):
        return _render(node.title) if node.title is not None and node.brackets else ""
    if isinstance(node, Tag):
        return _tag(node)
    if isinstance(node, HTMLEntity):
        return node.normalize()
    if isinstance(node, Heading):
        title = " ".join(_render(node.title).split())
        return f"\n{HEADING_MARK}{node.level}{title}\n" if title else "\n"
    return ""  # templates, template arguments, comments


def _wikilink(link) -> str:
    title = " ".join(str(link.title).split())
    shown = title.startswith(":")  # [[:Category:X]] is a visible link to the category page
    title = title.lstrip(":")
    prefix, sep, rest = title.partition(":")
    if not shown and sep:
        space = prefix.strip().lower()
        if space in FILE_NAMESPACES or space in CATEGORY_NAMESPACES or _MEDIA_FILE.search(rest):
            return ""
        if _LANGUAGE_PREFIX.match(prefix.strip()) and link.text is None:
            return ""  # an interlanguage link: shown in the sidebar, not in the text
    if link.text is None:
        return title
    text = _render(link.text)
    if text.strip():
        return text
    # the pipe trick: [[Paris, Texas|]] shows "Paris", [[Mercury (planet)|]] shows "Mercury"
    return re.sub(r"\s*\(.*\)\s*$", "", (rest if sep else title)).split(",")[0].strip()


def _tag(tag) -> str:
    name = str(tag.tag).strip().lower()
    if name in DROPPED_TAGS:
        return ""
    if name in BREAK_TAGS:
        return "\n"
    if name in RAW_TAGS:
        raw = str(tag.contents) if tag.contents is not None else ""
        raw = html.unescape(raw) if name in ("nowiki", "pre") else raw
        return f"\n{raw.translate(_PROTECT)}\n" if name != "nowiki" else raw.translate(_PROTECT)
    if tag.wiki_markup and name in ("li", "dt", "dd"):
        return " "  # a list bullet or indentation: its text follows as plain nodes
    inner = _render(tag.contents) if tag.contents is not None else ""
    if name in BLOCK_TAGS:
        return f"\n{inner}\n"
    return inner


def _tidy(rendered: str) -> str:
    lines: list[str] = []
    for raw in rendered.split("\n"):
        if raw.startswith(HEADING_MARK):
            lines.append(raw)
            continue
        if _LEFTOVER_LINE.match(raw.strip()):
            continue  # the remains of a table or template whose closing marks are missing
        line = _LEFTOVER.sub("", _STRAY_TAG.sub("", _SWITCH.sub("", raw)))
        line = _PAREN_CLOSE.sub(")", _PAREN_OPEN.sub("(", _EMPTY_PARENS.sub("", line)))
        lines.append(_SPACE_BEFORE.sub(r"\1", " ".join(line.split())))
    return _paragraphs(_drop_empty_sections(lines))


def _drop_empty_sections(lines: list[str]) -> list[tuple[str, bool]]:
    """(line, is heading): headings with no text before the next heading of the same or a higher level go.
    Scanned backwards: has_text[L] says whether text follows since the nearest heading of level <= L."""
    has_text = [False] * 8
    kept: list[tuple[str, bool]] = []
    for line in reversed(lines):
        if line.startswith(HEADING_MARK):
            level = int(line[1])
            if has_text[level]:
                kept.append((line[2:], True))
            for deeper in range(level, len(has_text)):
                has_text[deeper] = False
        else:
            if line:
                has_text = [True] * len(has_text)
            kept.append((line, False))
    return kept[::-1]


def _paragraphs(lines: list[tuple[str, bool]]) -> str:
    """Paragraphs split by one blank line; a heading opens a paragraph and its text follows on the next line."""
    out: list[str] = []
    after_heading = False
    for line, heading in lines:
        if heading:
            if out and out[-1]:
                out.append("")
            out.append(line)
        elif line or (out and out[-1] and not after_heading):
            out.append(line)
        after_heading = heading or (after_heading and not line)
    return "\n".join(out).strip()
