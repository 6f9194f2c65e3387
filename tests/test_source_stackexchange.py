"""The Stack Exchange source: reading dumps, choosing sites, HTML to text, the join, and the job."""
import io
import json
import os

import numpy as np
import pytest

from helpers import LOCAL, read_rows, source_command
from pipeline.schema import DeadLetter, Document
from pipeline.sources.job import run
from smallgiant.samples import stackexchange as sample
from pipeline.sources.stackexchange import StackExchangeSource, post_document, site_language
from pipeline.sources.stackexchange_join import ANSWER, POST, question_document, thread_links
from pipeline.sources.stackexchange_posts import (Post, SevenZipMemberStream, open_posts, parse_tags,
                                                   read_posts, to_post)
from pipeline.sources.stackexchange_sites import find_sites, largest_sites, site_of
from pipeline.sources.stackexchange_text import html_to_text

HEAD = b'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'


def row(**attrs) -> bytes:
    return sample._row(attrs).encode()


def posts_of(data: bytes) -> list:
    return list(read_posts(io.BytesIO(data), "Posts.xml"))


# -- posts ----------------------------------------------------------------------------------------------
def test_answers_sort_by_score_as_integers():
    q = post_document("s.com", to_post({"Id": "1", "PostTypeId": "1", "Score": "0", "Title": "T"}, 0))
    answers = [post_document("s.com", to_post({"Id": str(i), "PostTypeId": "2", "ParentId": "1", "Score": s,
                                               "Body": f"score {s}"}, 0))
               for i, s in [(2, "9"), (3, "10"), (4, "-1"), (5, "0"), (6, "10")]]
    posts = [(7, 0, 1, 0, 1)] + [(7, k, a.metadata["post_id"], a.metadata["score"], 0) for k, a in enumerate(answers, 1)]
    links = [link for link in thread_links(np.array(posts, dtype=POST)) if link[1] == ANSWER]
    ordered = [answers[other - 1] for _, _, other, _ in sorted(links, key=lambda link: link[3])]
    assert [a.metadata["post_id"] for a in ordered] == [3, 6, 2, 5, 4]  # "10" before "9"; ties by id
    doc = question_document(q, ordered)
    assert doc.text.index("A: score 10") < doc.text.index("A: score 9") < doc.text.index("A: score 0")
    assert doc.metadata["answer_scores"] == [10, 10, 9, 0, -1] and doc.text.startswith("Q: T")


def test_html_keeps_code_blocks_and_lists():
    text = html_to_text("<p>Use <code>x</code> &amp; <a href='http://e'>docs</a>:</p>"
                        "<pre><code>def f(x):\n    if x:\n        return 1\n\n\n    return 0\n</code></pre>"
                        "<ol><li>one</li><li>two<ul><li>inner</li></ul></li></ol>")
    assert text.splitlines() == ["Use x & docs:", "", "def f(x):", "    if x:", "        return 1", "", "",
                                 "    return 0", "  1. one", "  2. two", "    • inner"]


def test_malformed_rows_are_dead_letters_and_parsing_resumes():
    data = (HEAD + row(Id=1, PostTypeId=1, Score=1, Body="<p>a</p>")
            + b'  <row Id="2" PostTypeId="1" Score="2" Body="unclosed />\n'
            + row(Id=3, PostTypeId=2, ParentId=1, Score=5)
            + row(Id=4, PostTypeId=2, ParentId=1, Score="abc")
            + row(Id=5, PostTypeId=2, Score=1)
            + row(Id=6, PostTypeId=1, Score=1, Title="caf\u00e9").replace("é".encode(), b"\xe9")
            + row(Id=7, PostTypeId=1, Score=7, Tags="<a><b>") + b"</posts>\n")
    items = posts_of(data)
    assert [p.id for p in items if isinstance(p, Post)] == [1, 3, 7]
    dead = [d for d in items if isinstance(d, DeadLetter)]
    assert [d.reason.split(":")[0] for d in dead] == ["malformed XML", "Score 'abc' is not an integer",
                                                      "row without ParentId", "malformed XML"]
    assert dead[0].preview.startswith(b'  <row Id="2"') and dead[0].offset == len(HEAD) + len(
        row(Id=1, PostTypeId=1, Score=1, Body="<p>a</p>"))


def test_truncated_posts_xml_keeps_what_came_before():
    data = HEAD + row(Id=1, PostTypeId=1, Score=1) + row(Id=2, PostTypeId=2, ParentId=1, Score=1)
    items = posts_of(data[:-20])
    assert [p.id for p in items if isinstance(p, Post)] == [1]
    assert isinstance(items[-1], DeadLetter) and "truncated" in items[-1].reason
    items = posts_of(data)  # every row complete, no </posts>
    assert [p.id for p in items if isinstance(p, Post)] == [1, 2] and "before </posts>" in items[-1].reason


def test_tags_in_both_dump_formats_and_site_languages():
    assert parse_tags("<python><list-comprehension>") == parse_tags("|python|list-comprehension|")
    assert [site_language(s) for s in ("ru.stackoverflow.com", "stackoverflow.com", "math.stackexchange.com",
                                       "es.stackoverflow.com")] == ["ru", "en", "en", "es"]


def test_7z_member_streams_and_bad_archives_fail_clearly(tmp_path):
    posts = HEAD + b"".join(row(Id=i, PostTypeId=1, Score=i) for i in range(1, 200)) + b"</posts>\n"
    sample.write_7z(str(tmp_path / "s.7z"), {"Users.xml": b"<users/>", "Posts.xml": posts})
    with open(tmp_path / "s.7z", "rb") as raw, open_posts(raw) as stream:
        assert isinstance(stream, SevenZipMemberStream) and stream.read() == posts
    with open(tmp_path / "s.7z", "rb") as raw, open_posts(raw) as stream:  # closing early stops the thread
        assert stream.read(10) == posts[:10]
    sample.write_7z(str(tmp_path / "u.7z"), {"Users.xml": b"<users/>"})
    with open(tmp_path / "u.7z", "rb") as raw, pytest.raises(FileNotFoundError, match="no Posts.xml"):
        open_posts(raw)
    (tmp_path / "cut.7z").write_bytes((tmp_path / "s.7z").read_bytes()[:300])
    with open(tmp_path / "cut.7z", "rb") as raw, pytest.raises(Exception):
        open_posts(raw).read()


# -- sites ----------------------------------------------------------------------------------------------
def test_the_largest_sites_from_a_directory_or_a_listing(tmp_path):
    for name, size in [("a.stackexchange.com.7z", 50), ("b.stackexchange.com.7z", 300), ("big.com-Posts.7z", 900),
                       ("big.com-Users.7z", 5000), ("meta.stackexchange.com.7z", 1000), ("notes.txt", 10)]:
        (tmp_path / name).write_bytes(b"x" * size)
    (tmp_path / "c.stackexchange.com").mkdir()
    (tmp_path / "c.stackexchange.com" / "Posts.xml").write_bytes(b"x" * 100)
    chosen, left_out = largest_sites(find_sites(str(tmp_path)), 3)
    assert [f.site for f in chosen] == ["big.com", "b.stackexchange.com", "c.stackexchange.com"]
    assert left_out == ["a.stackexchange.com", "meta.stackexchange.com"]
    assert largest_sites(find_sites(str(tmp_path)), 1, include_meta=True)[0][0].site == "meta.stackexchange.com"
    listing = tmp_path / "sites.txt"
    listing.write_text("# archive.org sizes\n10 a.stackexchange.com.7z\nb.stackexchange.com.7z\t5\n"
                       "big.com-Users.7z 99999\n")
    chosen, _ = largest_sites(find_sites(str(listing)), 28)
    assert [(f.site, f.size) for f in chosen] == [("a.stackexchange.com", 10), ("b.stackexchange.com", 5)]
    assert chosen[0].path == str(tmp_path / "a.stackexchange.com.7z")
    assert site_of("/d/x.com/Posts.xml") == "x.com" and site_of("so.com-Votes.7z") is None


# -- the job --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("se")
    spec = sample.write_sample(str(d / "in"), questions=60)
    stats = run(StackExchangeSource(), spec, str(d / "out"), LOCAL)
    return d, spec, stats


def test_funnel_on_the_sample(sample_run):
    d, _, stats = sample_run
    rows = {r["stage"]: r for r in stats["stages"]}
    assert stats["files"] == 28 and len(stats["config"]["sites_read"]) == 28
    assert sorted(stats["config"]["sites_left_out"]) == ["chess.stackexchange.com", "meta.stackexchange.com",
                                                         "woodworking.stackexchange.com"]
    assert stats["dead_letters"] == 3  # a malformed row, a Score that is not a number, bytes not UTF-8
    assert rows["read"]["docs_out"] - rows["post_type"]["docs_out"] == 2  # two tag wikis
    docs = read_rows(str(d / "out" / "docs"))
    rejects = read_rows(str(d / "out" / "rejects"))
    answered = [r for r in rejects if r["stage"] == "answered"]
    merged = sum(json.loads(r["metadata"]).get("answers", 0) for r in docs + answered)  # orphans have none
    assert rows["join_answers"]["docs_in"] - rows["join_answers"]["docs_out"] == merged
    assert rows["answered"]["docs_out"] == stats["documents_out"] == len(docs)
    assert {r["reason"] for r in answered} == {"0 answers, fewer than 1",
                                               "answer to question stackoverflow.com/999999, which is not in the dump"}
    assert stats["bytes_out"] == sum(len(r["text"].encode()) for r in docs)
    planted = next(r for r in docs if r["id"] == "stackexchange/stackoverflow.com/1")
    meta = json.loads(planted["metadata"])
    assert meta["answer_scores"] == [10, 9, -1] and planted["url"] == "https://stackoverflow.com/q/1"
    assert all(r["text"].startswith("Q: ") and "\nA: " in r["text"] and "<p>" not in r["text"] for r in docs)
    assert any("    for value in values:" in r["text"] for r in docs)  # code indentation kept
    assert stats["languages"] == {"en": len(docs)}


def test_same_input_same_bytes(sample_run, tmp_path):
    d, spec, _ = sample_run
    run(StackExchangeSource(), spec, str(tmp_path / "again"), LOCAL)
    one, two = sorted((d / "out" / "docs").iterdir()), sorted((tmp_path / "again" / "docs").iterdir())
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]


def test_bad_input_is_dead_letters_and_good_posts_stay(tmp_path):
    out = tmp_path.parent / (tmp_path.name + "-out")
    good = (HEAD + row(Id=1, PostTypeId=1, Score=1, Title="Q", Body="<p>question</p>")
            + b'  <row Id="2" PostTypeId="2" ParentId="1" Score="1" Body="oops />\n'
            + row(Id=3, PostTypeId=2, ParentId=1, Score=9, Body="<p>nine</p>")
            + row(Id=4, PostTypeId=2, ParentId=1, Score=10, Body="<p>ten</p>") + b"</posts>\n")
    (tmp_path / "good.stackexchange.com").mkdir()
    (tmp_path / "good.stackexchange.com" / "Posts.xml").write_bytes(good)
    sample.write_7z(str(tmp_path / "whole.7z"), {"Posts.xml": good})
    (tmp_path / "cut.stackexchange.com.7z").write_bytes((tmp_path / "whole.7z").read_bytes()[:200])
    os.remove(tmp_path / "whole.7z")
    args = source_command(["stackexchange", "--input", str(tmp_path), "--output", str(out),
                           "--top-sites", "5"])
    assert args.func(args, LOCAL) == 0
    docs = read_rows(str(out / "docs"))
    assert [(r["id"], r["text"]) for r in docs] == [
        ("stackexchange/good.stackexchange.com/1", "Q: Q\n\nquestion\n\nA: ten\n\nA: nine")]
    dead = sorted(r["reason"] for r in read_rows(str(out / "dead_letters")))
    assert len(dead) == 2 and dead[0].startswith("cannot read file") and dead[1].startswith("malformed XML")
    assert json.loads((out / "stats.json").read_text())["config"]["top_sites"] == 5


def test_source_documents_are_plain_data():
    doc = post_document("x.com", Post(id=5, type=2, score=3, body="<p>b</p>", parent=4))
    assert doc == Document("stackexchange/x.com/5", "https://x.com/a/5", "stackexchange", "<p>b</p>",
                           {"site": "x.com", "post_id": 5, "post_type": "answer", "score": 3, "language": "en",
                            "question_id": 4})
