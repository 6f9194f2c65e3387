"""Faults and bombs for the WARC/WET reader: every bad stretch is one dead letter, every good record is
read, and decompression bombs (gzip members, HTTP content codings) cost about the record cap in memory."""
import gzip
import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import zlib

import pytest
import zstandard

from helpers import conversion, record_id
from pipeline.readers.crawl import read_crawl
from pipeline.runtime.counters import capture
from pipeline.schema import DeadLetter
from pipeline.html_text import HttpError, decode_body
from pipeline.warc import ABANDON_FACTOR, DEFAULT_MAX_RECORD_BYTES, gzip_member, warc_record_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB_MIB = 1024
HTML = (b"<html><body><article><h1>A heading</h1><p>A paragraph of real prose about the weather, the "
        b"garden and the river, long enough to be taken for content.</p></article></body></html>")


def zeros_gzip(mib: int, prefix: bytes = b"") -> bytes:
    """One valid gzip member of `prefix` and `mib` MiB of zeros, built without holding the zeros: each MiB
    is compressed once and repeated, which a full flush (no back references across it) allows."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    zero = bytes(1 << 20)
    block = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(mib):
        crc = zlib.crc32(zero, crc)
    size = (len(prefix) + (mib << 20)) & 0xFFFFFFFF
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head + block * mib + c.flush() + struct.pack("<II", crc, size)


def zeros_br(mib: int) -> bytes:
    brotli = pytest.importorskip("brotli")
    c = brotli.Compressor(quality=1)
    zero = bytes(1 << 20)
    return b"".join(c.process(zero) for _ in range(mib)) + c.finish()


def zeros_zstd(mib: int) -> bytes:
    c = zstandard.ZstdCompressor(level=3).compressobj()
    zero = bytes(1 << 20)
    return b"".join(c.compress(zero) for _ in range(mib)) + c.flush()


def http(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n" + extra + b"\r\n" + body


def response(n: int, body: bytes, extra: bytes = b"") -> bytes:
    headers = [("WARC-Type", "response"), ("WARC-Target-URI", f"https://a.example/{n}"),
               ("WARC-Record-ID", record_id(n)), ("Content-Type", "application/http; msgtype=response")]
    return warc_record_bytes(headers, http(body, extra))


def other(kind: str, n: int) -> bytes:
    return warc_record_bytes([("WARC-Type", kind), ("WARC-Record-ID", record_id(n))], b"format: WARC File Format 1.0\r\n")


def page(n: int) -> bytes:
    return conversion(f"Page {n}\nAn ordinary page of text, number {n}, long enough to keep.\n".encode(), record_id(n))


# ---------------------------------------------------------------------------------------------- bombs

READ = """
import json, resource, sys
from pipeline.records import to_document
from pipeline.schema import DeadLetter
from pipeline.warc import read_warc
items = []
with open(sys.argv[1], "rb") as f:
    for item in read_warc(f, sys.argv[1]):
        if not isinstance(item, DeadLetter):
            item = to_document(item, sys.argv[1])
        items.append("dead: " + item.reason if isinstance(item, DeadLetter) else getattr(item, "id", "skipped"))
print(json.dumps({"items": items, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def read_in_subprocess(path) -> dict:
    done = subprocess.run([sys.executable, "-c", READ, str(path)], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def baseline_kib(tmp_path_factory) -> int:
    """Peak RSS of reading a bomb-free file of the same kinds of records, through the same code."""
    path = tmp_path_factory.mktemp("baseline") / "plain.warc.gz"
    path.write_bytes(b"".join(gzip_member(r) for r in (page(0), response(1, HTML), page(2))))
    result = read_in_subprocess(path)
    assert result["items"] == [record_id(0), record_id(1), record_id(2)]
    return result["maxrss_kib"]


HUGE_HEADER = f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Record-ID: {record_id(9)}\r\n" \
              f"Content-Length: {GIB_MIB << 20}\r\n\r\n".encode()
BOMBS = {
    "gzip member of zeros": lambda: zeros_gzip(GIB_MIB),
    "record claiming 1 GiB, in its member": lambda: zeros_gzip(GIB_MIB, HUGE_HEADER),
    "gzip HTTP body": lambda: gzip_member(response(9, zeros_gzip(GIB_MIB), b"Content-Encoding: gzip\r\n")),
    "br HTTP body": lambda: gzip_member(response(9, zeros_br(GIB_MIB), b"Content-Encoding: br\r\n")),
    "zstd HTTP body": lambda: gzip_member(response(9, zeros_zstd(GIB_MIB), b"Content-Encoding: zstd\r\n")),
}


@pytest.mark.parametrize("bomb", BOMBS)
def test_a_bomb_is_one_dead_letter_and_costs_about_the_cap(bomb, tmp_path, baseline_kib):
    path = tmp_path / "bomb.warc.gz"
    path.write_bytes(gzip_member(page(0)) + BOMBS[bomb]() + gzip_member(response(1, HTML)))
    result = read_in_subprocess(path)
    items = result["items"]
    assert items[0] == record_id(0) and items[-1] == record_id(1) and len(items) == 3
    assert items[1].startswith("dead: ")
    inflated = re.search(r"inflated (\d+) bytes", items[1]) or re.search(r"past the limit of (\d+)", items[1])
    assert int(inflated.group(1)) <= (ABANDON_FACTOR + 1) * DEFAULT_MAX_RECORD_BYTES  # stopped early
    assert result["maxrss_kib"] < baseline_kib + (DEFAULT_MAX_RECORD_BYTES + (64 << 20)) // 1024


def test_an_honest_oversized_record_in_a_plain_file_is_skipped_without_buffering(tmp_path, baseline_kib):
    size = 100 << 20
    header = f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Record-ID: {record_id(9)}\r\nContent-Length: {size}\r\n\r\n"
    path = tmp_path / "big.warc.wet"
    with open(path, "wb") as f:
        f.write(page(0) + header.encode())
        for _ in range(size >> 20):
            f.write(b"x" * (1 << 20))
        f.write(b"\r\n\r\n" + response(1, HTML))
    result = read_in_subprocess(path)
    assert result["items"] == [record_id(0), f"dead: record of {size} bytes is over the limit of "
                               f"{DEFAULT_MAX_RECORD_BYTES} bytes", record_id(1)]
    assert result["maxrss_kib"] < baseline_kib + (DEFAULT_MAX_RECORD_BYTES + (64 << 20)) // 1024


def test_a_whole_file_gzip_stream_far_longer_than_the_abandon_bound_is_read_to_its_end():
    from pipeline.warc import read_warc
    cap = 16 << 10
    pages = [page(i) for i in range(4000)]  # about 400 KB inflated, over twice ABANDON_FACTOR * cap
    assert sum(map(len, pages)) > 2 * ABANDON_FACTOR * cap
    items = list(read_warc(io.BytesIO(gzip.compress(b"".join(pages))), "f", max_record_bytes=cap))
    assert [i.record_id for i in items] == [record_id(i) for i in range(4000)]


@pytest.mark.parametrize("coding,pack", [("gzip", lambda b: gzip.compress(b)), ("deflate", zlib.compress),
                                         ("zstd", lambda b: zstandard.ZstdCompressor().compress(b))])
def test_content_codings_decode_within_the_cap_and_stop_past_it(coding, pack):
    body = HTML * 100
    assert decode_body({"content-encoding": coding}, pack(body), len(body)) == body
    with pytest.raises(HttpError, match="past the limit of"):
        decode_body({"content-encoding": coding}, pack(body), len(body) - 1)
    with pytest.raises(HttpError, match="truncated"):
        decode_body({"content-encoding": coding}, pack(body)[:-8], len(body))


def test_stacked_codings_are_undone_in_reverse_order():
    brotli = pytest.importorskip("brotli")
    body = HTML * 10
    assert decode_body({"content-encoding": "gzip, br"}, brotli.compress(gzip.compress(body)), 1 << 20) == body
    with pytest.raises(HttpError, match="unsupported"):
        decode_body({"content-encoding": "compress"}, body, 1 << 20)


# ------------------------------------------------------------------------------------ reconciliation

CAP = 1 << 20
TRUNCATED = conversion(random.Random(0).randbytes(3000).hex().encode(), record_id(80))


def damaged(member: bytes) -> bytes:
    bad = bytearray(member)
    for k in range(3):
        bad[len(bad) // 2 + k] ^= 0x5A
    return bytes(bad)


def mixed_file(layout: str) -> tuple[bytes, list[str], list[str]]:
    """A file of good records and one of each fault; the good record ids, and what each dead letter says."""
    lie_over = conversion(b"claims to be fifty megabytes\n", record_id(70), length_delta=50 << 20)
    lie_under = conversion(b"claims forty bytes more than it has\n", record_id(71), length_delta=40)
    zipped_bomb = response(72, zeros_gzip(64), b"Content-Encoding: gzip\r\n")  # 64 MiB of zeros in 64 KB
    in_damaged = page(73)
    head = [other("warcinfo", 60), page(0), response(1, HTML), lie_over, page(2),
            response(3, gzip.compress(HTML), b"Content-Encoding: gzip\r\n"), zipped_bomb, page(4), lie_under,
            page(5), other("request", 61), page(6)]
    junk = b"\x00garbage that is neither gzip nor WARC\xff" * 50
    tail = [page(7), TRUNCATED]
    if layout == "plain":
        data = (b"".join(head) + junk + page(8) + damaged(gzip_member(in_damaged)) + b"".join(tail))
        data = data[:-len(TRUNCATED) // 2]
    elif layout == "gzip per record":
        data = (b"".join(gzip_member(r) for r in head) + junk + gzip_member(page(8))
                + damaged(gzip_member(in_damaged)) + b"".join(gzip_member(r) for r in tail))[:-1000]
    else:  # one gzip stream for most of the file, then a damaged member and a stream cut short
        data = (gzip.compress(b"".join(head) + junk + page(8)) + damaged(gzip_member(in_damaged))
                + gzip.compress(b"".join(tail))[:-1000])
    ids = [record_id(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 7)]
    junk_reason = "not a gzip member" if layout == "gzip per record" else "not a WARC record"
    damaged_reason = "not a WARC record" if layout == "plain" else "corrupt gzip member"
    truncated_reason = "truncated record" if layout == "plain" else "corrupt gzip member"
    # a length that lies short of the limit runs into the next record, or into the end of its own member
    under_reason = "truncated record" if layout == "gzip per record" else "does not end where"
    reasons = ["over the limit", "past the limit", under_reason, junk_reason, damaged_reason, truncated_reason]
    return data, ids, reasons


@pytest.mark.parametrize("layout", ["plain", "gzip per record", "whole-file gzip"])
def test_every_good_record_is_read_and_every_bad_stretch_is_one_dead_letter(layout, tmp_path):
    data, ids, reasons = mixed_file(layout)
    path = tmp_path / "mixed.warc.gz"
    path.write_bytes(data)
    with capture() as counts:
        out = list(read_crawl(str(path), CAP))
    docs = [o for o in out if not isinstance(o, DeadLetter)]
    dead = [o for o in out if isinstance(o, DeadLetter)]
    assert sorted(d.id for d in docs) == sorted(ids)
    assert len(dead) == len(reasons), [d.reason for d in dead]
    for letter, why in zip(dead, reasons):
        assert why in letter.reason and letter.file == str(path) and 0 <= letter.offset < len(data)
        assert len(letter.preview) <= 256
    assert counts["read.skipped_records"] == 2  # warcinfo and request
    assert counts["read.records"] == len(reasons) + 2       # documents are counted by the engine


@pytest.mark.parametrize("make", ["missing", "directory", "empty", "whitespace"])
def test_an_empty_or_unreadable_file_is_one_dead_letter(make, tmp_path):
    path = tmp_path / "f.warc.wet.gz"
    if make == "directory":
        path.mkdir()
    elif make == "empty":
        path.write_bytes(b"")
    elif make == "whitespace":
        path.write_bytes(b"\r\n \n\t\n")
    out = list(read_crawl(str(path), CAP))
    assert len(out) == 1 and isinstance(out[0], DeadLetter)
    why = {"missing": "cannot open", "directory": "cannot open", "empty": "empty file", "whitespace": "no WARC record"}
    assert why[make] in out[0].reason
