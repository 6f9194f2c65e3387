"""Damaged and hostile archives for every non-CC source: a corrupt member costs that member, a bomb is
stopped at its cap in bounded memory, an empty file is one dead letter; every good record still comes out.
Every input is built here; bombs are zeros, small on disk, made by repeating one compressed block."""
from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zipfile

import pytest

from helpers import LOCAL, read_rows, source_command
from pipeline.schema import DeadLetter, Document, Rejected
from pipeline.sources.arxiv import ArxivSource
from pipeline.sources.books import BooksSource
from pipeline.sources.c4 import C4Source
from pipeline.sources.github import GithubSource
from smallgiant.samples import github as github_sample
from smallgiant.samples.stackexchange import write_7z
from smallgiant.samples.wikipedia import dump_bytes, page_xml
from pipeline.sources.stackexchange import StackExchangeSource
from pipeline.sources.streams import Overlong, capped_lines
from pipeline.sources.wikipedia import WikipediaSource

MIB = 1 << 20
ZEROS = bytes(8 * MIB)
BOOK = "It was a bright cold day in April, and the clocks were striking thirteen. " * 20 + "\n"


def _split(items):
    docs = [i for i in items if isinstance(i, Document)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    dead = [i for i in items if isinstance(i, DeadLetter)]
    return docs, rejected, dead


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data,
                        compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _corrupt_member(data: bytes, name: str) -> bytes:
    """The zip with the middle of `name`'s compressed bytes overwritten."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    mid = start + info.compress_size // 2
    return data[:mid] + b"\xff" * 8 + data[mid + 8:]


def _declare_size(data: bytes, name: str, size: int) -> bytes:
    """The zip with `name`'s uncompressed size in both headers set to `size`: a member that lies."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    out = bytearray(data)
    struct.pack_into("<I", out, info.header_offset + 22, size)
    central = out.find(b"PK\x01\x02", info.header_offset)
    while out[central + 46: central + 46 + len(name)] != name.encode():
        central = out.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", out, central + 24, size)
    return bytes(out)


def _zip_bomb(good: dict[str, bytes], bomb_name: str, inflated_mib: int) -> bytes:
    """A zip of `good` plus a member of zeros whose headers declare 10 bytes, written 8 MiB at a time."""
    buf = io.BytesIO(_zip(good))
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf, zf.open(bomb_name, "w") as f:
        for _ in range(inflated_mib // 8):
            f.write(ZEROS)
    return _declare_size(buf.getvalue(), bomb_name, 10)


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _break_header(data: bytes, name: str) -> bytes:
    """The plain tar with `name`'s header block overwritten: its checksum no longer matches."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        offset = tar.getmember(name).offset
    return data[:offset] + b"\x01" * 100 + data[offset + 100:]


def _bz2_zeros(mib: int) -> bytes:
    """Zeros inflating to `mib` MiB: one bz2 stream of 8 MiB repeated (bz2 readers read every stream)."""
    return bz2.compress(ZEROS) * (mib // 8)


def _gz_zeros(mib: int) -> bytes:
    return gzip.compress(ZEROS, mtime=0) * (mib // 8)


# ---------------------------------------------------------------- the shared helpers
def test_capped_lines_skip_an_over_long_line_and_give_up_on_one_that_never_ends():
    data = b"a\n" + b"x" * 50 + b"\nb\n"
    assert list(capped_lines(io.BytesIO(data), 10)) == [(0, b"a\n"), Overlong(2, 51, 10), (53, b"b\n")]
    endless = list(capped_lines(io.BytesIO(b"a\n" + b"x" * 10_000), 10))
    assert endless[0] == (0, b"a\n") and len(endless) == 2
    assert endless[1].abandoned and endless[1].size <= 10 * 9 and "rest of the file is not read" in endless[1].reason


# ---------------------------------------------------------------- GitHub
def _mit() -> bytes:
    return github_sample.MIT.format(year=2021, holder="Ann").encode()


GOOD_CODE = {f"r/src/mod_{i}.py": f"def f{i}(x):\n    return x + {i}\n".encode() for i in range(4)}


def test_github_zip_a_corrupt_first_member_and_a_bomb_cost_themselves_only(tmp_path):
    data = _zip({"r/LICENSE": _mit(), "r/aaa_first.py": b"def first():\n    return 1\n" * 50, **GOOD_CODE})
    data = _corrupt_member(data, "r/aaa_first.py")
    path = tmp_path / "corrupt.zip"
    path.write_bytes(data)
    docs, rejected, dead = _split(list(GithubSource().read(str(path))))
    assert sorted(d.metadata["path"] for d in docs) == sorted(p[2:] for p in GOOD_CODE) and not rejected
    assert len(dead) == 1 and "corrupt zip member r/aaa_first.py" in dead[0].reason

    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_zip_bomb({"r/LICENSE": _mit(), **GOOD_CODE}, "r/bomb.py", 16))
    docs, rejected, dead = _split(list(GithubSource().read(str(bomb))))
    assert len(docs) == len(GOOD_CODE) and not rejected
    assert len(dead) == 1 and "r/bomb.py declares 10 bytes and inflates to more" in dead[0].reason


def test_github_a_corrupt_license_member_is_a_dead_letter_not_silence(tmp_path):
    path = tmp_path / "r.zip"
    path.write_bytes(_corrupt_member(_zip({"r/LICENSE": _mit() * 4, **GOOD_CODE}), "r/LICENSE"))
    docs, rejected, dead = _split(list(GithubSource().read(str(path))))
    assert not docs and len(rejected) == len(GOOD_CODE)           # no license could be read: refused
    assert len(dead) == 1 and dead[0].reason.startswith("unreadable root license file: corrupt zip member")


def test_github_tar_a_broken_header_is_read_past_and_a_truncation_keeps_what_came_before(tmp_path):
    members = {"r/LICENSE": _mit(), **GOOD_CODE, "r/src/zz_last.py": b"def last():\n    return 0\n"}
    plain = _break_header(_tar(members), "r/src/mod_1.py")
    (tmp_path / "hdr.tar").write_bytes(plain)
    docs, rejected, dead = _split(list(GithubSource().read(str(tmp_path / "hdr.tar"))))
    assert sorted(d.metadata["path"] for d in docs) == ["src/mod_0.py", "src/mod_2.py", "src/mod_3.py",
                                                         "src/zz_last.py"]
    assert len(dead) == 1 and "unreadable member header" in dead[0].reason

    whole = _tar(members)
    cut = whole[: tarfile.open(fileobj=io.BytesIO(whole)).getmember("r/src/mod_2.py").offset]  # at a header
    (tmp_path / "cut.tar").write_bytes(cut)
    docs, rejected, dead = _split(list(GithubSource().read(str(tmp_path / "cut.tar"))))
    assert sorted(d.metadata["path"] for d in docs) == ["src/mod_0.py", "src/mod_1.py"]
    assert len(dead) == 1 and "without its end-of-archive blocks (truncated)" in dead[0].reason


def test_github_empty_inputs_are_one_dead_letter_each(tmp_path):
    for name, data in [("a.zip", b""), ("b.tar.gz", b""), ("c.zip", _zip({})), ("d.jsonl", b""),
                       ("e.jsonl.gz", gzip.compress(b""))]:
        (tmp_path / name).write_bytes(data)
        items = list(GithubSource().read(str(tmp_path / name)))
        assert len(items) == 1 and isinstance(items[0], DeadLetter), name


def test_github_export_an_over_long_row_costs_that_row(tmp_path):
    rows = [json.dumps({"repo_name": "o/r", "path": f"m{i}.py", "content": f"x = {i}\n", "license": "mit"})
            for i in range(3)]
    huge = json.dumps({"repo_name": "o/r", "path": "big.py", "content": "y" * (9 * MIB), "license": "mit"})
    path = tmp_path / "export.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join([rows[0], huge, *rows[1:]]).encode() + b"\n"))
    source = GithubSource(max_file_bytes=100_000)
    docs, rejected, dead = _split(list(source.read(str(path))))
    assert [d.metadata["path"] for d in docs] == ["m0.py", "m1.py", "m2.py"]
    assert len(dead) == 1 and dead[0].offset == 2 and "over 8,388,608" in dead[0].reason


# ---------------------------------------------------------------- books
BOOKS = {f"b{i}.txt": (BOOK + f"Chapter {i}.\n").encode() for i in range(4)}


def test_books_zip_a_corrupt_member_and_a_bomb_cost_one_book_each(tmp_path):
    data = _zip_bomb({"a_first.txt": BOOK.encode() * 30, **BOOKS}, "bomb.txt", 32)
    (tmp_path / "c.zip").write_bytes(_corrupt_member(data, "a_first.txt"))
    docs, rejected, dead = _split(list(BooksSource(max_book_bytes=4 * MIB).read(str(tmp_path / "c.zip"))))
    assert sorted(d.id for d in docs) == [f"books/c/b{i}" for i in range(4)] and not rejected
    reasons = sorted(d.reason for d in dead)
    assert len(dead) == 2 and "bomb.txt declares 10 bytes and inflates to more" in reasons[1]
    assert "corrupt zip member a_first.txt" in reasons[0]


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_books_tar_truncated_keeps_the_books_before_the_damage(tmp_path, mode):
    data = _tar(BOOKS, mode)
    path = tmp_path / f"t.tar{'.' + mode[2:] if mode != 'w' else ''}"
    path.write_bytes(data[: len(data) * 3 // 4] if mode != "w" else data[:512 * 5])
    docs, rejected, dead = _split(list(BooksSource().read(str(path))))
    # bz2 inflates whole 900 kB blocks: a cut in this archive's only block leaves no book before it
    assert (docs or mode == "w:bz2") and all(d.text.startswith("It was a bright") for d in docs)
    assert len(dead) == 1 and any(w in dead[0].reason for w in ("breaks off", "truncated", "EOFError")), dead


def test_books_tar_a_broken_header_costs_one_book_and_a_bomb_member_is_not_read(tmp_path):
    members = {**BOOKS, "huge.txt": bytes(8 * MIB)}
    (tmp_path / "t.tar.bz2").write_bytes(
        bz2.compress(_break_header(_tar(members), "b1.txt")))
    docs, rejected, dead = _split(list(BooksSource(max_book_bytes=MIB).read(str(tmp_path / "t.tar.bz2"))))
    assert sorted(d.id for d in docs) == ["books/t/b0", "books/t/b2", "books/t/b3"]
    reasons = sorted(d.reason for d in dead)
    assert len(dead) == 2 and reasons[0].startswith("book longer than 1,048,576 bytes (8,388,608)")
    assert reasons[1].startswith("unreadable member header")


def test_books_jsonl_a_bad_line_and_an_over_long_line_cost_themselves(tmp_path):
    lines = [json.dumps({"id": i, "text": BOOK}).encode() for i in range(3)]
    body = b"\n".join([lines[0], b"{not json", b'{"text": "' + b"z" * (3 * MIB) + b'"}', *lines[1:]]) + b"\n"
    (tmp_path / "b.jsonl.zst").write_bytes(__import__("zstandard").ZstdCompressor().compress(body))
    docs, rejected, dead = _split(list(BooksSource(max_book_bytes=MIB).read(str(tmp_path / "b.jsonl.zst"))))
    assert [d.id for d in docs] == ["books/b/0", "books/b/1", "books/b/2"]
    assert [d.offset for d in dead] == [2, 3] and "over 2,097,152" in dead[1].reason


def test_books_empty_and_unreadable_files_are_one_dead_letter_each(tmp_path):
    for name, data in [("a.txt", b""), ("b.txt.gz", b""), ("c.tar", b""), ("d.zip", b""), ("e.jsonl", b""),
                       ("f.tar.gz", gzip.compress(b"not a tar at all" * 100)), ("g.zip", _zip({"x.md": b"#"}))]:
        (tmp_path / name).write_bytes(data)
        items = list(BooksSource().read(str(tmp_path / name)))
        assert len(items) == 1 and isinstance(items[0], DeadLetter), (name, items)


def test_books_a_bz2_book_of_zeros_is_given_up_at_the_cap(tmp_path):
    (tmp_path / "z.txt.bz2").write_bytes(_bz2_zeros(1024))
    [dead] = BooksSource(max_book_bytes=4 * MIB).read(str(tmp_path / "z.txt.bz2"))
    assert isinstance(dead, DeadLetter) and dead.reason == "book longer than 4,194,304 bytes"


# ---------------------------------------------------------------- arXiv
def _paper(i: int) -> bytes:
    return (f"\\documentclass{{article}}\\begin{{document}}\\section{{Intro}} Paper {i} text."
            f"\\end{{document}}\n").encode()


def test_arxiv_bulk_tar_a_corrupt_entry_a_bomb_and_a_truncation(tmp_path):
    entries = {f"2301/2301.0000{i}.gz": gzip.compress(_paper(i), mtime=0) for i in range(1, 4)}
    entries["2301/2301.00004.gz"] = gzip.compress(_paper(4), mtime=0)[:40] + b"\x00" * 30   # corrupt
    entries["2301/2301.00005.gz"] = _gz_zeros(16)                                            # a bomb
    entries["2301/2301.00006.gz"] = gzip.compress(_paper(6), mtime=0)
    whole = _tar(entries)
    (tmp_path / "bulk.tar").write_bytes(whole)
    docs, rejected, dead = _split(list(ArxivSource().read(str(tmp_path / "bulk.tar"))))
    assert sorted(d.metadata["arxiv_id"] for d in docs) == ["2301.00001", "2301.00002", "2301.00003", "2301.00006"]
    assert not rejected and sorted(d.record_id for d in dead) == ["2301.00004", "2301.00005"]
    assert any("corrupt entry" in d.reason for d in dead) and any("inflating past" in d.reason for d in dead)

    last = tarfile.open(fileobj=io.BytesIO(whole)).getmember("2301/2301.00006.gz")
    (tmp_path / "cut.tar").write_bytes(whole[: last.offset])
    docs, rejected, dead = _split(list(ArxivSource().read(str(tmp_path / "cut.tar"))))
    assert len(docs) == 3 and len(dead) == 3 and "(truncated)" in dead[-1].reason
    (tmp_path / "cut2.tar").write_bytes(whole[: last.offset_data + 20])
    docs, rejected, dead = _split(list(ArxivSource().read(str(tmp_path / "cut2.tar"))))
    # the entry cut in its data, and the archive that ends with it
    assert len(docs) == 3 and len(dead) == 4 and "2301.00006" in dead[-2].reason
    assert "archive ends early after 6 entries" in dead[-1].reason


# ---------------------------------------------------------------- Stack Exchange
HEAD = b'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'


def _row(i: int) -> bytes:
    return (f'  <row Id="{i}" PostTypeId="1" Score="1" Title="Q{i}" Body="&lt;p&gt;Question {i}&lt;/p&gt;" />\n'
            ).encode()


def test_stackexchange_empty_and_broken_site_files_are_one_dead_letter_each(tmp_path):
    good = HEAD + b"".join(_row(i) for i in range(1, 4)) + b"</posts>\n"
    write_7z(str(tmp_path / "good.7z"), {"Posts.xml": good})
    for name, data in [("empty.stackexchange.com.7z", b""), ("junk.stackexchange.com.7z", b"PK\x03\x04 a zip"),
                       ("cut.stackexchange.com.7z", (tmp_path / "good.7z").read_bytes()[:-40])]:
        (tmp_path / name).write_bytes(data)
        items = list(StackExchangeSource().read(str(tmp_path / name)))
        assert len(items) == 1 and isinstance(items[0], DeadLetter), (name, items)
    (tmp_path / "e.stackexchange.com").mkdir()
    (tmp_path / "e.stackexchange.com" / "Posts.xml").write_bytes(b"")
    [dead] = StackExchangeSource().read(str(tmp_path / "e.stackexchange.com" / "Posts.xml"))
    assert dead.reason.endswith("an empty file")


def test_stackexchange_7z_bomb_line_costs_one_dead_letter_and_later_rows_are_read(tmp_path):
    posts = HEAD + _row(1) + b"  <row " + bytes(40 * MIB) + b"\n" + _row(2) + _row(3) + b"</posts>\n"
    write_7z(str(tmp_path / "bomb.stackexchange.com.7z"), {"Posts.xml": posts})
    docs, rejected, dead = _split(list(StackExchangeSource().read(str(tmp_path / "bomb.stackexchange.com.7z"))))
    assert [d.metadata["post_id"] for d in docs] == [1, 2, 3]
    assert len(dead) == 1 and "over 16,777,216" in dead[0].reason


# ---------------------------------------------------------------- Wikipedia, C4
def test_wikipedia_empty_and_bomb_dumps_are_one_dead_letter(tmp_path):
    (tmp_path / "enwiki-pages-articles.xml").write_bytes(b"")
    (tmp_path / "enwiki-pages-articles.xml.bz2").write_bytes(_bz2_zeros(1024))
    for name in ("enwiki-pages-articles.xml", "enwiki-pages-articles.xml.bz2"):
        items = list(WikipediaSource().read(str(tmp_path / name)))
        assert len(items) == 1 and isinstance(items[0], DeadLetter), items
    page = page_xml("Alpha", 0, 1, "Alpha is a letter. " * 20)
    dump = dump_bytes("en", [page, "  <page>" + "\0" * (65 * MIB) + "</page>\n", page_xml("Beta", 0, 2, "Beta.")])
    (tmp_path / "enwiki-2-pages-articles.xml.gz").write_bytes(gzip.compress(dump, 1))
    docs, rejected, dead = _split(list(WikipediaSource().read(str(tmp_path / "enwiki-2-pages-articles.xml.gz"))))
    assert [d.metadata["title"] for d in docs] == ["Alpha", "Beta"] and len(dead) == 1


def test_c4_a_bomb_line_a_bad_line_and_an_empty_file(tmp_path):
    good = [json.dumps({"text": f"Page {i}.", "url": f"https://x/{i}", "timestamp": "t"}).encode() for i in range(3)]
    body = gzip.compress(b"\n".join([good[0], b"{bad"]) + b"\n", mtime=0) + _gz_zeros(24) + \
        gzip.compress(b"\n" + b"\n".join(good[1:]) + b"\n", mtime=0)
    (tmp_path / "c4-train.00000.json.gz").write_bytes(body)
    docs, rejected, dead = _split(list(C4Source().read(str(tmp_path / "c4-train.00000.json.gz"))))
    assert [d.id for d in docs] == ["c4/c4-train.00000/1", "c4/c4-train.00000/4", "c4/c4-train.00000/5"]
    assert len(dead) == 2 and "not JSON" in dead[0].reason and "over 8,388,608" in dead[1].reason
    (tmp_path / "empty.json.gz").write_bytes(b"")
    [empty] = C4Source().read(str(tmp_path / "empty.json.gz"))
    assert isinstance(empty, DeadLetter) and "empty" in empty.reason


# ---------------------------------------------------------------- memory under bombs
BOMB_SCRIPT = r"""
import json, resource, sys
from pipeline.sources.books import BooksSource
from pipeline.sources.c4 import C4Source
def peaks():
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    return hwm // 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
before = peaks()
items = list({"books": BooksSource, "c4": C4Source}[sys.argv[1]]().read(sys.argv[2]))
print(json.dumps({"before": before, "after": peaks(), "dead": sum(type(i).__name__ == "DeadLetter" for i in items)}))
"""


def _peak_mib(source: str, path) -> tuple[int, int, int]:
    """(peak MiB before reading, after reading, dead letters) of a fresh process reading `path`: VmHWM,
    since ru_maxrss carries the parent's peak over exec."""
    run = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, source, str(path)], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=True)
    out = json.loads(run.stdout.strip().splitlines()[-1])
    print(source, os.path.basename(str(path)), out)
    return out["before"][0], out["after"][0], out["dead"]


def test_bombs_stay_within_their_cap_in_memory(tmp_path):
    huge = tarfile.TarInfo("huge.txt")
    huge.size = 256 * MIB
    bombs = {"z.txt.bz2": _bz2_zeros(1024), "z.zip": _zip_bomb(BOOKS, "bomb.txt", 256),
             "z.tar.bz2": bz2.compress(huge.tobuf()) + _bz2_zeros(256) + bz2.compress(bytes(1024)),
             "c4.json.gz": _gz_zeros(512)}
    for name, data in bombs.items():
        (tmp_path / name).write_bytes(data)
    for name, source, cap_mib in [("z.txt.bz2", "books", 64), ("z.zip", "books", 64), ("z.tar.bz2", "books", 64),
                                  ("c4.json.gz", "c4", 8)]:
        before, after, dead = _peak_mib(source, tmp_path / name)
        assert dead == 1, name
        assert after < before + cap_mib + 250, (name, before, after)


# ---------------------------------------------------------------- a real job
def test_a_job_puts_a_corrupt_member_in_dead_letters_and_the_rest_in_docs(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "books.zip").write_bytes(_corrupt_member(_zip({"a_first.txt": BOOK.encode() * 30, **BOOKS}),
                                                               "a_first.txt"))
    args = source_command(["books", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")])
    args.func(args, LOCAL)
    dead = read_rows(str(tmp_path / "out/dead_letters"))
    assert len(dead) == 1 and "corrupt zip member a_first.txt" in dead[0]["reason"]
    kept = {r["id"] for r in read_rows(str(tmp_path / "out/docs"))}
    rejected = {r["id"] for r in read_rows(str(tmp_path / "out/rejects"))}
    assert kept | rejected == {f"books/books/b{i}" for i in range(4)}
