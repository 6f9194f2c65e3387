"""Mixture manifests: the shipped LLaMA-1 and demo manifests, path resolution, and every validation error."""
from __future__ import annotations

import os
import textwrap

import pytest

from tokenizer.manifest import ManifestError, load_manifest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE_1 = [  # source, share, epochs, disk (the paper's Table 1)
    ("commoncrawl", 0.67, 1.10, "3.3 TB"), ("c4", 0.15, 1.06, "783 GB"), ("github", 0.045, 0.64, "328 GB"),
    ("wikipedia", 0.045, 2.45, "83 GB"), ("books", 0.045, 2.23, "85 GB"), ("arxiv", 0.025, 1.06, "92 GB"),
    ("stackexchange", 0.02, 1.03, "78 GB")]
WIKI_LANGS = "bg ca cs da de en es fr hr hu it nl pl pt ro ru sl sr sv uk".split()

GOOD = """\
name: test
total_tokens: 1000
sources:
  a: {share: 0.75, epochs: 1.5, disk: "1 GB", paths: ["a/*.parquet"]}
  b: {share: 0.25, epochs: 0.5, paths: ["b/*.parquet"], languages: [en, de]}
"""


def write_manifest(tmp_path, text: str, name: str = "m.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def touch(path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return str(path)


def test_llama1_manifest_is_table_1():
    m = load_manifest(os.path.join(REPO, "data_manifests", "llama1.yaml"))
    assert m.name == "llama1" and m.total_tokens == 1_400_000_000_000 and m.shard_tokens == 2 ** 27
    assert [(s.name, s.share, s.epochs, s.disk) for s in m.sources] == TABLE_1
    assert m.source("wikipedia").languages == tuple(WIKI_LANGS)
    assert all(s.paths and "YOUR" not in "".join(s.paths) for s in m.sources)


def test_demo_manifest_has_table_1_shares_and_demo_paths(tmp_path):
    m = load_manifest(os.path.join(REPO, "data_manifests", "demo.yaml"), root=str(tmp_path))
    assert [(s.name, s.share, s.epochs) for s in m.sources] == [row[:3] for row in TABLE_1]
    assert m.total_tokens is None and m.shard_tokens == 262144
    demo_dirs = ["cc", "c4", "github", "wikipedia", "books", "arxiv", "stackexchange"]
    assert [s.paths for s in m.sources] == [(f"{d}/docs/*.parquet",) for d in demo_dirs]
    wanted = touch(tmp_path / "books" / "docs" / "part-0.parquet")
    assert m.files("books") == [wanted]


def test_good_manifest_loads_with_defaults(tmp_path):
    m = load_manifest(write_manifest(tmp_path, GOOD))
    assert (m.name, m.total_tokens, m.seed, m.shard_tokens) == ("test", 1000, 0, 2 ** 27)
    assert m.root == str(tmp_path)
    b = m.source("b")
    assert (b.share, b.epochs, b.disk, b.languages, b.paths) == (0.25, 0.5, None, ("en", "de"), ("b/*.parquet",))
    with pytest.raises(ManifestError, match=r"sources\.zzz: no such source"):
        m.source("zzz")


def test_total_tokens_in_scientific_notation(tmp_path):
    m = load_manifest(write_manifest(tmp_path, GOOD.replace("total_tokens: 1000", "total_tokens: 1.4e12")))
    assert m.total_tokens == 1_400_000_000_000


def test_files_resolve_against_root_in_stable_order(tmp_path):
    data = tmp_path / "data"
    y, x = touch(data / "a" / "y.parquet"), touch(data / "a" / "x.parquet")
    path = write_manifest(tmp_path, GOOD.replace('["a/*.parquet"]', '["a/*.parquet", "a/x.parquet"]'))
    assert load_manifest(path, root=str(data)).files("a") == [x, y]  # sorted glob, then no repeat


def test_every_path_of_a_source_must_match(tmp_path):
    touch(tmp_path / "a" / "1.parquet")
    m = load_manifest(write_manifest(tmp_path, GOOD.replace('["a/*.parquet"]', '["a/*.parquet", "/abs/*.pq"]')))
    with pytest.raises(ManifestError, match=r"m\.yaml: sources\.a\.paths: no file matches '/abs/\*\.pq'"):
        m.files("a")


def test_check_paths_names_the_source_without_files(tmp_path):
    path = write_manifest(tmp_path, GOOD)
    touch(tmp_path / "a" / "1.parquet")
    with pytest.raises(ManifestError, match=r"m\.yaml: sources\.b\.paths: no file matches"):
        load_manifest(path, check_paths=True)
    touch(tmp_path / "b" / "1.parquet")
    assert load_manifest(path, check_paths=True).files("b") == [str(tmp_path / "b" / "1.parquet")]


def test_literal_path_that_does_not_exist(tmp_path):
    m = load_manifest(write_manifest(tmp_path, GOOD.replace('["b/*.parquet"]', '["b/missing.parquet"]')))
    with pytest.raises(ManifestError, match=r"sources\.b\.paths: no file .*missing\.parquet"):
        m.files("b")


BAD = {
    "unknown top-level key": (GOOD + "colour: blue\n", r"colour: unknown key"),
    "unknown source key": (GOOD.replace("epochs: 1.5,", "epochs: 1.5, weight: 2,"), r"sources\.a\.weight: unknown key"),
    "missing sources": ("name: x\n", r"sources: missing"),
    "missing name": (GOOD.replace("name: test\n", ""), r"name: missing"),
    "missing share": (GOOD.replace("share: 0.75, ", ""), r"sources\.a\.share: missing"),
    "missing paths": (GOOD.replace(', paths: ["b/*.parquet"]', ""), r"sources\.b\.paths: missing"),
    "empty paths": (GOOD.replace('["b/*.parquet"]', "[]"), r"sources\.b\.paths: must name at least one"),
    "share as text": (GOOD.replace("share: 0.25", "share: lots"), r"sources\.b\.share: must be a number"),
    "share as bool": (GOOD.replace("share: 0.25", "share: true"), r"sources\.b\.share: must be a number"),
    "negative share": (GOOD.replace("share: 0.75", "share: 1.25").replace("share: 0.25", "share: -0.25"),
                       r"sources\.a\.share: must be <= 1"),
    "negative share alone": (GOOD.replace("share: 0.25", "share: -0.25"), r"sources\.b\.share: must be >= 0"),
    "zero epochs": (GOOD.replace("epochs: 0.5", "epochs: 0"), r"sources\.b\.epochs: must be > 0"),
    "negative epochs": (GOOD.replace("epochs: 0.5", "epochs: -1"), r"sources\.b\.epochs: must be >= 0"),
    "negative total": (GOOD.replace("total_tokens: 1000", "total_tokens: -5"), r"total_tokens: must be >= 0"),
    "fractional total": (GOOD.replace("total_tokens: 1000", "total_tokens: 10.5"),
                         r"total_tokens: must be a positive whole"),
    "negative seed": (GOOD + "seed: -1\n", r"seed: must be >= 0"),
    "zero shard tokens": (GOOD + "shard_tokens: 0\n", r"shard_tokens: must be >= 1"),
    "shares not summing to 1": (GOOD.replace("share: 0.25", "share: 0.2"),
                                r"sources: shares must sum to 1, they sum to 0\.95"),
    "duplicate source": (GOOD + "  a: {share: 0, epochs: 1, paths: [x]}\n",
                         r"sources\.a: duplicate source name \(line 6\)"),
    "duplicate top-level key": (GOOD + "name: again\n", r"name: duplicate key"),
    "not a mapping": ("- a\n- b\n", r"m\.yaml: must be a mapping of keys to values, not a list"),
    "empty file": ("", r"must be a mapping of keys to values, not nothing"),
    "sources not a mapping": ("name: x\nsources: [a, b]\n", r"sources: must be a non-empty mapping"),
    "source not a mapping": ("name: x\nsources:\n  a: 1\n", r"sources\.a: must be a mapping"),
    "path not a string": (GOOD.replace('["b/*.parquet"]', "[3]"),
                          r"sources\.b\.paths\[0\]: must be a non-empty string"),
    "disk as number": (GOOD.replace('disk: "1 GB"', "disk: 1"), r"sources\.a\.disk: must be a non-empty string"),
    "broken YAML": ("name: [unclosed\n", r"not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validation_errors_name_file_and_key(tmp_path, case):
    text, pattern = BAD[case]
    path = write_manifest(tmp_path, text)
    with pytest.raises(ManifestError, match=pattern) as err:
        load_manifest(path)
    assert str(err.value).startswith(f"{path}: ")


def test_missing_manifest_file(tmp_path):
    with pytest.raises(ManifestError, match=r"nope\.yaml: no such manifest file"):
        load_manifest(str(tmp_path / "nope.yaml"))


def test_manifest_module_does_not_import_beam():
    import subprocess
    import sys
    code = "import sys, tokenizer.manifest; print('apache_beam' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
