"""The GitHub source: license detection, header stripping per comment style, the quality heuristics, reading
repositories (folders, tarballs, zips, exports, object-store prefixes), bad input, exact dedup, the funnel."""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import LOCAL, STORE, read_rows, source_command
from pipeline.schema import DeadLetter, Document, Rejected
from pipeline.sources.github import GithubSource, decode_source
from pipeline.sources.github_code import LANGUAGES, QualityRule, language_of, strip_license_header
from pipeline.sources.github_license import is_license_file, licenses_in_text, verdict
from pipeline.sources.github_repos import list_units
from pipeline.sources.job import run
from smallgiant.samples import github as sample


# ---------------------------------------------------------------- license detection
def test_licenses_are_recognised_by_their_text_not_their_file_name():
    assert licenses_in_text(sample.MIT.format(year=2020, holder="A")) == ["MIT"]
    assert licenses_in_text(sample.APACHE) == ["Apache-2.0"]
    assert licenses_in_text(sample.BSD3.format(year=2020, holder="A")) == ["BSD-3-Clause"]
    assert licenses_in_text(sample.BSD2.format(year=2020, holder="A")) == ["BSD-2-Clause"]
    assert licenses_in_text(sample.GPL3) == ["GPL"]
    # reflowed into one markdown paragraph, with emphasis and other quotes: still MIT
    reflowed = "**" + " ".join(sample.MIT.format(year=2020, holder="A").split()).replace('"', "“") + "**"
    assert licenses_in_text(reflowed) == ["MIT"]
    bsd4 = sample.BSD3.format(year=1990, holder="U") + ("\n4. All advertising materials mentioning features or "
                                                        "use of this software must display the acknowledgement.")
    assert licenses_in_text(bsd4) == ["BSD-4-Clause"]
    assert licenses_in_text("SPDX-License-Identifier: GPL-3.0-only OR MIT") == ["MIT"]
    assert licenses_in_text("a LICENSE file that names no license at all") == []


def test_a_repository_is_kept_only_when_every_license_found_is_kept():
    assert verdict(["MIT"]) is None and verdict(["Apache-2.0", "MIT"]) is None
    assert verdict(["GPL", "MIT"]) == "license GPL is not one of Apache-2.0, BSD-2-Clause, BSD-3-Clause, MIT"
    assert verdict(["BSD-4-Clause"]).startswith("license BSD-4-Clause")
    assert verdict([]) == "no license recognised"


@pytest.mark.parametrize("path, expected", [
    ("LICENSE", True), ("LICENSE.md", True), ("licence.txt", True), ("COPYING", True), ("LICENSE-MIT", True),
    ("MIT-LICENSE.txt", True), ("UNLICENSE", True), ("src/LICENSE", False), ("copyright.py", False),
    ("licenses_test.go", False), ("README.md", False)])
def test_root_license_files(path, expected):
    assert is_license_file(path) is expected


# ---------------------------------------------------------------- header stripping
APACHE_LINES = ["Copyright 2021 The Authors", "", 'Licensed under the Apache License, Version 2.0 (the "License");',
                "you may not use this file except in compliance with the License."]


@pytest.mark.parametrize("language, header, code", [
    ("python", "# Copyright (c) 2020 Ann\n# SPDX-License-Identifier: MIT\n", "import os\n"),
    ("go", "".join(f"// {ln}\n".replace("// \n", "//\n") for ln in APACHE_LINES), "package server\n"),
    ("c", "/*\n" + "".join(f" * {ln}\n" for ln in APACHE_LINES) + " */\n", "#include <stdio.h>\n"),
    ("java", "/**\n * Copyright 2020 Ann. All rights reserved.\n */\n", "package a;\n"),
    ("sql", "-- Copyright (c) 2018, Ocean\n-- See the LICENSE file.\n", "SELECT 1;\n"),
    ("lua", "--[[\n  Copyright (c) 2018 Ocean\n  All rights reserved.\n]]\n", "local x = 1\n"),
    ("scheme", ";; Copyright (c) 2017 Kite\n;; Licensed under the BSD license.\n", "(define x 1)\n"),
    ("html", "<!--\n  Copyright (c) 2018 Ocean. All rights reserved.\n-->\n", "<html></html>\n"),
    ("haskell", "{- Copyright (c) 2019 Ann\n   License: BSD-3-Clause, see the LICENSE file -}\n", "module A where\n"),
    ("css", "/* Copyright 2020 Ann. MIT License. */\n", "body { margin: 0; }\n"),
])
def test_license_headers_go_in_every_comment_style(language, header, code):
    text, removed = strip_license_header(header + "\n" + code, language)
    assert text == code and removed == header.count("\n")


def test_a_leading_comment_that_is_not_a_license_stays():
    text = "# Helpers that measure polygons; the renderer calls them every frame.\n# Keep them fast.\n\nimport os\n"
    assert strip_license_header(text, "python") == (text, 0)
    # and a license block after it is no longer a leading header: the file is left as it is
    later = "# Polygon helpers.\n\n# Copyright 2020 Ann\nimport os\n"
    assert strip_license_header(later, "python") == (later, 0)


def test_a_docstring_is_code_not_a_comment():
    text = '"""Polygon helpers.\n\nCopyright (c) 2019 Acme.\n"""\nimport os\n'
    assert strip_license_header(text, "python") == (text, 0)


def test_interpreter_line_and_coding_cookie_stay_above_a_removed_header():
    text = "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n# Copyright 2020 Ann\n# MIT License\n\nimport os\n"
    assert strip_license_header(text, "python") == ("#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nimport os\n", 2)
    php = "<?php\n/* Copyright 2020 Ann. Licensed under the MIT license. */\necho 1;\n"
    assert strip_license_header(php, "php") == ("<?php\necho 1;\n", 1)


def test_only_the_license_blocks_go_and_the_comment_after_them_stays():
    text = ("// Copyright 2022 R\n// SPDX-License-Identifier: MIT OR Apache-2.0\n\n//! Queue helpers.\n\n"
            "pub fn f() {}\n")
    assert strip_license_header(text, "rust") == ("//! Queue helpers.\n\npub fn f() {}\n", 2)
    go = "// Copyright 2022 A\n\n// Licensed under the MIT license.\n\n//go:build linux\n\npackage a\n"
    assert strip_license_header(go, "go") == ("//go:build linux\n\npackage a\n", 2)


def test_comments_that_do_not_end_their_line_or_never_close_are_not_headers():
    inline = "/* Copyright 2020 Ann */ int x = 1;\n"
    assert strip_license_header(inline, "c") == (inline, 0)
    unclosed = "/* Copyright 2020 Ann\nint x = 1;\n"
    assert strip_license_header(unclosed, "c") == (unclosed, 0)


# ---------------------------------------------------------------- quality heuristics and decoding
def test_quality_thresholds_are_exclusive_limits():
    rule = QualityRule()
    short_lines = "b\n" * 30
    assert rule.reason("a" * 1000 + "\n" + short_lines) is None
    assert rule.reason("a" * 1001 + "\n" + short_lines) == "longest line 1,001 chars > 1,000"
    assert rule.reason("a" * 100 + "\n" + "a" * 100) is None
    assert rule.reason("a" * 101 + "\n" + "a" * 100) == "mean line length 100.5 chars > 100"
    assert rule.reason("ab{}()\n\n") is None                        # 2 alphanumerics of 8 characters: 0.25 stays
    assert rule.reason("ab{}()!!\n") == "alphanumeric share 0.222 < 0.25"
    assert rule.reason("\n\n  \n") == "no code left (empty, or only a license header)"


def test_binary_and_undecodable_files_are_told_apart():
    assert decode_source(b"\xef\xbb\xbfx = 1\n") == ("x = 1\n", "")
    assert decode_source(b"#define A 1\n\x00\x01")[1] == "binary file (NUL byte at offset 12)"
    assert decode_source("caf\xe9 = 1\n".encode("latin-1"))[1].startswith("undecodable text: not UTF-8")


def test_the_extension_list_is_stated_in_the_class_docstring():
    doc = GithubSource.__doc__.lower()
    assert all(ext in doc.replace("\n", " ").split() or f"{ext};" in doc for ext in LANGUAGES), \
        [ext for ext in LANGUAGES if ext not in doc]
    assert "1000" in doc and "100" in doc and "0.25" in doc
    assert language_of("src/Main.JAVA") == "java" and language_of("Makefile") == "makefile"
    assert language_of("logo.png") is None


# ---------------------------------------------------------------- reading
def _write(root, files):
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)


def _items(source, unit):
    items = list(source.read(unit))
    docs = {i.id: i for i in items if isinstance(i, Document)}
    rejected = {i.doc.id: i for i in items if isinstance(i, Rejected)}
    dead = [i for i in items if isinstance(i, DeadLetter)]
    return docs, rejected, dead


def test_a_bigquery_parquet_export_with_and_without_license_fields(tmp_path):
    rows = [
        {"repo_name": "a/mit", "path": "x.py", "content": "x = 1\n", "license": "mit"},
        {"repo_name": "a/gpl", "path": "y.py", "content": "y = 1\n", "license": "gpl-2.0"},
        {"repo_name": "b/nofield", "path": "z.py", "content": "z = 1\n", "license": None},
        {"repo_name": "b/nofield", "path": "LICENSE.txt", "content": sample.BSD2.format(year=1, holder="B"),
         "license": None},
        {"repo_name": "c/none", "path": "w.py", "content": "w = 1\n", "license": None},
        {"repo_name": "a/mit", "path": "img.py", "content": None, "license": "mit"},
    ]
    path = tmp_path / "export.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    docs, rejected, dead = _items(GithubSource(), str(path))
    assert set(docs) == {"github/a/mit/x.py", "github/b/nofield/z.py"}
    assert docs["github/b/nofield/z.py"].metadata["license"] == "BSD-2-Clause"
    assert docs["github/a/mit/x.py"].url == "https://github.com/a/mit/blob/HEAD/x.py"
    assert rejected["github/a/gpl/y.py"].reason.startswith("license gpl-2.0 is not one of")
    assert rejected["github/c/none/w.py"].reason == \
        "no license field, and no root license file of c/none in export.parquet"
    assert [(d.record_id, d.reason) for d in dead] == [
        ("github/a/mit/img.py", "binary file (the export holds no text for it)")]


def test_a_zip_with_a_top_folder_and_a_file_over_the_size_limit(tmp_path):
    buf = io.BytesIO()
    import zipfile
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("proj-main/LICENSE", sample.MIT.format(year=1, holder="P"))
        zf.writestr("proj-main/src/a.py", "a = 1\n")
        zf.writestr("proj-main/src/big.py", "b = 1\n" * 100)
        zf.writestr("proj-main/.git/config", "[core]\n")
    (tmp_path / "proj.zip").write_bytes(buf.getvalue())
    docs, rejected, dead = _items(GithubSource(max_file_bytes=100), str(tmp_path / "proj.zip"))
    assert set(docs) == {"github/proj/src/a.py"} and not dead
    assert rejected["github/proj/src/big.py"].stage == "size"


def test_a_truncated_tarball_keeps_the_files_before_the_break(tmp_path):
    files = {"LICENSE": sample.MIT.format(year=1, holder="T"),
             **{f"m{k}.py": "".join(f"v{i} = {i * k}\n" for i in range(800)) for k in range(8)}}
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for rel in sorted(files):
            info = tarfile.TarInfo(f"t-1/{rel}")
            info.size = len(files[rel])
            tar.addfile(info, io.BytesIO(files[rel].encode()))
    data = buf.getvalue()
    (tmp_path / "t.tar.gz").write_bytes(data[: len(data) // 2])
    docs, rejected, dead = _items(GithubSource(), str(tmp_path / "t.tar.gz"))
    assert docs and not rejected and all(d.metadata["license"] == "MIT" for d in docs.values())
    # the LICENSE and the files kept were read before the break
    assert len(dead) == 1 and dead[0].reason.startswith(
        f"truncated or corrupt archive: stopped after {len(docs) + 1} files")


# ---------------------------------------------------------------- object stores: directories are key prefixes
def test_repositories_on_an_object_store_are_key_prefixes(tmp_path):
    STORE.clear()
    STORE.update({
        "memstore://bucket/repos/acme/LICENSE": sample.MIT.format(year=1, holder="A").encode(),
        "memstore://bucket/repos/acme/src/a.py": b"# Copyright 2020 A\n\na = 1\n",
        "memstore://bucket/repos/acme/.git/HEAD": b"ref: refs/heads/main\n",
        "memstore://bucket/repos/bare/b.py": b"b = 1\n",
        "memstore://bucket/repos/notes.txt": b"not a repository\n",
    })
    units = list_units("memstore://bucket/repos")
    assert units == ["memstore://bucket/repos/acme/", "memstore://bucket/repos/bare/"]
    run(GithubSource(), "memstore://bucket/repos", str(tmp_path / "out"), LOCAL)
    docs = read_rows(str(tmp_path / "out/docs"))
    assert [(d["id"], d["text"]) for d in docs] == [("github/acme/src/a.py", "a = 1\n")]
    assert [r["reason"] for r in read_rows(str(tmp_path / "out/rejects"))] == ["no root license file"]


# ---------------------------------------------------------------- the job on its sample
@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("github")
    spec = sample.write_sample(str(root / "in"), files_per_repo=2)
    stats = run(GithubSource(), spec, str(root / "out"), LOCAL)
    return root, spec, stats


def test_the_funnel_on_the_sample(sample_run):
    root, _, stats = sample_run
    docs = {d["id"]: d for d in read_rows(str(root / "out/docs"))}
    rejects = read_rows(str(root / "out/rejects"))
    by_stage = {}
    for r in rejects:
        by_stage.setdefault(r["stage"], []).append(r)
    rows = {r["stage"]: r for r in stats["stages"]}
    assert rows["read"]["docs_out"] == len(docs) + len(rejects)
    for stage in GithubSource.stages:
        assert rows[stage]["docs_in"] - rows[stage]["docs_out"] == len(by_stage.get(stage, [])), stage
    assert stats["documents_out"] == len(docs) and stats["skipped_records"] == 15
    assert {r["id"] for r in by_stage["size"]} == {"github/rustic-queue/assets/huge_table.rs"}
    refused_repos = {json.loads(r["metadata"])["repo"] for r in by_stage["license"]}
    assert refused_repos == {"copyleft-tools", "mystery-notes", "inkwell/editor", "ghost/unlicensed"}
    quality = {r["id"]: r["reason"] for r in by_stage["quality"]}
    assert quality.pop("github/acme-geometry/acme_geometry/__init__.py") == \
        "no code left (empty, or only a license header)"
    assert quality.pop("github/northwind-http-2.3.1/dist/bundle.min.js") == "longest line 3,740 chars > 1,000"
    assert quality.pop("github/northwind-http-2.3.1/web/strings_table.js").startswith("mean line length")
    assert quality.pop("github/ocean-sql/maps/level.lua").startswith("alphanumeric share 0.0")
    assert not quality
    # every license the sample plants, recognised from its file or its field (two files: both named)
    assert {json.loads(d["metadata"])["license"] for d in docs.values()} == {
        "MIT", "Apache-2.0", "BSD-3-Clause", "BSD-2-Clause", "Apache-2.0, MIT"}
    assert stats["languages"]["python"] > 0 and stats["languages"]["scheme"] > 0


def test_headers_go_and_leading_comments_stay_in_the_sample(sample_run):
    root, _, _ = sample_run
    docs = {d["id"]: d for d in read_rows(str(root / "out/docs"))}
    cli_py = docs["github/acme-geometry/acme_geometry/cli.py"]["text"]
    assert cli_py.startswith("#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\ndef ") and "Copyright" not in cli_py
    assert docs["github/acme-geometry/acme_geometry/notes.py"]["text"].startswith("# Helpers for measuring polygons")
    assert "Copyright (c) 2019" in docs["github/acme-geometry/acme_geometry/docstring.py"]["text"]
    assert docs["github/northwind-http-2.3.1/server/build_linux.go"]["text"].startswith("//go:build linux\n")
    assert all("Copyright" not in d["text"] for k, d in docs.items() if not k.endswith("docstring.py"))


def test_a_vendored_copy_is_an_exact_duplicate_once_headers_are_gone(sample_run):
    root, _, _ = sample_run
    dedup = [r for r in read_rows(str(root / "out/rejects")) if r["stage"] == "exact_dedup"]
    kept, copy = sample.VENDORED
    assert [(r["id"], r["reason"]) for r in dedup] == [(copy, f"exact duplicate of {kept}")]
    assert kept in {d["id"] for d in read_rows(str(root / "out/docs"))}


def test_bad_input_becomes_dead_letters_and_good_files_stay(sample_run):
    root, _, stats = sample_run
    dead = {(os.path.basename(d["file"].rstrip("/")), d["record_id"]): d["reason"]
            for d in read_rows(str(root / "out/dead_letters"))}
    assert stats["dead_letters"] == len(dead) == 5
    golden = ("northwind-http-2.3.1.tar.gz", "github/northwind-http-2.3.1/testdata/golden.h")
    assert dead[golden].startswith("binary file (NUL byte")
    assert dead[("kite-lisp", "github/kite-lisp/src/legacy.scm")].startswith("undecodable text: not UTF-8")
    assert dead[(sample.TRUNCATED, "github/broken-upload")].startswith("truncated or corrupt archive: stopped after")
    assert dead[("files-000.jsonl.gz", "github/tidewater/geo-utils/assets/icon.js")] == \
        "binary file (the export holds no text for it)"
    assert dead[("files-000.jsonl.gz", "")].startswith("bad export row: JSONDecodeError")
    ids = {d["id"] for d in read_rows(str(root / "out/docs"))}
    assert "github/broken-upload/a/mod_0.py" in ids             # read before the archive breaks off
    assert {"github/kite-lisp/src/kite_0.scm", "github/northwind-http-2.3.1/server/handler_0.go",
            "github/tidewater/geo-utils/geo/grid_0.py"} <= ids


def test_same_input_same_bytes(sample_run, tmp_path):
    root, spec, _ = sample_run
    run(GithubSource(), spec, str(tmp_path / "again"), LOCAL)
    one, two = sorted((root / "out/docs").iterdir()), sorted((tmp_path / "again/docs").iterdir())
    assert [p.name for p in one] == [p.name for p in two]
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]


def test_the_command_line(tmp_path):
    spec = sample.write_sample(str(tmp_path / "in"), files_per_repo=1, bad=False)
    args = source_command(["github", "--input", spec, "--output", str(tmp_path / "out"), "--max-line-length",
                           "4000", "--licenses", "MIT,Apache-2.0"])
    source = GithubSource.from_args(args)
    assert (source.max_line_length, source.licenses) == (4000, ("Apache-2.0", "MIT"))
    assert args.func(args, LOCAL) == 0
    stats = json.loads((tmp_path / "out/stats.json").read_text())
    assert stats["job"] == "github" and stats["dead_letters"] == 0
    assert stats["config"]["licenses"] == ["Apache-2.0", "MIT"]
    reasons = {r["id"]: r["reason"] for r in read_rows(str(tmp_path / "out/rejects"))}
    # its 3,740-character line is under 4000 now, so the next rule is the one that drops it
    assert reasons["github/northwind-http-2.3.1/dist/bundle.min.js"].startswith("mean line length")
    ids = {d["id"] for d in read_rows(str(tmp_path / "out/docs"))}
    assert not any(i.startswith(("github/ocean-sql", "github/kite-lisp")) for i in ids)   # BSD not asked for


def test_tar_streams_do_not_keep_every_member_and_the_top_folder_is_found_as_they_go():
    from pipeline.sources.github_repos import _top_folder
    from pipeline.sources.streams import tar_members
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(50):
            info = tarfile.TarInfo(f"owner-repo-abc/src/f{i}.py")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r|*") as tar:
        seen = []
        for m in tar_members(tar):
            seen.append(tar.extractfile(m).read())
            assert len(tar.members) <= 1
    assert seen == [b"x\n"] * 50
    assert _top_folder(["r/a", "r/b/c"]) == "r/" and _top_folder(["r/a", "s/b"]) == ""
    assert _top_folder(["r/a", "r"]) == "" and _top_folder(["a", "r/b"]) == "" and _top_folder([]) == ""
