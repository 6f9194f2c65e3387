"""The curation engine: a killed run resumes without reading again what it had read, and ends with the
outputs of an uninterrupted run; the work area survives only what a resumed run can use."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from helpers import LOCAL, conversion, record_id, write
from pipeline.cc.config import CCConfig
from pipeline.cc.job import run
from pipeline.runtime.guard import claim_output
from pipeline.warc import gzip_member

WORDS = ("garden river stone window market letter bridge candle winter orchard harbour meadow lantern "
         "valley thunder pebble willow compass ember marble").split()
FILES, PAGES, CHUNK = 4, 600, 200


def _page(rng: random.Random, n: int) -> bytes:
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) + "." for _ in range(rng.randint(4, 9))]
    if n % 7 == 0:
        lines.append("Subscribe to our newsletter for weekly updates.")   # boilerplate line
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    d = tmp_path_factory.mktemp("crawl")
    rng = random.Random(3)
    for f in range(FILES):
        pages = [_page(rng, n) for n in range(PAGES)]
        pages[5] = pages[3]   # an exact copy inside the file
        members = [gzip_member(conversion(text, record_id(f * PAGES + n), f"https://s{f}.example/{n}"))
                   for n, text in enumerate(pages)]
        write(str(d / f"crawl-{f}.warc.wet.gz"), b"".join(members))
    return str(d / "*.warc.wet.gz")


def _outputs(out: str) -> dict[str, bytes]:
    found = {}
    for part in ("docs", "rejects", "dead_letters"):
        for name in sorted(os.listdir(os.path.join(out, part))):
            with open(os.path.join(out, part, name), "rb") as f:
                found[f"{part}/{name}"] = f.read()
    return found


def _funnel(stats: dict) -> list:
    return [{k: v for k, v in row.items() if k not in ("seconds", "docs_per_core_second")} for row in stats["stages"]]


def _config(spec: str, out: str, **kw) -> CCConfig:
    return CCConfig(input=spec, output=out, languages=(), min_chars=50, chunk_docs=CHUNK, **kw)


def _kill_after_first_file(spec: str, out: str) -> int:
    """Start the job as a command, SIGKILL its process group once one input file is read; return how many
    files had been read by then."""
    cmd = [sys.executable, "-m", "smallgiant.cli", "pipeline", "cc", "--input", spec, "--output", out,
           "--languages", "all", "--min-chars", "50", "--chunk-docs", str(CHUNK), *LOCAL]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    read_dir = os.path.join(out, "_work", "read")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.isdir(read_dir) and any(n.endswith(".done") for n in os.listdir(read_dir)):
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    return sum(n.endswith(".done") for n in os.listdir(read_dir))


@pytest.fixture(scope="module")
def reference(crawl, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ref") / "out")
    return out, run(_config(crawl, out), LOCAL)


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(crawl, reference, tmp_path):
    ref_out, reference = reference
    assert reference["parts_resumed"] == 0 and reference["documents_in"] == FILES * PAGES
    assert not os.path.exists(os.path.join(ref_out, "_work"))     # the work area goes once the job succeeded

    out = str(tmp_path / "out")
    done = _kill_after_first_file(crawl, out)
    assert 1 <= done < FILES and not os.path.exists(os.path.join(out, "docs"))
    resumed = run(_config(crawl, out), LOCAL)
    assert resumed["parts_resumed"] == done
    assert _outputs(out) == _outputs(ref_out)
    assert _funnel(resumed) == _funnel(reference)               # resumed work counted once
    assert resumed["documents_in"] == FILES * PAGES


def test_fresh_reads_every_file_again(crawl, tmp_path):
    out = str(tmp_path / "out")
    assert _kill_after_first_file(crawl, out) >= 1
    stats = run(_config(crawl, out, fresh=True), LOCAL)
    assert stats["parts_resumed"] == 0 and stats["documents_in"] == FILES * PAGES


def test_a_failed_run_keeps_the_work_area_only_when_it_holds_finished_parts(tmp_path):
    for finished, kept in ((True, True), (False, False)):
        out = tmp_path / f"out-{finished}"
        with pytest.raises(RuntimeError):
            with claim_output(str(out), "pipeline cc", ["docs"], resumable=True) as claim:
                os.makedirs(claim.work("read"))
                write(claim.work("read", "000000.done" if finished else "000000.partial"), b"{}")
                raise RuntimeError("the job failed")
        assert os.path.exists(out / "_work") is kept
        assert os.path.exists(out) is kept     # a first run that leaves nothing to resume leaves no directory
    with claim_output(str(tmp_path / "out-True"), "pipeline cc", ["docs"], resumable=True, fresh=True) as claim:
        assert not os.path.exists(claim.work())


def test_the_funnel_counts_every_document_once(reference):
    stats = json.loads(json.dumps(reference[1]))
    rows = {r["stage"]: r for r in stats["stages"]}
    assert rows["exact_dedup"]["docs_in"] - rows["exact_dedup"]["docs_out"] == FILES   # one copy per file
    assert rows["line_dedup"]["lines_removed"] > 0                                  # the newsletter line
    assert stats["documents_out"] == rows["lid"]["docs_out"]


def test_cc_options_are_declared_once_on_their_fields():
    import argparse
    import dataclasses

    from pipeline.cc.config import add_arguments, from_args
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {s for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(CCConfig):
        if f.metadata.get("cli"):
            assert ("--no-" if f.metadata["negate"] else "--") + f.name.replace("_", "-") in flags
    cfg = from_args(parser.parse_args(["--input", "x", "--output", "o", "--no-near-dedup", "--languages", "de,fr",
                                       "--chunk-docs", "7"]))
    assert (cfg.near_dedup, cfg.languages, cfg.chunk_docs, cfg.exact_dedup) == (False, ("de", "fr"), 7, True)
    summary = cfg.summary()
    assert summary["languages"] == ["de", "fr"] and summary["near_dedup"] is False
    assert "input" not in summary and "chunk_docs" not in summary and summary["quality_scorers"] == []
    assert from_args(parser.parse_args(["--input", "x", "--output", "o", "--languages", "all"])).languages == ()
