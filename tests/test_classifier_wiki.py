"""URL keys, the Wikipedia dump reader and reference-URL extraction, on dumps and wikitext the tests write."""
import bz2
import gzip
import io
from xml.sax.saxutils import escape, quoteattr

import mwparserfromhell
import pytest
from hypothesis import given, settings, strategies as st

from classifier.urls import normalize_url
from classifier.wikidump import reference_urls
from pipeline.wikidump import DumpError, WikiPage, is_article, iter_pages

# ---------------------------------------------------------------- URL keys


@pytest.mark.parametrize("a, b", [
    ("http://example.org/a", "https://example.org/a"),
    ("HTTP://WWW.Example.ORG:80/a/", "https://example.org/a"),
    ("https://example.org/a#section", "https://example.org/a"),
    ("https://example.org/p?utm_source=x&id=3&fbclid=abc&UTM_medium=y", "https://example.org/p?id=3"),
    ("https://example.org/p?b=2&a=1&a=0", "https://example.org/p?a=0&a=1&b=2"),
    ("https://example.org/%7Euser", "https://example.org/~user"),
    ("https://example.org/", "https://example.org"),
    ("https://example.org//a//b//", "https://example.org/a/b"),
    ("  <https://user:pw@example.org.:443/a>  ", "http://example.org/a"),
    ("http://example.org:443/a", "https://example.org/a"),
])
def test_equivalent_urls_share_a_key(a, b):
    assert normalize_url(a) is not None
    assert normalize_url(a) == normalize_url(b)


@pytest.mark.parametrize("url, key", [
    ("https://www.example.org/a/", "example.org/a"),
    ("http://example.org:8080/a", "example.org:8080/a"),
    ("https://example.org/p?utm_source=x&id=3&fbclid=abc", "example.org/p?id=3"),
    ("https://example.org/p?utm_campaign=x", "example.org/p"),
    ("https://example.org/p?flag&x=", "example.org/p?flag=&x="),
    ("https://example.org/a b", "example.org/a%20b"),
    ("https://example.org/q?s=a+b", "example.org/q?s=a%20b"),
    ("https://example.org/[x]{y}\x00", "example.org/%5Bx%5D%7By%7D%00"),
    ("https://Bücher.DE/Straße", "bücher.de/Stra%C3%9Fe"),
    ("https://xn--bcher-kva.de/", "xn--bcher-kva.de"),
    ("https://[2001:DB8::1]:8443/", "[2001:db8::1]:8443"),
])
def test_keys(url, key):
    assert normalize_url(url) == key


def test_different_pages_get_different_keys():
    assert normalize_url("https://example.org:8080/a") != normalize_url("https://example.org/a")
    assert normalize_url("https://example.org/p?id=3") != normalize_url("https://example.org/p?id=4")
    assert normalize_url("https://example.org/a") != normalize_url("https://example.org/A")


@pytest.mark.parametrize("url", [
    "", "   ", "garbage", "example.org/a", "ftp://example.org/a", "mailto:someone@example.org",
    "javascript:alert(1)", "http://", "https:///path", "http:example.org", "https://exa mple.org/",
    "https://exa\tmple.org/", "https://exa\x00mple.org/", "https://example.org:99999/", "https://example.org:8o/",
    "https://exa<mple.org/", "https://.../",
])
def test_not_http_urls_give_none(url):
    assert normalize_url(url) is None


_URL_PIECES = st.sampled_from([
    "http://", "https://", "HTTPS://", "www.", ".", ":", ":80", ":443", ":8080", "/", "//", "?", "&", "=", "#",
    "%", "%7E", "%2F", "%25", "%C3", "%3F", "%2B", "+", "@", "[", "]", "[::1]", "utm_x=1", "a", "B", "ü", "İ",
    " ", "\t", "\x00", "\ud800", "<", ">",
])
_URLISH = st.lists(st.one_of(_URL_PIECES, st.text(max_size=3)), max_size=12).map("".join)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.one_of(st.text(), _URLISH, _URLISH.map(lambda s: "https://" + s)))
def test_normalize_url_never_raises_and_is_idempotent(text):
    key = normalize_url(text)
    if key is not None:
        assert normalize_url("https://" + key) == key


# ---------------------------------------------------------------- the dump

NS = "http://www.mediawiki.org/xml/export-0.10/"
HEADER = (f'<mediawiki xmlns="{NS}" version="0.10" xml:lang="en">\n'
          "  <siteinfo><sitename>Wikipedia</sitename><base>https://en.wikipedia.org/</base></siteinfo>\n")
FOOTER = "</mediawiki>\n"
ARTICLE_TEXT = "'''Alpha''' is a letter.<ref>{{cite web |url=https://alpha.example/ |title=A}}</ref>"

# title, ns, redirect target, revision texts (oldest first; None: a revision without <text>)
PAGES = [
    ("Alpha", 0, None, [ARTICLE_TEXT]),
    ("Talk:Alpha", 1, None, ["Is this right?"]),
    ("Old Alpha", 0, "Alpha", ["#REDIRECT [[Alpha]]"]),
    ("Mercury", 0, None, ["'''Mercury''' may refer to:\n* [[Mercury (planet)]]\n{{Disambiguation|geo}}"]),
    ("Beta", 0, None, ["'''Beta''' follows [[Alpha]].{{Disambiguation needed|date=May 2020}} & more"]),
    ("Saint Peter's Church", 0, None, ["'''Saint Peter's Church''' may be:\n{{set index article}}"]),
    ("Springfield", 0, None, ["Springfield may refer to several towns.\n{{ hndis }}\n{{Place name disambiguation}}"]),
    ("Gamma", 0, None, ["old text", "'''Gamma''' <b>new</b> text"]),
    ("Empty", 0, None, [None]),
]


def page_xml(title, ns, redirect, texts, page_id=1):
    revisions = "".join(
        f"    <revision><id>{page_id * 10 + i}</id>"
        + ("" if text is None else f'<text bytes="{len(text)}" xml:space="preserve">{escape(text)}</text>')
        + "</revision>\n"
        for i, text in enumerate(texts))
    redirect_xml = f"    <redirect title={quoteattr(redirect)} />\n" if redirect else ""
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n"
            f"{redirect_xml}{revisions}  </page>\n")


def page_chunks():
    return [page_xml(*p, page_id=i + 1) for i, p in enumerate(PAGES)]


def expected_pages():
    return [WikiPage(title, ns, redirect is not None, texts[-1] or "", id=i + 1)
            for i, (title, ns, redirect, texts) in enumerate(PAGES)]


def dump_xml() -> bytes:
    return (HEADER + "".join(page_chunks()) + FOOTER).encode()


def multistream_bz2() -> tuple[bytes, list[int]]:
    """One bz2 stream per page, as in Wikimedia's multistream dumps; also the end offset of each stream."""
    chunks = page_chunks()
    chunks[0] = HEADER + chunks[0]
    chunks[-1] += FOOTER
    data, ends = b"", []
    for chunk in chunks:
        data += bz2.compress(chunk.encode())
        ends.append(len(data))
    return data, ends


def read_all(path):
    with open(path, "rb") as f:
        return list(iter_pages(f))


@pytest.mark.parametrize("compress", [lambda b: b, bz2.compress, gzip.compress, lambda b: multistream_bz2()[0]],
                         ids=["plain", "bz2", "gzip", "bz2-multistream"])
def test_every_encoding_gives_the_same_pages(tmp_path, compress):
    path = tmp_path / "dump.xml"
    path.write_bytes(compress(dump_xml()))
    assert read_all(path) == expected_pages()


def test_is_article_keeps_main_namespace_pages_with_text_that_are_not_redirects_or_disambiguations(tmp_path):
    path = tmp_path / "dump.xml"
    path.write_bytes(dump_xml())
    assert [p.title for p in read_all(path) if is_article(p)] == ["Alpha", "Beta", "Gamma"]


def test_any_export_version_is_read():
    xml = dump_xml().replace(b"export-0.10", b"export-0.11")
    assert list(iter_pages(io.BytesIO(xml))) == expected_pages()


def test_a_truncated_bz2_yields_the_pages_before_the_cut_then_raises(tmp_path):
    data, ends = multistream_bz2()
    cut = len(data) // 2
    whole_streams = sum(end <= cut for end in ends)
    assert 0 < whole_streams < len(PAGES)
    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(data[:cut])
    got = []
    with open(path, "rb") as f, pytest.raises(DumpError) as error:
        for page in iter_pages(f):
            got.append(page)
    # a cut inside the last few bytes of a stream (its end marker) still lets that stream's page through
    assert whole_streams <= len(got) <= whole_streams + 1
    assert got == expected_pages()[:len(got)]
    assert f"after {len(got)} pages" in str(error.value)
    assert isinstance(error.value.__cause__, EOFError)


def test_a_truncated_gzip_raises_dump_error(tmp_path):
    data = gzip.compress(dump_xml())
    path = tmp_path / "dump.xml.gz"
    path.write_bytes(data[: len(data) // 2])
    with open(path, "rb") as f, pytest.raises(DumpError):
        list(iter_pages(f))


def test_xml_that_is_not_well_formed_raises_after_the_good_pages(tmp_path):
    chunks = page_chunks()
    path = tmp_path / "dump.xml"
    path.write_bytes((HEADER + chunks[0] + "  <page><title>Broken</title></pag>\n" + FOOTER).encode())
    got = []
    with open(path, "rb") as f, pytest.raises(DumpError, match="after 1 pages"):
        for page in iter_pages(f):
            got.append(page)
    assert got == expected_pages()[:1]


def test_a_plain_dump_cut_short_raises(tmp_path):
    xml = dump_xml()
    path = tmp_path / "dump.xml"
    path.write_bytes(xml[: len(xml) // 2])
    with open(path, "rb") as f, pytest.raises(DumpError):
        list(iter_pages(f))


# ---------------------------------------------------------------- reference URLs

ARTICLE = (
    "'''Topic''' is a thing.<ref>{{cite web |url=https://a.example/x |title=T "
    "|archive-url=https://web.archive.org/y |archive-date=2020}}</ref>\n"
    "It is old.<ref>[http://b.example/page label]</ref> See https://c.example/q?x=1.\n"
    "{{Citation|url = http://d.example }}\n"
    "Again.<ref>[https://a.example/x the same page]</ref>\n"
    "== Notes ==\n"
    "{{cite web |url=https://e.example/z"
)


def test_reference_urls_in_order_without_archives_or_duplicates():
    assert reference_urls(ARTICLE) == [
        "https://a.example/x",
        "http://b.example/page",
        "https://c.example/q?x=1",
        "http://d.example",
        "https://e.example/z",  # the unclosed template is text to the parser, and its URL a bare link
    ]


def test_reference_urls_details():
    text = ("{{cite book |chapter-url=//f.example/ch |URL=https://g.example/a&amp;b <!-- note --> }}"
            "<ref>[ftp://h.example/file ftp] [mailto:x@example.org mail]</ref>"
            "(see http://i.example/p) and http://j.example/Foo_(bar), then "
            "{{cite news |archiveurl=http://archive.example/k |url=https://k.example/}}")
    assert reference_urls(text) == [
        "https://f.example/ch", "https://g.example/a&b", "http://i.example/p", "http://j.example/Foo_(bar)",
        "https://k.example/",
    ]


@pytest.mark.parametrize("text", [
    "", "no links here", "{{{{ [[[[ ]]]] }}}} <ref> [http://x.example", "<ref>{{cite web|url=}}</ref>",
    "{{cite web|url= }}", "[[File:x.jpg|thumb|[http://l.example cap]]] {{", "<ref name=a/><ref>unclosed",
])
def test_malformed_wikitext_does_not_raise(text):
    assert all(u.lower().startswith(("http://", "https://")) for u in reference_urls(text))


def test_parser_failure_falls_back_to_a_regex(monkeypatch):
    def broken(_):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(mwparserfromhell, "parse", broken)
    assert reference_urls("a https://m.example/x. b [http://n.example|c] https://m.example/x") == [
        "https://m.example/x", "http://n.example"]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.one_of(
    st.sampled_from(["{{", "}}", "[", "]", "[[", "]]", "<ref>", "</ref>", "|url=", "http://", "https://", "//",
                     "x.example", "/", ".", ")", "(", " ", "\n", "<!--", "-->", "&amp;"]),
    st.text(max_size=4)), max_size=30).map("".join))
def test_reference_urls_never_raises(text):
    assert all(u.lower().startswith(("http://", "https://")) for u in reference_urls(text))
