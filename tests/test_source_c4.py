"""The C4 source: C4's line and page heuristics, reading released JSON shards and raw WET pages (bad input
included), the job's funnel on the sample with dedup and language ID, and byte-identical reruns."""
import gzip
import json

import pytest

from helpers import LOCAL, conversion, read_rows, record_id, source_command
from pipeline.schema import DeadLetter, Document
from pipeline.sources.c4 import C4Source
from pipeline.sources.c4_rules import count_sentences, has_curly_brace, has_lorem_ipsum, kept_lines
from pipeline.sources.job import run
from smallgiant.samples.c4 import write_sample
from pipeline.warc import gzip_member, warc_record_bytes

# ---------------------------------------------------------------- the heuristics


def test_lines_without_terminal_punctuation_go():
    text = ("A line that ends in a period.\nA line without punctuation\nDid it end with a question?\n"
            "It ended with a bang!\nShe said \"it ends in a quote\"\nHe said \"so does this one.\"\n"
            "The story goes on...\nA colon is no end:")
    assert kept_lines(text) == ["A line that ends in a period.", "Did it end with a question?",
                                "It ended with a bang!", "She said \"it ends in a quote\"",
                                "He said \"so does this one.\""]


def test_lines_need_three_words_and_no_word_over_1000_characters():
    text = f"Two words.\nThree words here.\nA {'x' * 1001} word.\nA {'y' * 1000} word."
    assert kept_lines(text) == ["Three words here.", f"A {'y' * 1000} word."]


def test_citation_markers_go_before_the_punctuation_test():
    text = "It was built in 1900.[1]\nHistory[edit]\nIt fell down.[citation needed]\nSee the note [12] here."
    assert kept_lines(text) == ["It was built in 1900.", "It fell down.", "See the note  here."]


def test_javascript_and_policy_lines_go():
    text = ("Please enable JavaScript to view the comments.\nRead our Privacy Policy for details.\n"
            "This site uses cookies to work.\nBy continuing you accept the terms of use.\nWe use cookies here.\n"
            "The harbour was quiet that night.")
    assert kept_lines(text) == ["The harbour was quiet that night."]


def test_lorem_ipsum_and_curly_braces_only_count_in_lines_c4_would_keep():
    assert has_lorem_ipsum("Text here is fine.\nLorem ipsum dolor sit amet.")
    assert not has_lorem_ipsum("Text here is fine.\nLorem ipsum dolor sit amet")  # no terminal punctuation
    assert has_curly_brace("Add the rule { color: red } to it.")
    assert not has_curly_brace("function f() {\nEnable JavaScript {now} to see it.\nA {b}.")


def test_sentences_are_counted_by_terminal_punctuation():
    assert count_sentences("One is here. Two is here! Three is here?\nFour is \"here.\" Five (here.)") == 5
    assert count_sentences("Version 2.0 is out. It costs $3.50 now.") == 2
    assert count_sentences("") == 0


def test_steps_in_order_on_documents():
    steps = {s.stage: s.apply for s in C4Source().steps()}
    english = "\n".join(["The pilot planned the route with great care before the storm arrived."] * 5)
    doc = Document("d", "u", "c4", "Home | About\n" + english + "\nWe use cookies on this site.")
    for stage in ("lorem_ipsum", "curly_brace", "lines", "sentences", "lid"):
        doc = steps[stage](doc)
        assert isinstance(doc, Document), stage
    assert doc.text == english and doc.metadata["language"] == "en"
    german = Document("g", "u", "c4", "Der Ingenieur erklärte die alte Brücke mit großer Geduld. " * 5)
    rejected = steps["lid"](german)
    assert rejected.reason == "language de not in en" and rejected.stage == "lid"
    assert rejected.doc.metadata["language"] == "de" and german.metadata == {}   # scores kept, input unchanged
    assert steps["sentences"](Document("s", "u", "c4", "One here. Two here. Three here. Four here.")) == \
        "4 sentences < 5"


# ---------------------------------------------------------------- reading


def _lines(*rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


GOOD = {"text": "A good page.", "url": "https://a.example/", "timestamp": "2019-04-25T12:57:54Z"}


def test_json_shards_bad_lines_are_dead_letters_and_good_lines_stay(tmp_path):
    path = tmp_path / "c4-train.00007-of-01024.json.gz"
    path.write_bytes(gzip.compress(_lines(GOOD, b"{not json", b'{"text": "caf\xe9 au lait"}', {"url": "x"},
                                          {"text": 5}, b'{"text": "half \\ud800 a pair"}', b"", GOOD)))
    items = list(C4Source().read(str(path)))
    docs = [i for i in items if isinstance(i, Document)]
    assert [d.id for d in docs] == ["c4/c4-train.00007-of-01024/1", "c4/c4-train.00007-of-01024/8"]
    assert (docs[0].url, docs[0].text, docs[0].metadata) == (GOOD["url"], GOOD["text"],
                                                             {"timestamp": GOOD["timestamp"]})
    dead = [i for i in items if isinstance(i, DeadLetter)]
    assert [d.reason.split(":")[0] for d in dead] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    assert "not JSON" in dead[0].reason and "invalid UTF-8" in dead[1].reason
    assert "no text field" in dead[2].reason and "no text field" in dead[3].reason
    assert "surrogates" in dead[4].reason
    assert dead[1].record_id == "c4-train.00007-of-01024:3" and dead[1].preview.startswith(b'{"text"')


def test_a_truncated_shard_keeps_the_lines_before_the_cut(tmp_path):
    data = gzip.compress(_lines(*[dict(GOOD, text=f"Page {i} of many." * 200) for i in range(50)]))
    path = tmp_path / "c4-train.00001-of-01024.json.gz"
    path.write_bytes(data[: len(data) // 2])
    items = list(C4Source().read(str(path)))
    docs = [i for i in items if isinstance(i, Document)]
    assert 10 < len(docs) < 50 and [d.id for d in docs] == [f"c4/c4-train.00001-of-01024/{n}"
                                                           for n in range(1, len(docs) + 1)]
    assert isinstance(items[-1], DeadLetter) and items[-1].reason.startswith("reading stopped after line")
    assert "EOFError" in items[-1].reason


def test_plain_json_lines_are_read_too(tmp_path):
    path = tmp_path / "part.jsonl"
    path.write_bytes(_lines(GOOD))
    assert [d.id for d in C4Source().read(str(path))] == ["c4/part/1"]


def test_a_directory_stands_for_its_shards_and_crawl_files(tmp_path):
    names = ["c4-train.00001-of-01024.json.gz", "README.md", "CC-MAIN-1.warc.wet.gz", "c4-train.00000-of-01024.json.gz"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [p.rsplit("/", 1)[1] for p in C4Source().files(str(tmp_path))] == [names[2], names[3], names[0]]


def test_raw_wet_pages_are_read_with_warc_damage_as_dead_letters(tmp_path):
    info = gzip_member(warc_record_bytes([("WARC-Type", "warcinfo"), ("WARC-Record-ID", record_id(0))], b"x: y\r\n"))
    page = gzip_member(conversion(b"A raw page.\nWith lines.", record_id(1), "https://raw.example/1"))
    bad_utf8 = gzip_member(conversion(b"caf\xe9 page", record_id(2)))
    corrupt = gzip_member(conversion(b"lost page", record_id(3)))[:30] + b"\x00" * 40
    last = gzip_member(conversion(b"The last page.", record_id(4), "https://raw.example/4"))
    path = tmp_path / "CC-MAIN-x.warc.wet.gz"
    path.write_bytes(info + page + bad_utf8 + corrupt + last)
    items = list(C4Source().read(str(path)))
    docs = [i for i in items if isinstance(i, Document)]
    assert [(d.id, d.url, d.text) for d in docs] == [
        (f"c4/{record_id(1)[10:-1]}", "https://raw.example/1", "A raw page.\nWith lines."),
        (f"c4/{record_id(4)[10:-1]}", "https://raw.example/4", "The last page.")]
    assert docs[0].metadata == {"timestamp": "2023-01-01T00:00:00Z"}
    reasons = [i.reason for i in items if isinstance(i, DeadLetter)]
    assert len(reasons) == 2 and reasons[0].startswith("invalid UTF-8")


# ---------------------------------------------------------------- the job


def _bad_files(directory) -> list[str]:
    directory.mkdir()
    bad_lines = directory / "c4-train.00002-of-00002.json.gz"
    bad_lines.write_bytes(gzip.compress(_lines(b"{broken", b"\xff\xfe", dict(GOOD, text="Short page."))))
    truncated = directory / "c4-validation.00000-of-00008.json.gz"
    data = gzip.compress(_lines(*[dict(GOOD, text=f"Page {i} of many." * 200) for i in range(50)]))
    truncated.write_bytes(data[: len(data) // 2])
    return [str(bad_lines), str(truncated)]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("c4")
    spec = ",".join([write_sample(str(root / "sample"), docs=20, raw_pages=6)] + _bad_files(root / "bad"))
    args = source_command(["c4", "--input", spec, "--output", str(root / "out"), "--output-shards", "2"])
    assert args.func(args, LOCAL) == 0
    return spec, root


def test_funnel_on_the_sample_with_bad_files(sample_run):
    spec, root = sample_run
    stats = json.loads((root / "out" / "stats.json").read_text())
    rows = {r["stage"]: (r["docs_in"], r["docs_out"]) for r in stats["stages"]}
    # 6 raw pages; 10 + 8 planted, 10 + 2 copies in the shards; 1 good line of the bad shard; the truncated one
    n_truncated = rows["read"][0] - 37
    assert 10 < n_truncated < 50
    assert rows == {"read": (37 + n_truncated,) * 2, "lorem_ipsum": (37 + n_truncated, 36 + n_truncated),
                    "curly_brace": (36 + n_truncated, 35 + n_truncated), "lines": (35 + n_truncated,) * 2,
                    "sentences": (35 + n_truncated, 33), "lid": (33, 30), "exact_dedup": (30, 29),
                    "near_dedup": (29, 28)}
    assert stats["skipped_records"] == 1 and stats["dead_letters"] == 3 and stats["languages"] == {"en": 28}
    rejects = {r["url"]: (r["stage"], r["reason"]) for r in read_rows(str(root / "out" / "rejects"))
               if r["url"].startswith("https://planted.example/")}
    assert {url.rsplit("/", 1)[1]: stage for url, (stage, _) in rejects.items()} == {
        "lorem-ipsum": "lorem_ipsum", "curly-brace": "curly_brace", "four-sentences": "sentences",
        "german": "lid", "french": "lid", "spanish": "lid", "exact-copy": "exact_dedup", "near-copy": "near_dedup"}
    docs = {d["url"]: d for d in read_rows(str(root / "out" / "docs"))}
    assert "https://planted.example/brace-in-dropped-lines" in docs
    noisy = docs["https://planted.example/noisy-lines"]["text"]
    assert all(len(line.split()) >= 3 and line.endswith((".", "!", "?", '"')) for line in noisy.split("\n"))
    assert not any(word in noisy.lower() for word in ("javascript", "cookies", "privacy", "[1]", "[edit]", "..."))
    raw = [d for url, d in docs.items() if url.startswith("https://blog")]
    assert len(raw) == 6 and all("Home | News" not in d["text"] and "cookies" not in d["text"] for d in raw)


def test_a_copy_is_dropped_in_favour_of_the_first(sample_run):
    _, root = sample_run
    rejects = {r["url"]: r for r in read_rows(str(root / "out" / "rejects"))}
    original = json.loads(rejects["https://planted.example/exact-copy"]["metadata"])["duplicate_of"]
    assert original.startswith("c4/c4-train.00000-of-00002/")
    kept = {d["id"]: d["text"] for d in read_rows(str(root / "out" / "docs"))}
    assert kept[original] == rejects["https://planted.example/exact-copy"]["text"]


def test_reruns_write_the_same_bytes(sample_run, tmp_path):
    spec, root = sample_run
    run(C4Source(), spec, str(tmp_path / "again"), LOCAL, output_shards=2)
    first = sorted((root / "out" / "docs").glob("*.parquet"))
    second = sorted((tmp_path / "again" / "docs").glob("*.parquet"))
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_a_large_crawl_file_is_read_in_parts_and_json_shards_whole(tmp_path):
    text = b"A page of words that ends in a full stop.\nAnother line of the page, also ending well.\n"
    members = [gzip_member(conversion(text * (1 + n % 5) + b"%d." % n, record_id(n), f"https://p.example/{n}"))
               for n in range(200)]
    members[60] = members[60][:40] + b"\x00" * 40                  # a corrupt member
    members[120] = b"not gzip " * 20 + members[120]                  # garbage between members
    path = tmp_path / "CC-MAIN-x.warc.wet.gz"
    path.write_bytes(b"".join(members))
    source = C4Source(split_bytes=3_000)
    spans = source.spans(str(path))
    assert len(spans) > 4

    def seen(items):
        return [(i.id, i.text) if isinstance(i, Document) else (i.offset, i.reason) for i in items]
    assert seen(i for s in spans for i in source.read_span(str(path), s)) == seen(C4Source().read(str(path)))
    shard = tmp_path / "c4-train.00000-of-00001.json.gz"
    shard.write_bytes(gzip.compress(_lines(*[dict(GOOD, text=" ".join(str(i * j * 7919 % 100003) for j in range(400)))
                                             for i in range(40)])))
    assert shard.stat().st_size > 10 * 3_000 and source.spans(str(shard)) == [(0, None)]
