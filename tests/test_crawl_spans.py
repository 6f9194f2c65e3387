"""A per-record-gzip crawl file read as byte ranges at once: the ranges start at records, and together
they give exactly what the whole file gives, damage included."""
import gzip
import http.server
import random
import threading

import pytest

from helpers import conversion, record_id, write
from pipeline.inputs import WHOLE
from pipeline.readers.crawl import crawl_spans, read_crawl
from pipeline.schema import DeadLetter
from pipeline.warc import GZIP_MEMBER_HEADER, gzip_member, member_start

MAX_RECORD = 1 << 16


def _text(rng: random.Random, n: int) -> bytes:
    words = "alpha beta gamma delta river stone window garden letter harbour".split()
    return "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(5, 40))) + f" {n}."
                     for _ in range(rng.randint(1, 12))).encode()


def _crawl(path: str, pages: int = 300) -> str:
    """Members of pages, with a corrupt member, garbage between members, a fake member header and an
    oversized record among them."""
    rng = random.Random(7)
    members = [gzip_member(conversion(_text(rng, n), record_id(n), f"https://s.example/{n}")) for n in range(pages)]
    corrupt = bytearray(members[40])
    corrupt[len(corrupt) // 2] ^= 0xFF
    members[40] = bytes(corrupt)
    members[90] = b"not gzip at all " * 40 + members[90]
    members[150] = GZIP_MEMBER_HEADER + b"\x00 a fake header " * 10 + members[150]
    members[200] = gzip_member(conversion(b"y" * (MAX_RECORD * 2), record_id(10_000)))
    return write(path, b"".join(members))


def _items(path: str, span=WHOLE) -> list[tuple]:
    out = []
    for item in read_crawl(path, MAX_RECORD, span):
        if isinstance(item, DeadLetter):
            out.append(("dead", item.offset, item.reason))
        else:
            out.append(("doc", item.id, item.metadata["warc_offset"], item.text))
    return out


@pytest.mark.parametrize("split_bytes", [1_000, 7_000, 40_000])
def test_the_parts_of_a_file_give_what_the_whole_file_gives(tmp_path, split_bytes):
    path = _crawl(str(tmp_path / "a.warc.wet.gz"))
    whole = _items(path)
    assert sum(i[0] == "dead" for i in whole) >= 3 and sum(i[0] == "doc" for i in whole) >= 290
    spans = crawl_spans(path, split_bytes, 4096)
    assert len(spans) > 3 and spans[0][0] == 0 and spans[-1][1] is None
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))          # back to back, no gap, no overlap
    data = open(path, "rb").read()
    for start, _ in spans[1:]:
        assert member_start(data[start:start + 100]) == 0                  # every part starts at a record
    assert [i for span in spans for i in _items(path, span)] == whole


def test_at_most_the_given_number_of_parts(tmp_path):
    path = _crawl(str(tmp_path / "a.warc.wet.gz"))
    assert 2 <= len(crawl_spans(path, 1_000, 5)) <= 5


def test_a_fake_member_header_is_no_record_start():
    real = gzip_member(conversion(b"a page\n", record_id(1)))
    fake = GZIP_MEMBER_HEADER + b"\x00\x00\x00\x00\x00\x00 this does not inflate"
    other = gzip.compress(b"not a WARC record")           # a real gzip member, but of something else
    assert member_start(fake + other + real) == len(fake) + len(other)
    assert member_start(fake + other) is None


def test_files_that_cannot_be_split_are_read_whole(tmp_path):
    rng = random.Random(1)
    records = b"".join(conversion(_text(rng, n), record_id(n)) for n in range(300))
    one_stream = write(str(tmp_path / "whole.warc.wet.gz"), gzip.compress(records))
    plain = write(str(tmp_path / "plain.warc.wet"), records)
    per_record = _crawl(str(tmp_path / "a.warc.wet.gz"))
    size = len(open(per_record, "rb").read())
    assert crawl_spans(one_stream, 1_000, 4096) == [WHOLE]
    assert crawl_spans(plain, 1_000, 4096) == [WHOLE]
    assert crawl_spans(per_record, size, 4096) == [WHOLE]                   # no larger than one part
    assert crawl_spans(per_record, 0, 4096) == [WHOLE]                      # splitting off
    assert crawl_spans(str(tmp_path / "missing.warc.wet.gz"), 1_000, 4096) == [WHOLE]


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()

    def do_GET(self):
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_file_over_http_is_read_in_parts(tmp_path):
    path = _crawl(str(tmp_path / "a.warc.wet.gz"))
    _RangeHandler.payload = open(path, "rb").read()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/a.warc.wet.gz"
        spans = crawl_spans(url, 7_000, 4096)
        assert spans == crawl_spans(path, 7_000, 4096) and len(spans) > 3
        assert [i for span in spans for i in _items(url, span)] == _items(path)
    finally:
        server.shutdown()
