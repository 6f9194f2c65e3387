"""A sample of Wikipedia pages-articles dumps: four wikis of the 20 (English as a multistream bz2, German and
Spanish as bz2, French as plain XML) and one of a language outside them (Japanese, skipped whole).

Articles are made of generated sentences wrapped in the markup real articles carry, so the cleaning has
something to do: infoboxes with templates nested three deep, citation templates inside `<ref>`s, named
and self-closing refs, "citation needed" templates, comments (one unclosed), tables holding templates, files
with captions holding links, piped, plain and pipe-trick links, external links, bold and italics, lists,
HTML entities, `<br>`, sections and subsections, reference sections that end up empty, categories and
interlanguage links. Each wiki also holds redirects, disambiguation pages (English and local templates), a
page made only of templates (no prose), and talk and template pages (other namespaces).
"""
from __future__ import annotations

import bz2
import os
import random
from xml.sax.saxutils import escape, quoteattr

from pipeline.runtime.guard import write_atomically
from smallgiant.samples.crawl import GRAMMAR, sentence

NS = "http://www.mediawiki.org/xml/export-0.10/"
DATE = "20220701"
WIKIS = {  # language: (main page, file, category, template namespaces, disambiguation template, grammar)
    "en": ("Main_Page", "File", "Category", "Template", "Disambiguation", "en"),
    "de": ("Wikipedia:Hauptseite", "Datei", "Kategorie", "Vorlage", "Begriffsklärung", "de"),
    "fr": ("Wikipédia:Accueil_principal", "Fichier", "Catégorie", "Modèle", "Homonymie", "fr"),
    "es": ("Wikipedia:Portada", "Archivo", "Categoría", "Plantilla", "Desambiguación", "es"),
    "ja": ("メインページ", "ファイル", "Category", "Template", "Aimai", "en"),
}
SECTIONS = {
    "en": ["History", "Geography", "Culture", "Economy", "Notable people"],
    "de": ["Geschichte", "Geographie", "Kultur", "Wirtschaft", "Persönlichkeiten"],
    "fr": ["Histoire", "Géographie", "Culture", "Économie", "Personnalités"],
    "es": ["Historia", "Geografía", "Cultura", "Economía", "Personajes"],
}
REFERENCES = {"en": "References", "de": "Einzelnachweise", "fr": "Références", "es": "Referencias"}
FILES = {  # name of each dump, and how it is stored
    "en": f"enwiki-{DATE}-pages-articles-multistream1.xml-p1p500.bz2",
    "de": f"dewiki-{DATE}-pages-articles.xml.bz2",
    "fr": f"frwiki-{DATE}-pages-articles.xml",
    "es": f"eswiki-{DATE}-pages-articles.xml.bz2",
    "ja": f"jawiki-{DATE}-pages-articles.xml.bz2",
}


def write_sample(directory: str, articles: int = 40, seed: int = 0) -> str:
    """Write the five dumps into `directory` (`articles` articles per wiki) and return the --input glob."""
    os.makedirs(directory, exist_ok=True)
    for lang, name in FILES.items():
        rng = random.Random(f"{seed}:{lang}")
        pages = _pages(rng, lang, articles if lang != "ja" else 2)
        write_atomically(os.path.join(directory, name), _dump(lang, pages, multistream=lang == "en"))
    return os.path.join(directory, "*wiki-*-pages-articles*")


def _header(lang: str) -> str:
    main, file_ns, cat_ns, tpl_ns, _, _ = WIKIS[lang]
    names = {-2: "Media", -1: "Special", 0: "", 1: "Talk", 6: file_ns, 10: tpl_ns, 14: cat_ns}
    spaces = "".join(f'      <namespace key="{k}" case="first-letter">{escape(v)}</namespace>\n' if v else
                     f'      <namespace key="{k}" case="first-letter" />\n' for k, v in names.items())
    return (f'<mediawiki xmlns="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{NS} {NS[:-1]}.xsd" version="0.10" xml:lang="{lang}">\n'
            f"  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    <dbname>{lang}wiki</dbname>\n"
            f"    <base>https://{lang}.wikipedia.org/wiki/{escape(main)}</base>\n"
            f"    <generator>MediaWiki 1.39.0-wmf.18</generator>\n    <case>first-letter</case>\n"
            f"    <namespaces>\n{spaces}    </namespaces>\n  </siteinfo>\n")


def page_xml(title: str, ns: int, page_id: int, text: str, redirect: str | None = None,
             timestamp: str = "2022-06-15T08:30:00Z") -> str:
    """One <page> element as a pages-articles dump writes it."""
    redirect_xml = f"    <redirect title={quoteattr(redirect)} />\n" if redirect else ""
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n"
            f"{redirect_xml}    <revision>\n      <id>{page_id * 1000 + 7}</id>\n"
            f"      <timestamp>{timestamp}</timestamp>\n"
            f"      <contributor>\n        <username>Editor</username>\n        <id>42</id>\n      </contributor>\n"
            f"      <model>wikitext</model>\n      <format>text/x-wiki</format>\n"
            f'      <text bytes="{len(text.encode())}" xml:space="preserve">{escape(text)}</text>\n'
            f"      <sha1>0</sha1>\n    </revision>\n  </page>\n")


def dump_bytes(lang: str, pages: list[str]) -> bytes:
    """A plain pages-articles dump of `lang` holding the given <page> elements."""
    return (_header(lang) + "".join(pages) + "</mediawiki>\n").encode("utf-8")


def _dump(lang: str, pages: list[str], multistream: bool) -> bytes:
    if lang == "fr":
        return dump_bytes(lang, pages)
    if not multistream:
        return bz2.compress(dump_bytes(lang, pages))
    # Wikimedia's multistream layout: the header, then one bz2 stream per 100 pages, then the footer
    streams = [_header(lang)] + ["".join(pages[i:i + 100]) for i in range(0, len(pages), 100)] + ["</mediawiki>\n"]
    return b"".join(bz2.compress(s.encode("utf-8")) for s in streams)


def _title(rng: random.Random, lang: str, used: set[str]) -> str:
    """A new title made of two noun phrases of the grammar ("The broken bridge and a quiet garden")."""
    objects = GRAMMAR[WIKIS[lang][5]]["obj"]
    if len(used) >= len(objects) * (len(objects) - 1):
        raise ValueError(f"the {lang} grammar has no more distinct titles: ask for fewer articles")
    while True:
        a, b = rng.sample(objects, 2)
        title = f"{a[0].upper()}{a[1:]} and {b}"
        if title not in used:
            used.add(title)
            return title


def _pages(rng: random.Random, lang: str, n_articles: int) -> list[str]:
    _, file_ns, cat_ns, tpl_ns, dab, grammar = WIKIS[lang]
    used_sentences: set[str] = set()
    titles: set[str] = set()
    names = [_title(rng, lang, titles) for _ in range(n_articles)]
    pages, page_id = [], 1
    for i, title in enumerate(names):
        text = _article(rng, lang, title, names, used_sentences) if lang != "ja" else \
            " ".join(sentence(rng, grammar, used_sentences) for _ in range(6))
        pages.append(page_xml(title, 0, page_id, text))
        page_id += 1
        if i % 5 == 0:  # a redirect to it, and its talk page
            pages.append(page_xml(f"{title} (old name)", 0, page_id, f"#REDIRECT [[{title}]]\n{{{{R from move}}}}",
                                  redirect=title))
            pages.append(page_xml(f"Talk:{title}", 1, page_id + 1, sentence(rng, grammar, used_sentences)))
            page_id += 2
        if i % 8 == 1:  # a disambiguation page, with the local template or the English one
            template = dab if i % 16 == 1 else "disambig"
            items = "\n".join(f"* [[{t}]]" for t in rng.sample(names, min(3, len(names))))
            pages.append(page_xml(f"{title.split()[0]} (disambiguation)", 0, page_id,
                                  f"'''{title.split()[0]}''' may refer to:\n{items}\n{{{{{template}}}}}"))
            page_id += 1
    pages.append(page_xml(f"{tpl_ns}:Infobox place", 10, page_id, "{| class=infobox\n| {{{name}}}\n|}"))
    pages.append(page_xml(f"{names[0]} list", 0, page_id + 1,
                          f"{{{{Infobox list|{{{{nowrap|x}}}}}}}}\n{{| class=wikitable\n| a || b\n|}}\n"
                          f"[[{cat_ns}:Lists]]"))
    return pages


def _decorated(rng: random.Random, sentence: str, names: list[str], lang: str) -> str:
    """A sentence with markup on one of its words and, sometimes, a reference or a maintenance tag."""
    words = sentence.split()
    k = rng.randrange(1, len(words) - 1)
    style = rng.randrange(6)
    if style == 0:
        words[k] = f"[[{rng.choice(names)}|{words[k]}]]"
    elif style == 1:
        words[k] = f"[[{words[k]}]]"
    elif style == 2:
        words[k] = f"''{words[k]}''"
    elif style == 3:
        words[k] = f"'''{words[k]}'''"
    elif style == 4:
        words[k] = f"[[{words[k]} (topic)|]]"  # the pipe trick: shows the word
    text = " ".join(words)
    tail = rng.randrange(8)
    if tail == 0:
        text += f'<ref name="r{rng.randrange(3)}">{{{{cite web |url=https://source.example/{rng.randrange(999)} ' \
                f'|title={{{{lang|{lang}|{words[0]}}}}} |access-date=2022-05-01}}}}</ref>'
    elif tail == 1:
        text += f'<ref name="r{rng.randrange(3)}" />'
    elif tail == 2:
        text += "{{citation needed|date=May 2022}}"
    elif tail == 3:
        text += "<!-- check this sentence -->"
    return text


def _paragraph(rng: random.Random, lang: str, names: list[str], used: set[str]) -> str:
    return " ".join(_decorated(rng, sentence(rng, lang, used), names, lang) for _ in range(rng.randint(3, 5)))


def _article(rng: random.Random, lang: str, title: str, names: list[str], used: set[str]) -> str:
    _, file_ns, cat_ns, _, _, _ = WIKIS[lang]
    population = rng.randrange(1000, 90000)
    parts = [
        "{{Short description|A place}}",
        f"{{{{Infobox settlement\n| name = {title}\n"
        f"| image = {{{{#if:{{{{{{img|}}}}}}|[[{file_ns}:Town.jpg|250px]]|}}}}\n"
        f"| population = {{{{formatnum:{population}}}}}{{{{efn|Estimate {{{{as of|2020}}}}}}}}\n}}}}",
        f"'''{title}''' ({{{{IPA|/x/}}}}; {{{{lang|{lang}|{title}}}}}) &ndash; "
        + _paragraph(rng, lang, names, used),
        _paragraph(rng, lang, names, used),
    ]
    for h, heading in enumerate(rng.sample(SECTIONS[lang], 3)):
        parts.append(f"== {heading} ==")
        parts.append(_paragraph(rng, lang, names, used))
        if h == 0:
            parts.append(f"[[{file_ns}:View of {title}.jpg|thumb|upright|The [[{rng.choice(names)}]] "
                         f"seen from the hill]]")
            parts.append(f"=== {heading} II ===")
            parts.append(_paragraph(rng, lang, names, used) + "<br />" + sentence(rng, lang, used))
        if h == 1:
            parts.append("{| class=\"wikitable\"\n|+ Figures\n|-\n! Year !! Value\n|-\n| 2010 || "
                         "{{formatnum:1200}}\n|-\n| 2020 || {{nts|{{#expr:2*700}}}}\n|}")
            parts.append("\n".join(f"* {_decorated(rng, sentence(rng, lang, used), names, lang)}"
                                   for _ in range(3)))
        if h == 2:
            parts.append(_paragraph(rng, lang, names, used))
    parts += [f"== {REFERENCES[lang]} ==", "{{Reflist}}", "<references />",
              f"== Links ==\n* [https://{lang}.example.org/{population} {title} &amp; more]\n* https://bare.example/",
              "{{Navbox places}}", f"[[{cat_ns}:Places]]\n[[{cat_ns}:{title}| ]]",
              f"[[{'de' if lang != 'de' else 'en'}:{title}]] <!-- an unclosed comment\n[[fr:{title}]]"]
    return "\n\n".join(parts)
