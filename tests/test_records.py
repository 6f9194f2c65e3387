from helpers import record_id
from pipeline.html_text import dechunk
from pipeline.records import to_document
from pipeline.schema import DeadLetter, Document
from pipeline.warc import WarcRecord


def rec(kind: str, block: bytes, **headers) -> WarcRecord:
    h = {"warc-type": kind, "warc-record-id": record_id(1), "warc-target-uri": "https://a.example/p",
         "warc-date": "2023-02-03T00:00:00Z", **headers}
    return WarcRecord(offset=10, seq=0, headers=h, block=block)


def test_wet_conversion_becomes_a_document():
    doc = to_document(rec("conversion", "Title\nBody ünïcode\r\n".encode(),
                          **{"warc-identified-content-language": "eng"}), "f")
    assert isinstance(doc, Document)
    assert doc.id == record_id(1) and doc.url == "https://a.example/p" and doc.source == "commoncrawl"
    assert doc.text == "Title\nBody ünïcode\n"
    assert doc.metadata["crawl_date"] == "2023-02-03T00:00:00Z" and doc.metadata["cc_languages"] == "eng"


def test_bad_records_become_dead_letters_with_reasons():
    bad_utf8 = to_document(rec("conversion", b"caf\xe9 au lait"), "f")
    binary = to_document(rec("conversion", b"abc\x00\x01\x02def"), "f")
    empty = to_document(rec("conversion", b"  \r\n"), "f")
    for d, why in [(bad_utf8, "invalid UTF-8 at byte 3"), (binary, "binary"), (empty, "empty")]:
        assert isinstance(d, DeadLetter) and why in d.reason and d.offset == 10 and d.file == "f"


def test_other_record_types_are_skipped():
    assert to_document(rec("request", b"GET / HTTP/1.1\r\n\r\n"), "f") is None
    assert to_document(rec("metadata", b"x: y"), "f") is None


HTML = (b"<html><head><title>T</title><script>var x = 1;</script></head><body>"
        b"<article><h1>A heading</h1><p>First paragraph of the article, long enough to count as content.</p>"
        b"<p>Second paragraph, also real prose about the weather and the garden.</p></article></body></html>")


def http(body: bytes, status=200, ctype="text/html; charset=utf-8", extra=b"") -> bytes:
    return (f"HTTP/1.1 {status} OK\r\nContent-Type: {ctype}\r\n".encode() + extra + b"\r\n" + body)


def test_warc_html_response_is_reextracted_as_lines():
    doc = to_document(rec("response", http(HTML)), "f")
    assert isinstance(doc, Document)
    lines = doc.text.split("\n")
    assert "First paragraph of the article, long enough to count as content." in lines
    assert "var x" not in doc.text and doc.metadata["extracted_from"] == "html"


def test_chunked_body_and_skipped_responses():
    chunked = b"".join(f"{len(HTML[i:i + 50]):x}\r\n".encode() + HTML[i:i + 50] + b"\r\n"
                       for i in range(0, len(HTML), 50)) + b"0\r\n\r\n"
    assert dechunk(chunked) == HTML
    doc = to_document(rec("response", http(chunked, extra=b"Transfer-Encoding: chunked\r\n")), "f")
    assert "Second paragraph" in doc.text
    assert to_document(rec("response", http(HTML, status=404)), "f") is None
    assert to_document(rec("response", http(b"\x89PNG", ctype="image/png")), "f") is None
    assert isinstance(to_document(rec("response", b"garbage"), "f"), DeadLetter)


def test_a_record_the_converter_rejects_costs_only_that_record(tmp_path):
    from pipeline.readers.crawl import read_crawl
    from pipeline.warc import gzip_member, warc_record_bytes

    def response(n, body, extra=b""):
        headers = [("WARC-Type", "response"), ("WARC-Target-URI", f"https://a.example/{n}"),
                   ("WARC-Record-ID", record_id(n)), ("Content-Type", "application/http; msgtype=response")]
        return gzip_member(warc_record_bytes(headers, http(body, extra=extra)))

    bad = response(1, b"<html>\r\n<body>not chunked at all", extra=b"Transfer-Encoding: chunked\r\n")
    path = tmp_path / "a.warc.gz"
    path.write_bytes(response(0, HTML) + bad + response(2, HTML) + response(3, HTML))
    out = list(read_crawl(str(path), 8 << 20))
    docs = [o for o in out if not isinstance(o, DeadLetter)]
    dead = [o for o in out if isinstance(o, DeadLetter)]
    assert [d.id for d in docs] == [record_id(0), record_id(2), record_id(3)]
    assert len(dead) == 1 and "chunk" in dead[0].reason and dead[0].record_id == record_id(1)
