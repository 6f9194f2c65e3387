"""Faults against outputs: an output that overlaps an input, a directory the job did not write, a second job
on the same output, stale leases, and the same rules on a Beam filesystem that is not local disk. Every
refusal leaves every file outside the output byte-for-byte as it was."""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import socket
import subprocess
import sys
import time

import pytest

from helpers import LOCAL, STORE, read_rows, sample_wet
from pipeline.runtime.guard import LEASE, MARKER, OutputError, claim_output
from smallgiant.cli import main


def tree(root) -> dict[str, str]:
    """Every file under `root` and its SHA-256."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def cc(inp, out, *extra) -> int:
    return main(["pipeline", "cc", "--input", str(inp), "--output", str(out), "--min-chars", "50",
                 "--languages", "all", *extra, *LOCAL])


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    root = tmp_path_factory.mktemp("crawl")
    sample_wet(str(root / "a.warc.wet.gz"))
    sample_wet(str(root / "b.warc.wet.gz"), seed=1)
    return root


# ---------------------------------------------------------------- outputs never overlap inputs
@pytest.mark.parametrize("case", ["equal", "inside", "contains", "symlink"])
def test_an_output_that_overlaps_an_input_is_refused_before_anything_is_read(tmp_path, crawl, capsys, case):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.warc.wet.gz").write_bytes((crawl / "a.warc.wet.gz").read_bytes())
    (data / "notes.txt").write_text("keep me")
    inp, out = {
        "equal": (data / "a.warc.wet.gz", data / "a.warc.wet.gz"),
        "inside": (data, data / "out"),             # a directory input, the output inside it
        "contains": (data / "a.warc.wet.gz", data),  # the output holds the input
        "symlink": (data / "a.warc.wet.gz", tmp_path / "link"),
    }[case]
    if case == "symlink":
        os.symlink(data, tmp_path / "link")
    before = tree(tmp_path)
    if case == "inside":
        code = main(["pipeline", "books", "--input", f"{inp}/", "--output", str(out), *LOCAL])
    else:
        code = cc(inp, out)
    err = capsys.readouterr().err
    assert code == 2
    assert str(out) in err and "the input" in err and "never writes where it reads" in err
    assert tree(tmp_path) == before


def test_an_output_the_input_glob_would_match_is_refused(tmp_path, crawl, capsys):
    (tmp_path / "a.warc.wet.gz").write_bytes((crawl / "a.warc.wet.gz").read_bytes())
    assert cc(f"{tmp_path}/*", tmp_path / "out") == 2
    assert "matches the input" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_tokenizer_refuses_the_manifests_data_root_as_its_output(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "docs.jsonl").write_text(json.dumps({"text": "some text " * 50}) + "\n")
    (root / "unrelated.txt").write_text("a user's file")
    (root / "m.yaml").write_text("name: m\nsources:\n  a: {share: 1.0, epochs: 1, paths: [a/docs.jsonl]}\n")
    before = tree(tmp_path)
    code = main(["tokenizer", "train", "--manifest", str(root / "m.yaml"), "--output", str(root)])
    assert code == 2 and "never writes where it reads" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_a_rerun_never_reads_its_own_outputs(tmp_path, crawl, capsys):
    (tmp_path / "a.warc.wet.gz").write_bytes((crawl / "a.warc.wet.gz").read_bytes())
    assert cc(tmp_path / "a.warc.wet.gz", tmp_path / "out") == 0
    capsys.readouterr()
    before = tree(tmp_path)
    # a listing of the directory now names the first run's output (its stats.json) as an input
    (tmp_path / "in.paths").write_text("a.warc.wet.gz\nout/stats.json\n")
    before = tree(tmp_path)
    assert cc(tmp_path / "in.paths", tmp_path / "out", "--paths-prefix", str(tmp_path)) == 2
    assert "contains the input" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_the_trainer_refuses_a_run_directory_inside_its_dataset(tmp_path):
    pytest.importorskip("torch")
    from tokenizer.shard_format import write_token_dataset
    import numpy as np
    data = tmp_path / "data"
    write_token_dataset(str(data), [("a", np.arange(1, 300, dtype=np.uint16))], 128, vocab_size=512, eos_id=2,
                        bos_id=1)
    before = tree(tmp_path)
    from train.config import preset
    from train.trainer import train
    with pytest.raises(OutputError, match="lies inside the input"):
        train(preset("tiny"), str(data), str(data / "run"))
    assert tree(tmp_path) == before


# ---------------------------------------------------------------- a job removes only what it wrote
def test_a_directory_no_job_wrote_is_refused_and_overwrite_replaces_only_the_jobs_parts(tmp_path, crawl, capsys):
    out = tmp_path / "out"
    (out / "docs").mkdir(parents=True)
    (out / "docs" / "mine.parquet").write_bytes(b"a user's file")
    (out / "README").write_text("a user's notes")
    before = tree(tmp_path)
    assert cc(crawl / "a.warc.wet.gz", out) == 2
    err = capsys.readouterr().err
    assert "no smallgiant job wrote" in err and "--overwrite" in err
    assert tree(tmp_path) == before
    assert cc(crawl / "a.warc.wet.gz", out, "--overwrite") == 0
    assert (out / "README").read_text() == "a user's notes"        # not one of the job's parts
    assert not (out / "docs" / "mine.parquet").exists()           # docs/ is, and was replaced
    assert sorted(os.listdir(out / "docs")) == ["part-00000.parquet"]


def test_a_rerun_removes_its_own_old_files_and_refuses_a_file_it_did_not_write(tmp_path, crawl, capsys):
    out = tmp_path / "out"
    assert cc(f"{crawl}/*.warc.wet.gz", out) == 0                  # a shard per input file
    assert sorted(os.listdir(out / "docs")) == ["part-00000.parquet", "part-00001.parquet"]
    marker = json.loads((out / MARKER).read_text())
    assert marker["job"] == "pipeline cc" and "stats.json" in marker["files"]
    assert "docs/part-00001.parquet" in marker["files"]
    assert cc(crawl / "a.warc.wet.gz", out) == 0                   # one shard now: the other goes
    assert sorted(os.listdir(out / "docs")) == ["part-00000.parquet"]
    (out / "rejects" / "added-by-hand.parquet").write_bytes(b"x")
    capsys.readouterr()
    before = tree(tmp_path)
    assert cc(crawl / "a.warc.wet.gz", out) == 2
    assert "rejects/added-by-hand.parquet" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_another_jobs_output_is_refused(tmp_path, crawl, capsys):
    out = tmp_path / "out"
    assert cc(crawl / "a.warc.wet.gz", out) == 0
    capsys.readouterr()
    books = tmp_path / "books"
    books.mkdir()
    (books / "a.txt").write_text("A book. " * 200)
    before = tree(tmp_path)
    assert main(["pipeline", "books", "--input", str(books / "a.txt"), "--output", str(out), *LOCAL]) == 2
    assert "the output of `pipeline cc`" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_a_marker_that_names_files_outside_the_output_is_refused(tmp_path, crawl, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "precious.txt").write_text("not the job's")
    (out / MARKER).write_text(json.dumps({"job": "pipeline cc", "files": ["../precious.txt"]}))
    before = tree(tmp_path)
    assert cc(crawl / "a.warc.wet.gz", out) == 2
    assert "'../precious.txt', which is no file inside the output" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_a_failed_first_run_leaves_no_output(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with claim_output(str(out), "job", ["docs"]):
            raise RuntimeError("the job failed")
    assert not out.exists()


# ---------------------------------------------------------------- one job per output
def _lease(out, **fields):
    out.mkdir(parents=True, exist_ok=True)
    record = {"job": "pipeline cc", "host": socket.gethostname(), "pid": os.getpid(), "token": "t",
              "started": "2026-01-01T00:00:00+00:00", "started_unix": time.time(), **fields}
    (out / LEASE).write_text(json.dumps(record))


def test_a_held_output_is_refused_naming_its_holder(tmp_path, crawl, capsys):
    out = tmp_path / "out"
    _lease(out, pid=os.getppid())
    before = tree(tmp_path)
    assert cc(crawl / "a.warc.wet.gz", out) == 2
    err = capsys.readouterr().err
    assert f"pid {os.getppid()}" in err and socket.gethostname() in err and "in use by `pipeline cc`" in err
    assert tree(tmp_path) == before


def test_a_lease_whose_process_is_gone_is_taken_over(tmp_path, crawl, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    _lease(out, pid=dead.pid)
    assert cc(crawl / "a.warc.wet.gz", out) == 0
    assert f"its process {dead.pid} on this host is gone" in caplog.text
    assert not (out / LEASE).exists() and (out / "stats.json").exists()


def test_a_lease_from_another_host_is_taken_over_only_when_older_than_the_limit(tmp_path):
    out = tmp_path / "out"
    _lease(out, host="elsewhere", pid=1, started_unix=time.time() - 7200)
    with pytest.raises(OutputError, match="in use by"):
        with claim_output(str(out), "pipeline cc", ["docs"], max_lease_age=3):
            pass
    with claim_output(str(out), "pipeline cc", ["docs"], max_lease_age=1):
        held = json.loads((out / LEASE).read_text())
        assert held["pid"] == os.getpid()
    assert not (out / LEASE).exists()


def test_two_jobs_on_one_output_one_fails_fast_the_other_completes(tmp_path, crawl):
    out = tmp_path / "out"
    for i in range(40):   # enough input that the first job is still running when the second starts
        os.symlink(crawl / "a.warc.wet.gz", tmp_path / f"{i:02d}.warc.wet.gz")
    code = "import sys; from smallgiant.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["pipeline", "cc", "--input", f"{tmp_path}/*.warc.wet.gz", "--output", str(out), "--min-chars", "50",
            "--languages", "all", *LOCAL]
    first = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=os.path.dirname(os.path.dirname(__file__)))
    deadline = time.time() + 60
    while not (out / LEASE).exists():
        assert time.time() < deadline and first.poll() is None, "the first job never took the lease"
        time.sleep(0.05)
    t0 = time.time()
    second = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    assert second.returncode == 2 and "in use by `pipeline cc`" in second.stderr
    assert first.poll() is None, "the second job should have failed while the first was still running"
    assert time.time() - t0 < 30
    assert first.wait(timeout=120) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents_out"] == len(read_rows(str(out / "docs"))) > 0
    assert not (out / LEASE).exists()


# ---------------------------------------------------------------- the same rules on an object store
def test_claims_on_an_object_store():
    STORE.clear()
    out = "memstore://bucket/out"
    STORE["memstore://bucket/out/notes.txt"] = b"a user's file"
    with pytest.raises(OutputError, match="no smallgiant job wrote"):
        with claim_output(out, "pipeline cc", ["docs", "stats.json"]):
            pass
    assert set(STORE) == {"memstore://bucket/out/notes.txt"}
    with pytest.raises(OutputError, match="is the input"):
        claim_output(out, "pipeline cc", ["docs"], inputs=[out + "/"])
    for shards in (3, 1):
        with claim_output(out, "pipeline cc", ["docs", "stats.json"], overwrite=True) as claim:
            assert LEASE in {posixpath.basename(k) for k in STORE}
            for i in range(shards):
                STORE[claim.stage("docs", f"part-{i:05d}.parquet")] = b"rows"
            claim.publish(["docs"])
            claim.write("stats.json", b"{}")
    keys = sorted(k[len(out) + 1:] for k in STORE)
    assert keys == [MARKER, "docs/part-00000.parquet", "notes.txt", "stats.json"]
    assert json.loads(STORE[f"{out}/{MARKER}"])["files"] == ["docs/part-00000.parquet", "stats.json"]

