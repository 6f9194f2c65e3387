"""A small Wikipedia dump excerpt and a crawl that holds some of the pages it cites, for the demo and tests.

The dump is in MediaWiki's XML export format: articles whose wikitext cites pages with
`<ref>{{cite web |url=...}}</ref>`, bracketed and bare external links, infobox templates, plus a
redirect, a disambiguation page and a talk page (whose links must not count). Cited URLs appear in the
variants real citations use (http/https, www, tracking parameters, fragments, trailing slashes). The
crawl (WET) holds most of the cited pages, written in an informative register, and many more pages
nobody cites, written as shops, forums and spam, so that a classifier has something to learn.
Deterministic for a seed; `truth` lists which crawl pages are cited.
"""
from __future__ import annotations

import dataclasses
import html
import random

from smallgiant.samples.crawl import SamplePage, record_id, wet_bytes

_REF = {
    "subj": ["The national archive", "A university study", "The city council", "The museum board",
             "An independent commission", "The statistics office", "The research institute",
             "The historical society", "A parliamentary report", "The observatory"],
    "verb": ["documented", "published", "analysed", "estimated", "reported", "reviewed", "catalogued",
             "measured", "surveyed", "recorded"],
    "obj": ["the population of the region", "the construction of the railway", "annual rainfall figures",
            "the history of the harbour", "the collection of medieval manuscripts", "migration patterns",
            "the restoration of the cathedral", "agricultural output", "the results of the census",
            "the discovery of the fossil beds", "the founding of the university", "public health records"],
    "tail": ["between 1850 and 1900", "in its annual report", "according to primary sources",
             "in a peer-reviewed journal", "with detailed tables and maps", "for the first time in 1923",
             "in a two-volume edition", "using records from several parishes", "in cooperation with the ministry"],
}
_RANDOM = {
    "subj": ["Best deals", "Our shop", "Limited offer", "lol my phone", "Hot singles", "This trick",
             "Free shipping", "Anyone know why my car", "Casino bonus", "Cheap flights"],
    "verb": ["just dropped", "is waiting for you", "broke again", "will blow your mind", "ends tonight",
             "is back in stock", "made me rich", "keeps beeping", "starts now", "is 70% off"],
    "obj": ["click here", "buy now", "sign up today", "dont miss out", "add to cart", "subscribe",
            "win big", "order online", "follow for more", "use code SAVE20"],
    "tail": ["!!!", "thanks in advance", "while supplies last", "no credit card needed", "100% guaranteed",
             "reply if u know", "only for today", "best price online", "you wont believe it"],
}


@dataclasses.dataclass
class SampleWiki:
    dump_xml: str
    crawl: list[SamplePage]
    cited: set[str]          # ids of crawl pages that the dump cites
    cited_urls: list[str]    # every URL the articles cite, as the pages are crawled


def _text(rng: random.Random, grammar: dict, n_sentences: int) -> str:
    lines, cur = [], []
    for _ in range(n_sentences):
        cur.append(" ".join(rng.choice(grammar[k]) for k in ("subj", "verb", "obj", "tail")).rstrip() + ".")
        if len(cur) == 4:
            lines.append(" ".join(cur))
            cur = []
    return "\n".join(lines + ([" ".join(cur)] if cur else []))


def _variant(rng: random.Random, url: str) -> str:
    """How a citation may spell a crawled URL."""
    host_path = url.split("://", 1)[1]
    options = [url, url.replace("https://", "http://"), url + "/", url + "#section-2",
               url + "?utm_source=wikipedia&utm_medium=ref", url.replace("https://", "https://www."),
               "HTTPS://" + host_path.split("/", 1)[0].upper() + "/" + host_path.split("/", 1)[1]]
    return rng.choice(options)


def _article(rng: random.Random, title: str, urls: list[str]) -> str:
    body = [f"{{{{Infobox place |name={title} |population={rng.randint(1000, 90000)}}}}}",
            f"'''{title}''' is a place described in several sources."]
    for i, url in enumerate(urls):
        style = i % 3
        sentence = _text(rng, _REF, 1)
        if style == 0:
            body.append(f"{sentence}<ref>{{{{cite web |url={url} |title=Source {i} |access-date=2022-06-01 "
                        f"|archive-url=https://web.archive.example/{i}}}}}</ref>")
        elif style == 1:
            body.append(f"{sentence}<ref>[{url} Report {i}]</ref>")
        else:
            body.append(f"{sentence} See {url} for the data.")
    body.append("== References ==\n{{reflist}}\n[[Category:Places]]")
    return "\n".join(body)


def _page_xml(page_id: int, title: str, ns: int, text: str, redirect: str | None = None) -> str:
    red = f'    <redirect title="{html.escape(redirect)}" />\n' if redirect else ""
    return (f"  <page>\n    <title>{html.escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n{red}"
            f"    <revision>\n      <id>{page_id * 10}</id>\n      <timestamp>2022-06-01T00:00:00Z</timestamp>\n"
            f"      <text bytes=\"{len(text.encode())}\" xml:space=\"preserve\">{html.escape(text, quote=False)}</text>\n"
            f"    </revision>\n  </page>\n")


def make_sample(seed: int = 0, n_articles: int = 40, n_random: int = 400) -> SampleWiki:
    rng = random.Random(seed)
    crawl: list[SamplePage] = []
    cited: set[str] = set()
    cited_urls: list[str] = []
    pages_xml = []
    for a in range(n_articles):
        title = f"Sampleton {a}"
        urls = [f"https://records{rng.randrange(12)}.example.org/{title.replace(' ', '_')}/doc-{k}"
                for k in range(rng.randint(3, 7))]
        for k, url in enumerate(urls):
            cited_urls.append(url)
            if k == len(urls) - 1 and a % 4 == 0:
                continue  # cited but never crawled
            page = SamplePage(record_id(rng), url, "en", _text(rng, _REF, rng.randint(10, 24)))
            crawl.append(page)
            cited.add(page.id)
        pages_xml.append(_page_xml(a + 1, title, 0, _article(rng, title, [_variant(rng, u) for u in urls])))
    pages_xml.append(_page_xml(1001, "Sampletown", 0, "#REDIRECT [[Sampleton 1]] https://redirect.example/x",
                               redirect="Sampleton 1"))
    pages_xml.append(_page_xml(1002, "Sampleton (disambiguation)", 0,
                               "'''Sampleton''' may refer to:\n* [[Sampleton 1]] https://dab.example/y\n{{disambiguation}}"))
    pages_xml.append(_page_xml(1003, "Talk:Sampleton 2", 1, "Is https://talk.example/z reliable?"))
    for i in range(n_random):
        host = f"https://shop{rng.randrange(30)}.example.com/item-{i}"
        crawl.append(SamplePage(record_id(rng), host, "en", _text(rng, _RANDOM, rng.randint(14, 30))))
    # mirrors: the text of a cited page under a URL nobody cites (must not become a negative)
    for i, page in enumerate(sorted((p for p in crawl if p.id in cited), key=lambda p: p.url)[:5]):
        crawl.append(SamplePage(record_id(rng), f"https://mirror.example.net/copy-{i}", "en", page.text, "exact", page.id))
    rng.shuffle(crawl)
    dump = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">\n'
            "  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    <dbname>samplewiki</dbname>\n"
            '    <namespaces>\n      <namespace key="0" case="first-letter" />\n'
            '      <namespace key="1" case="first-letter">Talk</namespace>\n    </namespaces>\n  </siteinfo>\n'
            + "".join(pages_xml) + "</mediawiki>\n")
    return SampleWiki(dump, crawl, cited, cited_urls)


def write_sample(directory: str, seed: int = 0, **kwargs) -> SampleWiki:
    """Writes `enwiki-sample-pages-articles.xml` and `crawl.warc.wet.gz` into `directory`."""
    import os
    sample = make_sample(seed, **kwargs)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "enwiki-sample-pages-articles.xml"), "w", encoding="utf-8") as f:
        f.write(sample.dump_xml)
    with open(os.path.join(directory, "crawl.warc.wet.gz"), "wb") as f:
        f.write(wet_bytes(sample.crawl))
    return sample
