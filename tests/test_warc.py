import gzip
import io

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import conversion, record_id
from pipeline.schema import DeadLetter
from pipeline.warc import WarcRecord, gzip_member, read_warc


def parse(data: bytes, **kw):
    items = list(read_warc(io.BytesIO(data), "f.warc.wet.gz", **kw))
    return [i for i in items if isinstance(i, WarcRecord)], [i for i in items if isinstance(i, DeadLetter)]


def good(n: int) -> bytes:
    return conversion(f"page {n}\nsome text of page {n}\n".encode(), record_id(n))


def test_gzip_per_record_offsets_are_member_offsets():
    members = [gzip_member(good(i)) for i in range(3)]
    recs, dead = parse(b"".join(members))
    assert not dead
    assert [r.record_id for r in recs] == [record_id(i) for i in range(3)]
    assert [r.offset for r in recs] == [0, len(members[0]), len(members[0]) + len(members[1])]
    assert recs[1].block == b"page 1\nsome text of page 1\n"
    assert recs[0].headers["warc-type"] == "conversion"


def test_plain_and_whole_file_gzip_give_the_same_records():
    raw = b"".join(good(i) for i in range(4))
    plain, d1 = parse(raw)
    whole, d2 = parse(gzip.compress(raw))
    assert not d1 and not d2
    assert [r.block for r in plain] == [r.block for r in whole]
    assert plain[2].offset == len(good(0)) + len(good(1))


def test_corrupt_member_is_one_dead_letter_and_the_next_record_survives():
    members = [gzip_member(good(i)) for i in range(3)]
    bad = bytearray(members[1])
    bad[len(bad) // 2] ^= 0xFF
    bad[len(bad) // 2 + 1] ^= 0xFF
    recs, dead = parse(members[0] + bytes(bad) + members[2])
    assert [r.record_id for r in recs] == [record_id(0), record_id(2)]
    assert len(dead) == 1 and "gzip" in dead[0].reason and dead[0].offset == len(members[0])


def test_garbage_between_members_and_truncated_tail():
    m = [gzip_member(good(i)) for i in range(2)]
    data = m[0] + b"not gzip at all" + m[1] + gzip_member(good(9))[:-12]
    recs, dead = parse(data)
    assert [r.record_id for r in recs] == [record_id(0), record_id(1)]
    assert len(dead) == 2
    assert dead[0].offset == len(m[0]) and "not a gzip member" in dead[0].reason
    assert "gzip" in dead[1].reason


# A Content-Length that is too long runs into the end of its gzip member (truncated), or, in a plain
# file, into the next record (whose header then sits where the record's end should be).
@pytest.mark.parametrize("delta,gzipped,reason", [(+50, True, "truncated record"),
                                                  (+50, False, "does not end where"),
                                                  (-7, True, "does not end where"),
                                                  (-7, False, "does not end where")])
def test_content_length_that_lies(delta, gzipped, reason):
    lie = conversion(b"some text that is long enough\n", record_id(5), length_delta=delta)
    wrap = gzip_member if gzipped else (lambda b: b)
    recs, dead = parse(wrap(good(0)) + wrap(lie) + wrap(good(1)))
    assert [r.record_id for r in recs] == [record_id(0), record_id(1)]
    assert len(dead) == 1 and reason in dead[0].reason and dead[0].record_id == record_id(5)


def test_oversized_record_is_skipped_without_buffering():
    big = conversion(b"x" * 5_000_000, record_id(7))
    recs, dead = parse(gzip_member(good(0)) + gzip_member(big) + gzip_member(good(1)), max_record_bytes=1_000_000)
    assert [r.record_id for r in recs] == [record_id(0), record_id(1)]
    assert len(dead) == 1 and "over the limit" in dead[0].reason


@settings(max_examples=300, deadline=None, derandomize=True)
@example(n=6, victim=4, where=0.9375, flips=3, gzipped=True)  # a damaged deflate stream running on
@given(n=st.integers(2, 6), victim=st.integers(0, 5), where=st.floats(0, 1), flips=st.integers(1, 4),
       gzipped=st.booleans())
def test_damage_to_one_record_never_costs_another(n, victim, where, flips, gzipped):
    victim %= n
    parts = [good(i) for i in range(n)]
    blobs = [gzip_member(p) if gzipped else p for p in parts]
    bad = bytearray(blobs[victim])
    pos = int(where * (len(bad) - 1))
    for k in range(flips):
        bad[min(pos + k, len(bad) - 1)] ^= 0x5A
    blobs[victim] = bytes(bad)
    recs, dead = parse(b"".join(blobs))
    found = {r.record_id: r.block for r in recs}
    for i in range(n):
        if i != victim:
            assert found.get(record_id(i)) == parts[i].split(b"\r\n\r\n", 1)[1][:-4]
    assert len(recs) + len(dead) >= n - 1


class _Trickle(io.RawIOBase):
    """A stream that returns a few bytes per read, so reads end inside gzip headers and records."""

    def __init__(self, data: bytes, step: int):
        self.data, self.step, self.pos = data, step, 0

    def readable(self):
        return True

    def read(self, n=-1):
        out = self.data[self.pos:self.pos + min(self.step, n if n > 0 else self.step)]
        self.pos += len(out)
        return out


@pytest.mark.parametrize("step", [1, 2, 7, 64])
def test_reads_that_end_inside_a_gzip_header_lose_nothing(step, monkeypatch):
    import pipeline.warc as warc
    monkeypatch.setattr(warc, "CHUNK", step)
    data = b"".join(gzip_member(good(i)) for i in range(20))
    items = list(read_warc(_Trickle(data, step), "f"))
    assert [i.record_id for i in items] == [record_id(i) for i in range(20)]


LAYOUTS = {"plain": lambda parts: b"".join(parts),
           "whole-file gzip": lambda parts: gzip.compress(b"".join(parts)),
           "gzip per record": lambda parts: b"".join(gzip_member(p) for p in parts)}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_length_that_lies_over_the_limit_costs_that_record_only(layout):
    body = b"a short record that claims to be huge\n"
    lie = conversion(body, record_id(99), length_delta=50_000_000)
    parts = [good(i) for i in range(5)] + [lie] + [good(i) for i in range(5, 10)]
    recs, dead = parse(LAYOUTS[layout](parts), max_record_bytes=1 << 20)
    assert [r.record_id for r in recs] == [record_id(i) for i in range(10)]
    assert len(dead) == 1 and dead[0].record_id == record_id(99) and "over the limit" in dead[0].reason
    assert dead[0].preview == body + b"\r\n\r\n"  # its own bytes, none of the next record's
    members = [len(gzip_member(p)) for p in parts]
    expected = {"plain": len(b"".join(parts[:5])), "whole-file gzip": 0, "gzip per record": sum(members[:5])}
    assert dead[0].offset == expected[layout]
    if layout == "plain":
        assert f"next record found at offset {len(b''.join(parts[:6]))}" in dead[0].reason


@pytest.mark.parametrize("layout", ["plain", "whole-file gzip"])
def test_an_honest_oversized_record_quoting_warc_lines_is_skipped_whole(layout):
    # the payload quotes record starts, none of which begins a well-formed record within the limit
    quoted = (b"\nWARC/1.0\r\nWARC-Type: conversion\r\nContent-Length: 10\r\n\r\n0123456789XXXX"
              b"\nWARC/1.0\r\nContent-Length: 99999999\r\n\r\n" b"\nWARC/1.0\r\nno header end")
    payload = (b"y" * 70_000 + quoted) * 20
    big = conversion(payload, record_id(50))
    parts = [good(0), big, good(1), good(2)]
    recs, dead = parse(LAYOUTS[layout](parts), max_record_bytes=100_000)
    assert [r.record_id for r in recs] == [record_id(i) for i in range(3)]
    assert len(dead) == 1 and dead[0].reason == f"record of {len(payload)} bytes is over the limit of 100000 bytes"


def test_a_length_under_the_limit_that_runs_past_the_end_is_one_dead_letter():
    lie = conversion(b"the last record, cut short\n", record_id(8), length_delta=5000)
    for data in (good(0) + good(1) + lie, gzip.compress(good(0) + lie + good(1))):
        recs, dead = parse(data)
        assert {r.record_id for r in recs} == {record_id(0), record_id(1)}
        assert len(dead) == 1 and dead[0].record_id == record_id(8)


@pytest.mark.parametrize("data,reason", [(b"", "empty file"), (b" \r\n\r\n \n", "no WARC record"),
                                         (gzip.compress(b""), "no WARC record"),
                                         (gzip.compress(b"\r\n" * 10), "no WARC record")],
                         ids=["empty", "whitespace", "gzip of nothing", "gzip of blank lines"])
def test_a_file_without_records_is_one_dead_letter(data, reason):
    recs, dead = parse(data)
    assert not recs and len(dead) == 1 and reason in dead[0].reason and dead[0].offset == 0


@pytest.mark.parametrize("layout", ["plain", "whole-file gzip"])
def test_junk_longer_than_a_read_is_one_dead_letter(layout, monkeypatch):
    import pipeline.warc as warc
    monkeypatch.setattr(warc, "CHUNK", 4096)
    junk = bytes(range(256)) * 200  # 51 KB over 4 KB reads, holding "WARC/" once, not a record start
    junk = junk[:20_000] + b"WARC/0.9\r\n" + junk[20_000:]
    recs, dead = parse(LAYOUTS[layout]([good(0), junk, good(1)]))
    assert [r.record_id for r in recs] == [record_id(0), record_id(1)]
    assert len(dead) == 1 and "not a WARC record" in dead[0].reason
    assert dead[0].preview == junk[:DeadLetter.PREVIEW_BYTES]
