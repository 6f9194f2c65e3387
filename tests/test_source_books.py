"""The Books source: Gutenberg boilerplate (current and older variants), character sets, reading text files,
archives and JSONL, book-level near-dedup (91% vs 80% overlap, the smallest key stays), bad input, the
funnel on the sample."""
from __future__ import annotations

import bz2
import io
import json
import random
import tarfile
import textwrap
import zipfile

import pytest

from pipeline.inputs import InputError

from helpers import LOCAL, read_rows, source_command
from pipeline.schema import DeadLetter, Document
from pipeline.sources.books import BooksSource
from pipeline.minhash import lsh_params
from pipeline.dedup.books import candidate_threshold, overlap, shingle_set
from pipeline.sources.books_gutenberg import decode_book, strip_boilerplate
from pipeline.sources.job import run
from smallgiant.samples import books as sample

BODY = "CHAPTER I.\n\nIt was a quiet morning in the harbour.\n\nCHAPTER II.\n\nThe lantern was lit at dusk.\n"


# ---------------------------------------------------------------- Gutenberg boilerplate
def test_the_current_header_credit_and_footer_go_and_the_header_is_read():
    text = sample.modern_gutenberg(BODY, 1342, "Pride", "Jane Austen", "en", "Anne and the Online Team")
    body, meta = strip_boilerplate(text)
    assert body == BODY
    assert meta == {"title": "Pride", "author": "Jane Austen", "language": "en", "gutenberg_id": "1342"}
    assert "START: FULL LICENSE" not in body


def test_the_older_small_print_header_and_etext_footer_go():
    body, _ = strip_boilerplate(sample.old_gutenberg(BODY, "The Salt Road", "en"))
    assert body == BODY


@pytest.mark.parametrize("start, end", [
    ("***START OF THE PROJECT GUTENBERG EBOOK MOBY DICK***", "***END OF THE PROJECT GUTENBERG EBOOK MOBY DICK***"),
    ("*** START OF THIS PROJECT GUTENBERG E-TEXT ***", "End of Project Gutenberg's Moby Dick, by Herman Melville"),
    ("START OF THE PROJECT GUTENBERG EBOOK", "End of this Etext of Moby Dick"),
    ("*END*THE SMALL PRINT! FOR PUBLIC DOMAIN EBOOKS*Ver.02/11/02*END*", "END OF THE PROJECT GUTENBERG EBOOK"),
])
def test_marker_variants(start, end):
    text = f"The Project Gutenberg EBook of Moby Dick\n\n{start}\n\n{BODY}\n{end}\n\nfull license text here\n"
    assert strip_boilerplate(text)[0] == BODY


def test_a_book_without_markers_is_left_alone():
    assert strip_boilerplate(BODY) == (BODY, {})
    # a book that merely talks about the end of an ebook keeps its text
    talk = "He read to the end of the ebook he had borrowed.\n" + BODY
    assert strip_boilerplate(talk) == (talk, {})


def test_character_sets():
    declared = "Character set encoding: ISO-8859-1\n\nRen\xe9e and Zo\xeb.\n".encode("latin-1")
    assert decode_book(declared)[0].endswith("Renée and Zoë.\n")
    assert decode_book("\ufeffUTF-8 with a BOM".encode("utf-8")) == ("UTF-8 with a BOM", "")
    assert decode_book("Ren\xe9e".encode("latin-1"))[1].startswith("undecodable text: not UTF-8")
    assert decode_book(b"Character set encoding: KLINGON\n\xff")[1].startswith(
        "undecodable text: not UTF-8 and not its declared character set 'KLINGON'")
    assert decode_book(b"text\x00\x01")[1] == "binary data, not text (NUL byte at offset 4)"


# ---------------------------------------------------------------- overlap
def _words(rng, n):
    out: list[str] = []
    while len(out) < n:
        out += sample.book_sentence(rng).split()
    return out[:n]


def _edition(rng, words, share):
    """The same words with one contiguous run of `share` of them rewritten."""
    k = round(share * len(words))
    start = len(words) // 3
    return words[:start] + _words(rng, k) + words[start + k:]


def _as_book(words, width):
    paras = [" ".join(words[i:i + 60]) for i in range(0, len(words), 60)]
    return "\n\n".join(textwrap.fill(p, width) for p in paras) + "\n"


@pytest.fixture(scope="module")
def editions():
    rng = random.Random(7)
    original = _words(rng, 4000)
    return original, _edition(rng, original, 0.09), _edition(rng, original, 0.20)


def test_overlap_is_the_share_of_the_longer_book_the_other_holds(editions):
    original, near, far = editions
    a = shingle_set(_as_book(original, 70))
    # rewrapped, re-punctuated, upper-cased: the same content
    same = shingle_set(_as_book(original, 50).upper().replace(".", ";"))
    assert overlap(a, same) == 1.0
    assert overlap(a, shingle_set(_as_book(near, 60))) == pytest.approx(0.91, abs=0.003)
    assert overlap(a, shingle_set(_as_book(far, 60))) == pytest.approx(0.80, abs=0.003)
    # one tenth of the book printed alone is not a copy of it
    assert overlap(a, shingle_set(_as_book(original[:400], 70))) < 0.11


@pytest.mark.parametrize("threshold", [0.9, 0.75, 0.5])
def test_lsh_bands_make_every_pair_over_the_threshold_a_candidate(threshold):
    bands, rows = lsh_params(candidate_threshold(threshold, 256), 256)
    least_jaccard = threshold / (2 - threshold)
    assert 1 - (1 - least_jaccard ** rows) ** bands >= 0.999


def test_91_percent_overlap_goes_80_percent_stays_and_the_smallest_key_is_kept(editions, tmp_path):
    original, near, far = editions
    # the near edition comes first in input order, so it is the one kept and the original goes
    (tmp_path / "a-near.txt").write_text(_as_book(near, 60))
    (tmp_path / "b-original.txt").write_text(_as_book(original, 70))
    (tmp_path / "c-far.txt").write_text(_as_book(far, 66))
    stats = run(BooksSource(), str(tmp_path / "*.txt"), str(tmp_path / "out"), LOCAL)
    assert sorted(d["id"] for d in read_rows(str(tmp_path / "out/docs"))) == ["books/a-near", "books/c-far"]
    [rejected] = read_rows(str(tmp_path / "out/rejects"))
    assert (rejected["id"], rejected["stage"]) == ("books/b-original", "near_dedup")
    assert rejected["reason"] == "near duplicate of books/a-near: 90.9% of the content overlaps"
    assert json.loads(rejected["metadata"])["duplicate_of"] == "books/a-near"
    assert {r["stage"]: r["docs_out"] for r in stats["stages"]}["near_dedup"] == 2


def test_a_lower_threshold_from_the_command_line_takes_the_80_percent_copy_too(editions, tmp_path):
    original, _, far = editions
    (tmp_path / "a.txt").write_text(_as_book(original, 70))
    (tmp_path / "b.txt").write_text(_as_book(far, 66))
    args = source_command(["books", "--input", f"{tmp_path / 'a.txt'},{tmp_path / 'b.txt'}",
                           "--output", str(tmp_path / "out"), "--overlap", "0.75"])
    assert args.func(args, LOCAL) == 0
    assert [d["id"] for d in read_rows(str(tmp_path / "out/docs"))] == ["books/a"]
    stats = json.loads((tmp_path / "out/stats.json").read_text())
    assert stats["job"] == "books" and stats["config"]["overlap"] == 0.75


# ---------------------------------------------------------------- reading
def test_archives_compressed_text_and_jsonl_rows(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (("shelf/one.epub.txt", "First book.\n"), ("shelf/cover.jpg", "\xff"),
                           ("shelf/two.txt", "Second book.\n")):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "books3.tar.gz").write_bytes(buf.getvalue())
    with zipfile.ZipFile(tmp_path / "1342.zip", "w") as zf:
        zf.writestr("1342.txt", "A zipped book.\r\nWith CRLF.\r\n")
    (tmp_path / "b.txt.bz2").write_bytes(bz2.compress(b"A bzip2 book.\n"))
    rows = [{"id": "x1", "text": "A JSONL book.", "meta": {"short_book_title": "Short"}, "language": "German"},
            {"text": "No id here.", "url": "https://example.org/b"}, ["not", "an", "object"], {"text": "a\x00b"}]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    source = BooksSource()
    items = [i for f in source.files(str(tmp_path)) for i in source.read(f)]
    docs = {i.id: i for i in items if isinstance(i, Document)}
    assert {k: d.text for k, d in docs.items()} == {
        "books/1342/1342": "A zipped book.\nWith CRLF.\n", "books/b": "A bzip2 book.\n",
        "books/books3/shelf/one.epub": "First book.\n", "books/books3/shelf/two": "Second book.\n",
        "books/c/x1": "A JSONL book.", "books/c/2": "No id here."}
    assert docs["books/c/x1"].metadata["title"] == "Short" and docs["books/c/x1"].metadata["language"] == "de"
    assert docs["books/c/2"].url == "https://example.org/b"
    # the file's name, not where the inputs happen to sit: moving them does not change the output
    assert {d.metadata["file"] for d in docs.values()} == {"1342.zip", "b.txt.bz2", "books3.tar.gz", "c.jsonl"}
    dead = sorted((d.offset, d.reason.split(":")[0]) for d in items if isinstance(d, DeadLetter))
    assert dead == [(3, "bad JSON line"), (4, "binary data, not text (NUL character)"), (5, "bad JSON line")]


def test_a_file_that_is_not_a_book_is_a_dead_letter(tmp_path):
    (tmp_path / "cover.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.rdf").write_text("<rdf/>")
    source = BooksSource()
    (tmp_path / "dir" / "book.txt").write_text("Call me Ishmael.")
    assert source.files(str(tmp_path / "dir")) == [str(tmp_path / "dir" / "book.txt")]  # the rest skipped, with a warning
    (tmp_path / "dir" / "book.txt").unlink()
    with pytest.raises(InputError, match="no book file in"):     # a directory without books is an error
        source.files(str(tmp_path / "dir"))
    [dead] = list(source.read(str(tmp_path / "cover.jpg")))        # named on its own: said why
    assert isinstance(dead, DeadLetter) and dead.reason.startswith("not a book file")


# ---------------------------------------------------------------- the job on its sample
@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("books")
    spec = sample.write_sample(str(root / "in"), words_per_book=1500)
    stats = run(BooksSource(), spec, str(root / "out"), LOCAL)
    return root, spec, stats


def test_the_funnel_on_the_sample(sample_run):
    root, _, stats = sample_run
    docs = {d["id"]: d for d in read_rows(str(root / "out/docs"))}
    rejects = {r["id"]: r for r in read_rows(str(root / "out/rejects"))}
    assert sorted(docs) == ["books/books3-sample/books3/der-alte-seemann.epub",
                            "books/books3-sample/books3/the-river-path.epub", "books/pg11001", "books/pg11002",
                            sample.FAR_COPY, "books/shelf-000/shelf-1", "books/shelf-000/shelf-2"]
    assert {k: r["stage"] for k, r in rejects.items()} == {
        "books/pg11005": "boilerplate", sample.EXACT_COPY: "exact_dedup", sample.NEAR_COPY: "near_dedup"}
    assert rejects[sample.NEAR_COPY]["reason"].startswith("near duplicate of books/pg11001: 90.")
    assert rejects[sample.EXACT_COPY]["reason"] == "exact duplicate of books/pg11001"
    rows = {r["stage"]: (r["docs_in"], r["docs_out"]) for r in stats["stages"]}
    assert rows == {"read": (10, 10), "boilerplate": (10, 9), "exact_dedup": (9, 8), "near_dedup": (8, 7)}
    assert stats["languages"] == {"en": 4, "es": 1}        # the tarball's books declare none
    assert stats["stages"][1]["bytes_in"] > stats["stages"][1]["bytes_out"]       # headers and footers trimmed
    first = docs["books/pg11001"]
    assert first["url"] == "https://www.gutenberg.org/ebooks/11001" and first["text"].startswith("CHAPTER I.\n\n")
    assert "\r" not in first["text"] and "Gutenberg" not in first["text"] and "Produced by" not in first["text"]
    # the ISO-8859-1 book, decoded with the character set its header declares
    assert any(ch in docs["books/pg11002"]["text"] for ch in "éëíø")


def test_bad_input_becomes_dead_letters_and_good_books_stay(sample_run):
    root, _, stats = sample_run
    dead = {d["file"].rsplit("/", 1)[1]: d["reason"] for d in read_rows(str(root / "out/dead_letters"))}
    assert stats["dead_letters"] == 3
    assert dead["pg11006.txt.gz"].startswith("cannot read file: EOFError")
    assert dead["notes-cp1252.txt"].startswith("undecodable text: not UTF-8")
    assert dead["shelf-000.jsonl.gz"].startswith("bad JSON line")
    kept = {d["id"] for d in read_rows(str(root / "out/docs"))}
    assert {"books/shelf-000/shelf-1", "books/shelf-000/shelf-2"} <= kept      # the rest of the bad JSONL file


def test_same_input_same_bytes(sample_run, tmp_path):
    root, spec, _ = sample_run
    run(BooksSource(), spec, str(tmp_path / "again"), LOCAL)
    one, two = sorted((root / "out/docs").iterdir()), sorted((tmp_path / "again/docs").iterdir())
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]
