import gzip
import http.server
import threading

import pytest

from helpers import write
from pipeline.inputs import InputError, RetryingHttpReader, expand_inputs, read_listing


def test_globs_lists_and_listings(tmp_path):
    for name in ("b.warc.wet.gz", "a.warc.wet.gz", "c.txt"):
        write(str(tmp_path / name), b"x")
    listing = write(str(tmp_path / "wet.paths.gz"), gzip.compress(
        b"crawl-data/CC-MAIN-2023-06/segments/1/wet/one.warc.wet.gz\ncrawl-data/two.warc.wet.gz\n\n"))
    files = expand_inputs(f"{tmp_path}/*.warc.wet.gz,{tmp_path}/a.warc.wet.gz")
    assert files == [str(tmp_path / "a.warc.wet.gz"), str(tmp_path / "b.warc.wet.gz")]
    assert read_listing(listing, "s3://commoncrawl/") == [
        "s3://commoncrawl/crawl-data/CC-MAIN-2023-06/segments/1/wet/one.warc.wet.gz",
        "s3://commoncrawl/crawl-data/two.warc.wet.gz"]
    assert expand_inputs(listing, limit=1) == [
        "https://data.commoncrawl.org/crawl-data/CC-MAIN-2023-06/segments/1/wet/one.warc.wet.gz"]
    with pytest.raises(InputError, match="no file matches"):
        expand_inputs(f"{tmp_path}/*.warc.gz")


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Throttles the first request, drops the connection half-way through the second, then serves
    Range requests properly."""
    payload = bytes(range(256)) * 4000
    calls: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.calls.append(self.headers.get("Range"))
        n = len(self.calls)
        if n == 1:
            self.send_response(503)
            self.end_headers()
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if n == 2:
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


def test_http_reads_survive_throttling_and_dropped_connections():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/f.warc.wet.gz"
        reader = RetryingHttpReader(url, retries=4, backoff=0.01, timeout=5)
        data = b""
        while chunk := reader.read(65536):
            data += chunk
        assert data == _FlakyHandler.payload
        assert _FlakyHandler.calls[0] is None and _FlakyHandler.calls[-1].startswith("bytes=")
    finally:
        server.shutdown()
