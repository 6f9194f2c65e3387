"""Names read from files stay where they belong: manifests refuse YAML aliases (a "billion laughs" is
refused before anything expands) and relative paths that leave the data root, dataset.json names only the
format's own shards, listings name only paths under --paths-prefix, and checkpoint metadata only files in
its checkpoint."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import write
from pipeline.inputs import InputError, expand_inputs, read_listing
from tokenizer.manifest import ManifestError, load_manifest
from tokenizer.shard_format import ShardFormatError, TokenDataset, write_token_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = """\
name: test
sources:
  a: {share: 0.75, epochs: 1.5, paths: ["a/*.parquet"]}
  b: {share: 0.25, epochs: 0.5, paths: ["b/*.parquet"]}
"""


def billion_laughs() -> str:
    """Nine levels of ten aliases each under `name`: 10^9 strings once expanded, in under a kilobyte. The
    name must be a string, so a loader that built it would expand it into the error message."""
    levels = ['  - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"  - &{name} [{','.join(['*' + prev] * 10)}]")
    return "name:\n" + "\n".join(levels) + "\nsources: {}\n"


LOAD_AND_MEASURE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))   # an expansion dies here, not in the machine
from tokenizer.manifest import ManifestError, load_manifest
try:
    load_manifest(sys.argv[1])
    print("loaded")
except ManifestError as exc:
    print(repr(str(exc)))
with open("/proc/self/status") as f:
    print(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
"""


def test_a_billion_laughs_manifest_is_refused_before_anything_expands(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs())
    assert path.stat().st_size < 1024
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_MEASURE, str(path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    message, peak_kib = proc.stdout.splitlines()
    # the child's own peak RSS (VmHWM): ru_maxrss after exec starts from the forking parent's peak
    print(f"message {len(message)} chars, peak RSS {int(peak_kib) / 1024:.0f} MiB")
    assert "laughs.yaml: line 2: YAML anchor &a" in message and len(message) < 500
    assert int(peak_kib) < 100 * 1024


@pytest.mark.parametrize("text, line, what", [
    (GOOD + "extra: &x 1\n", 5, "anchor &x"),
    ("name: &n test\nsources: {}\n", 1, "anchor &n"),
    (GOOD.replace('["b/*.parquet"]', "*undefined"), 4, "alias *undefined"),
    ("defaults: &d {share: 0.5, epochs: 1, paths: [x]}\nname: t\nsources: {a: *d, b: *d}\n", 1, "anchor &d"),
])
def test_anchors_and_aliases_are_refused_with_their_line(tmp_path, text, line, what):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    expected = re.escape(f"m.yaml: line {line}: YAML {what}: anchors and aliases are not allowed")
    with pytest.raises(ManifestError, match=expected):
        load_manifest(str(path))


@pytest.mark.parametrize("path", ["../outside/*.parquet", "a/../../outside/x.parquet", "..", "./../x"])
def test_relative_manifest_paths_that_leave_the_data_root_are_refused(tmp_path, path):
    text = GOOD.replace('["b/*.parquet"]', f'["b/*.parquet", "{path}"]')
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(ManifestError, match=re.escape(f"m.yaml: sources.b.paths[1]: '{path}' leaves the data root")):
        load_manifest(str(tmp_path / "m.yaml"))


def test_manifest_paths_inside_the_root_absolute_paths_and_urls_still_load(tmp_path):
    text = GOOD.replace('["b/*.parquet"]', '["b/../b/*.parquet", "/data/b/*.parquet", "gs://bucket/b/*.parquet"]')
    (tmp_path / "m.yaml").write_text(text)
    m = load_manifest(str(tmp_path / "m.yaml"))
    assert m.source("b").paths == ("b/../b/*.parquet", "/data/b/*.parquet", "gs://bucket/b/*.parquet")
    assert m.resolve("/data/b/*.parquet") == "/data/b/*.parquet"


def _dataset(directory) -> str:
    docs = [("a", np.array([5, 6, 7, 8, 9, 2], dtype=np.uint16)) for _ in range(4)]
    return write_token_dataset(str(directory), docs, shard_tokens=8, vocab_size=16)


def _edit_manifest(directory, change) -> None:
    path = os.path.join(directory, "dataset.json")
    with open(path) as f:
        manifest = json.load(f)
    change(manifest)
    with open(path, "w") as f:
        json.dump(manifest, f)


def test_a_shard_named_outside_the_dataset_is_refused(tmp_path):
    d = _dataset(tmp_path / "ds")
    os.makedirs(tmp_path / "outside")
    for suffix in (".bin", ".idx"):        # the same bytes, so every checksum would match
        shutil.copy(tmp_path / "ds" / f"shard-00000{suffix}", tmp_path / "outside" / f"secret{suffix}")

    def point_outside(manifest):
        manifest["shards"][0]["name"] = "../outside/secret"
    _edit_manifest(d, point_outside)
    with pytest.raises(ShardFormatError, match=r"shards\[0\]: name '../outside/secret' is not 'shard-00000'"):
        TokenDataset(d)


@pytest.mark.parametrize("name", ["/etc/passwd", "shard-00002", "shard-1", "shard-00001/../shard-00001", 7, None])
def test_shard_names_other_than_the_formats_own_are_refused(tmp_path, name):
    d = _dataset(tmp_path / "ds")

    def rename(manifest):
        manifest["shards"][1]["name"] = name
    _edit_manifest(d, rename)
    with pytest.raises(ShardFormatError, match=r"shards\[1\]: name .* is not 'shard-00001'"):
        TokenDataset(d)


def test_listing_lines_resolve_under_the_prefix(tmp_path):
    listing = write(str(tmp_path / "wet.paths"), b"crawl-data/a.wet.gz\n\n./crawl-data/b.wet.gz\n")
    assert read_listing(listing, "/mirror/cc/") == ["/mirror/cc/crawl-data/a.wet.gz",
                                                    "/mirror/cc/./crawl-data/b.wet.gz"]


@pytest.mark.parametrize("line, why", [
    ("/etc/passwd", "is absolute"),
    ("file:///etc/passwd", "has a scheme"),
    ("https://elsewhere.example/x.wet.gz", "has a scheme"),
    ("file:/etc/passwd", "has a scheme"),
    ("crawl-data/../../../etc/passwd", "has a '..' segment"),
    ("..", "has a '..' segment"),
    ("\\\\server\\share\\x", "is absolute"),
])
def test_listing_lines_that_leave_the_prefix_refuse_the_listing(tmp_path, line, why):
    listing = write(str(tmp_path / "wet.paths"), f"crawl-data/a.wet.gz\n\n{line}\ncrawl-data/b.wet.gz\n".encode())
    expected = re.escape(f"wet.paths: line 3: {line!r} {why}")
    with pytest.raises(InputError, match=expected):
        read_listing(listing, "/mirror/cc/")
    with pytest.raises(InputError, match=expected):
        expand_inputs(listing, "/mirror/cc/", limit=1)      # refused even past the files a run would use


def test_a_listing_that_is_not_text_is_an_input_error(tmp_path):
    listing = write(str(tmp_path / "wet.paths"), b"crawl-data/a.wet.gz\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"wet\.paths: not a listing of paths: byte 20 is not UTF-8"):
        read_listing(listing)


@pytest.mark.parametrize("relative", ["/etc/passwd", "../other/__0_0.distcp", "sub/../../x", "..", "."])
def test_checkpoint_storage_names_outside_the_checkpoint_are_refused(tmp_path, relative):
    import dataclasses
    import pickle
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp

    from train.safe_reader import SafeFileSystemReader
    ckpt = tmp_path / "ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"w": torch.ones(3)}, checkpoint_id=str(ckpt), no_dist=True)
    with open(ckpt / ".metadata", "rb") as f:
        meta = pickle.load(f)                                 # written by this test: trusted
    meta.storage_data = {k: dataclasses.replace(v, relative_path=relative) for k, v in meta.storage_data.items()}
    with open(ckpt / ".metadata", "wb") as f:
        pickle.dump(meta, f)
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"points outside its checkpoint ({relative!r})")):
        SafeFileSystemReader(str(ckpt)).read_metadata()


def test_the_billion_laughs_fixture_really_nests():
    """The refused manifest is a real exponential expansion: its first three levels build 10^3 leaves."""
    import yaml
    three = "\n".join(billion_laughs().splitlines()[:4]) + "\n"
    levels = yaml.safe_load(three)["name"]
    assert len(levels) == 3 and sum(len(b) for a in levels[2] for b in a) == 1000
