"""The Wikipedia source: wikitext to prose, the dump reader's site info and damage handling, the job's funnel
on the sample with bad dumps beside it, and byte-identical reruns."""
import bz2
import io
import json
import subprocess
import sys

import pytest

from helpers import LOCAL, read_rows, source_command
from pipeline.schema import DeadLetter, Document, Rejected
from pipeline.sources.job import run
from smallgiant.samples.wikipedia import dump_bytes, page_xml, write_sample
from pipeline.sources.wikipedia import LANGUAGES, WikipediaSource
from pipeline.sources.wikipedia_text import wikitext_to_text
from pipeline.wikidump import SiteInfo, is_disambiguation, read_dump

# ---------------------------------------------------------------- wikitext -> prose


def test_nested_templates_go_whole():
    text = ("{{Infobox settlement\n| name = {{nowrap|Alpha {{small|{{lang|fr|ville}}}}}}\n"
            "| pop = {{formatnum:{{#expr:2*3}}}}\n}}\n'''Alpha''' is a town.{{efn|Note {{as of|2020}}}}")
    assert wikitext_to_text(text) == "Alpha is a town."


def test_tables_references_and_comments_go():
    text = ("Before the table.<ref name=\"a\">{{cite web|url=https://x.example|title={{lang|en|T}}}}</ref>\n"
            "{| class=\"wikitable\"\n|+ Caption\n! Year !! Value\n|-\n| 2010 || {{formatnum:1200}}\n|}\n"
            "After<ref name=\"a\" /> it.<!-- a hidden note --> End.\n<references />\n"
            "Last line. <!-- unclosed comment hides the rest\nHidden text.")
    assert wikitext_to_text(text) == "Before the table.\n\nAfter it. End.\n\nLast line."


def test_links_become_their_text():
    text = ("A [[Paris]] and [[Paris|the capital]] and [[bus]]es, [[Paris, Texas|]], [[Mercury (planet)|]], "
            "[https://x.example the site], [https://y.example] and https://z.example/ end, "
            "[[:Category:Towns]] and [[wikt:word|a word]].")
    assert wikitext_to_text(text) == ("A Paris and the capital and buses, Paris, Mercury, the site, and end, "
                                      "Category:Towns and a word.")


def test_files_categories_and_interlanguage_links_go_in_any_of_the_languages():
    text = ("Text [[File:A.jpg|thumb|A [[nested|link]] in a caption]] stays.\n"
            "[[Datei:B.png|mini|Bild]] [[Fichier:C.svg]] [[Файл:D.jpg|thumb|x]] [[Bild:E.jpg]]\n"
            "[[Category:Towns]] [[Kategorie:Orte]] [[Catégorie:Villes| ]] [[Категория:Города]]\n"
            "[[de:Alpha]] [[fr:Alpha]] [[Unknownspace:Map.svg|thumb|y]]")
    assert wikitext_to_text(text) == "Text stays."


def test_formatting_markup_goes_and_its_text_stays():
    text = ("'''Bold''' and ''italic'' and '''''both''''' &amp; &ndash; <span style=\"x\">span</span> "
            "<small>small</small>.<br />New line.\n* item one\n# item two\n; term : definition\n----\n"
            "__NOTOC__ Switch gone.")
    assert wikitext_to_text(text) == ("Bold and italic and both & – span small.\nNew line.\nitem one\n"
                                      "item two\nterm definition\n\nSwitch gone.")


def test_code_and_nowiki_keep_their_markup_as_text():
    text = ("Write <nowiki>{{cite}}</nowiki> in the page.\n<syntaxhighlight lang=\"lua\">\nlocal t = {[1] = 'a'}\n"
            "| not a table row\n</syntaxhighlight>\nAfter the code.<ref>an unclosed reference")
    assert wikitext_to_text(text) == ("Write {{cite}} in the page.\n\nlocal t = {[1] = 'a'}\n| not a table row\n\n"
                                      "After the code.an unclosed reference")


def test_section_titles_stay_as_lines_and_empty_sections_go():
    text = ("Lead.\n== History ==\nOld times.\n=== Early ===\nVery old.\n=== Empty sub ===\n{{Main|X}}\n"
            "== References ==\n{{Reflist}}\n<references />\n== See also ==\n=== Nothing ===\n"
            "== Links ==\n* [https://a.example Official site]\n")
    assert wikitext_to_text(text) == ("Lead.\n\nHistory\nOld times.\n\nEarly\nVery old.\n\nLinks\n"
                                      "Official site")


@pytest.mark.parametrize("text", [
    "", "{{", "}}", "[[", "{{{{ [[[[ ]]]] }}}}", "{| broken table", "<ref>unclosed", "'''", "== ==",
    "{{Infobox\n| name = X\n| born = {{date|1900}}\nText after a broken infobox.",
])
def test_broken_markup_never_raises_and_leaves_no_braces(text):
    out = wikitext_to_text(text)
    assert "{{" not in out and "}}" not in out and "[[" not in out


def test_broken_infobox_leaves_only_prose():
    assert wikitext_to_text("{{Infobox\n| name = X\n| born = {{date|1900}}\nText after it.") == "Text after it."


# ---------------------------------------------------------------- the dump


def test_language_and_urls_come_from_the_dump():
    site = SiteInfo(dbname="dewiki", base="https://de.wikipedia.org/wiki/Wikipedia:Hauptseite")
    assert site.language == "de"
    assert site.page_url("Köln Bonn") == "https://de.wikipedia.org/wiki/K%C3%B6ln_Bonn"
    assert SiteInfo(dbname="zh_min_nanwiki").language == "zh-min-nan"
    assert SiteInfo(base="https://sr.wikipedia.org/wiki/Main").language == "sr"
    assert SiteInfo(xml_lang="CA").language == "ca"
    assert SiteInfo().language == ""
    with_site = list(read_dump(io.BytesIO(dump_bytes("fr", []))))
    assert len(with_site) == 1 and with_site[0].language == "fr" and with_site[0].dbname == "frwiki"
    assert dict(with_site[0].namespaces)[14] == "Catégorie"


@pytest.mark.parametrize("text, disambiguation", [
    ("x {{Disambiguation}}", True), ("x {{disambig|geo}}", True), ("x {{Begriffsklärung}}", True),
    ("x {{Homonymie}}", True), ("x {{ Неоднозначность }}", True), ("x {{Ujednoznacznienie}}", True),
    ("x {{Disambiguation needed|date=May 2020}}", False), ("x {{Homonymie du nom}}", False),
])
def test_disambiguation_pages_in_the_20_languages(text, disambiguation):
    assert is_disambiguation(text) == disambiguation


def _read(tmp_path, name: str, data: bytes, languages=LANGUAGES):
    path = tmp_path / name
    path.write_bytes(data)
    return list(WikipediaSource(languages).read(str(path)))


def _article(title, page_id, text=None):
    return page_xml(title, 0, page_id, text or f"'''{title}''' is a [[place]] in the valley.")


def test_read_keeps_articles_rejects_redirects_and_disambiguations_and_skips_other_namespaces(tmp_path):
    pages = [_article("Alpha", 1), page_xml("Talk:Alpha", 1, 2, "Chat."),
             page_xml("Old Alpha", 0, 3, "#REDIRECT [[Alpha]]", redirect="Alpha"),
             page_xml("Beta", 0, 4, "'''Beta''' may mean:\n* [[B1]]\n{{Begriffsklärung}}"),
             page_xml("Gamma", 0, 5, "#redirect [[Alpha]]")]
    items = _read(tmp_path, "dewiki-1-pages-articles.xml", dump_bytes("de", pages))
    docs = [i for i in items if isinstance(i, Document)]
    assert [(d.id, d.url) for d in docs] == [("wikipedia/de/1", "https://de.wikipedia.org/wiki/Alpha")]
    assert docs[0].metadata == {"language": "de", "title": "Alpha", "page_id": 1,
                                "revision_timestamp": "2022-06-15T08:30:00Z", "wiki": "dewiki"}
    assert [(r.doc.id, r.stage) for r in items if isinstance(r, Rejected)] == [
        ("wikipedia/de/3", "redirect"), ("wikipedia/de/4", "disambiguation"), ("wikipedia/de/5", "redirect")]


def test_a_dump_in_another_language_is_one_dead_letter(tmp_path):
    items = _read(tmp_path, "jawiki.xml", dump_bytes("ja", [_article("Alpha", 1)]))
    assert len(items) == 1 and isinstance(items[0], DeadLetter)
    assert "language 'ja' is not one of --languages" in items[0].reason
    assert [type(i) for i in _read(tmp_path, "jawiki.xml", dump_bytes("ja", [_article("A", 1)]), None)] == [Document]


def test_damaged_pages_are_dead_letters_and_reading_goes_on(tmp_path):
    good = [_article(f"Page {i}", i) for i in range(1, 6)]
    broken_tag = good[1].replace("</title>", "</titel>")
    undecodable = good[2].encode().replace(b"valley", b"val\xff\xfeley")
    no_end = good[3].replace("</page>", "")
    data = dump_bytes("en", [good[0], broken_tag]).replace(b"</mediawiki>\n", b"") + undecodable + \
        dump_bytes("en", [no_end, good[4]]).split(b"</siteinfo>\n", 1)[1]
    items = _read(tmp_path, "enwiki.xml", data)
    assert [i.id for i in items if isinstance(i, Document)] == ["wikipedia/en/1", "wikipedia/en/5"]
    dead = [i for i in items if isinstance(i, DeadLetter)]
    assert [d.record_id for d in dead] == ["Page 2", "Page 3", "Page 4"]
    assert "cannot be parsed: ParseError: mismatched tag" in dead[0].reason
    assert "cannot be parsed: ParseError: not well-formed (invalid token)" in dead[1].reason
    assert "without its </page>" in dead[2].reason and dead[2].offset > 0


def test_a_truncated_archive_keeps_the_pages_before_the_cut(tmp_path):
    pages = [_article(f"Page {i}", i) for i in range(1, 5)]
    streams = [bz2.compress(dump_bytes("en", pages[:2]).replace(b"</mediawiki>\n", b"")),
               bz2.compress("".join(pages[2:]).encode() + b"</mediawiki>\n")]
    data = streams[0] + streams[1][: len(streams[1]) // 2]
    items = _read(tmp_path, "enwiki.xml.bz2", data)
    assert [i.id for i in items if isinstance(i, Document)] == ["wikipedia/en/1", "wikipedia/en/2"]
    assert isinstance(items[-1], DeadLetter) and "truncated or corrupt after 2 pages" in items[-1].reason


def test_a_file_that_is_not_a_dump_is_one_dead_letter(tmp_path):
    items = _read(tmp_path, "notes.txt", b"just some text\n")
    assert len(items) == 1 and "not a MediaWiki dump" in items[0].reason


def test_a_directory_stands_for_its_pages_articles_dumps(tmp_path):
    names = ["enwiki-20220701-pages-articles-multistream-index1.txt-p1p500.bz2", "enwiki-20220701-md5sums.txt",
             "enwiki-20220701-pages-articles2.xml-p501p900.bz2", "enwiki-20220701-pages-articles1.xml-p1p500.bz2",
             "enwiki-20220701-abstract.xml.gz"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [p.rsplit("/", 1)[1] for p in WikipediaSource().files(str(tmp_path))] == [names[3], names[2]]
    assert len(WikipediaSource().files(f"{tmp_path},{tmp_path / names[3]}", max_files=5)) == 2


def test_the_pipeline_never_imports_the_classifier():
    code = ("import sys, pipeline.wikidump, pipeline.sources.wikipedia, pipeline.sources.wikipedia_text; "
            "print(any(m.split('.')[0] == 'classifier' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- the job


def _bad_dumps(directory) -> list[str]:
    """A truncated bz2 dump (2 whole pages before the cut), a dump with a malformed page between two good
    ones, and a page whose bytes are not UTF-8 after a good one."""
    directory.mkdir()
    good = [_article(f"Bad dump page {i}", 900 + i) for i in range(6)]
    whole = bz2.compress(dump_bytes("en", good[:2]).replace(b"</mediawiki>\n", b""))
    rest = bz2.compress("".join(good[2:4]).encode() + b"</mediawiki>\n")
    files = {"enwiki-truncated.xml.bz2": whole + rest[:len(rest) // 2],
             "enwiki-malformed.xml": dump_bytes("en", [good[4], "  <page><title>X</title><ns>zero</ns></page>\n",
                                                       good[5]]),
             "enwiki-undecodable.xml": dump_bytes("en", good[2:4]).replace(b"valley.", b"\xc3\x28valley.", 1)}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return [str(directory / name) for name in files]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("wikipedia")
    spec = ",".join([write_sample(str(root / "sample"), articles=3)] + _bad_dumps(root / "bad"))
    args = source_command(["wikipedia", "--input", spec, "--output", str(root / "out"), "--output-shards", "2"])
    assert args.func(args, LOCAL) == 0
    return spec, root


def test_funnel_on_the_sample_with_bad_dumps(sample_run):
    spec, root = sample_run
    stats = json.loads((root / "out" / "stats.json").read_text())
    rows = {r["stage"]: (r["docs_in"], r["docs_out"]) for r in stats["stages"]}
    # 4 wikis x (3 articles + 1 redirect + 1 disambiguation + 1 page of templates only) + 2 + 2 + 1 good pages
    # of the bad dumps; the Japanese dump is not read; a talk and a template page per wiki are skipped
    assert rows == {"read": (29, 29), "redirect": (29, 25), "disambiguation": (25, 21), "clean": (21, 17)}
    assert stats["languages"] == {"en": 8, "de": 3, "es": 3, "fr": 3}
    assert stats["skipped_records"] == 8 and stats["dead_letters"] == 4
    dead = sorted(r["reason"] for r in read_rows(str(root / "out" / "dead_letters")))
    expected = ["dump is truncated or corrupt after 2 pages: Compressed file ended",
                "dump of jawiki: language 'ja' is not one of --languages",
                "page cannot be parsed: ParseError: not well-formed (invalid token)",
                "page cannot be parsed: ValueError: invalid literal for int()"]
    assert len(dead) == len(expected) and all(r.startswith(e) for r, e in zip(dead, expected)), dead
    docs = read_rows(str(root / "out" / "docs"))
    assert len({d["id"] for d in docs}) == 17
    assert {d["id"] for d in docs} >= {"wikipedia/en/900", "wikipedia/en/901", "wikipedia/en/903",
                                       "wikipedia/en/904", "wikipedia/en/905"}
    markup = ("{{", "}}", "[[", "]]", "<ref", "''", "{|", "==", "Category", "thumb", "<!--")
    assert not [d["id"] for d in docs if any(m in d["text"] for m in markup)]


def test_reruns_write_the_same_bytes(sample_run, tmp_path):
    spec, root = sample_run
    run(WikipediaSource(), spec, str(tmp_path / "again"), LOCAL, output_shards=2)
    first = sorted((root / "out" / "docs").glob("*.parquet"))
    second = sorted((tmp_path / "again" / "docs").glob("*.parquet"))
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
