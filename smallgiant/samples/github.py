"""A small GitHub sample as users download it: a directory of repositories (plain folders, a GitHub-style
tarball, a zip) with their LICENSE files, and a BigQuery-style export of file rows.

Planted, deterministically from the seed:
- licenses: MIT, Apache-2.0 (tarball, single top folder), BSD-3-Clause (zip, LICENSE.md), BSD-2-Clause
  (COPYING), MIT + Apache-2.0 (LICENSE-MIT, LICENSE-APACHE), GPL-3.0 (rejected), none (rejected); in the
  export: license fields mit and gpl-3.0, and rows without a field whose license comes from a LICENSE row;
- license headers in every comment style used (# // /* */ -- --[[ ]] ; <!-- -->), after a shebang and a
  coding cookie, and leading comments that are not licenses (they stay), a Python docstring that holds a
  copyright line (it stays), a file that is only a license header (dropped as empty);
- a vendored copy of a file under another copyright header (an exact duplicate once headers are gone);
- a minified bundle (longest line), a string table (mean line length), an ASCII-art map (alphanumeric);
- files that are not code (PNG, lock file, CSV) and a file over the size limit;
- bad input: a binary file with a code extension, a Latin-1 file, a truncated tarball, a malformed export
  row and a binary export row.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import random
import tarfile
import zipfile

from smallgiant.samples.crawl import sentence

MIT = """MIT License

Copyright (c) {year} {holder}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
"""
APACHE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION

   1. Definitions.

      "License" shall mean the terms and conditions for use, reproduction,
      and distribution as defined by Sections 1 through 9 of this document.

   END OF TERMS AND CONDITIONS
"""
BSD3 = """BSD 3-Clause License

Copyright (c) {year}, {holder}

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from
   this software without specific prior written permission.
"""
BSD2 = BSD3.split("\n3. ")[0].replace("BSD 3-Clause", "BSD 2-Clause") + "\n"
GPL3 = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Everyone is permitted to copy and distribute verbatim copies
 of this license document, but changing it is not allowed.

                            Preamble

  The GNU General Public License is a free, copyleft license for
software and other kinds of works.
"""

VERBS = ["parse", "load", "render", "merge", "split", "count", "scale", "encode", "resolve", "flush", "measure",
         "rotate", "collect", "validate", "format", "apply"]
NOUNS = ["token", "buffer", "polygon", "record", "window", "matrix", "route", "packet", "ledger", "sample",
         "vertex", "invoice", "header", "segment", "cluster", "channel"]

# repositories and files the tests look for
TRUNCATED = "broken-upload.tar.gz"
BAD_FILES = {"kite-lisp/src/legacy.scm"}
VENDORED = ("github/acme-geometry/acme_geometry/vectors.py", "github/rustic-queue/vendor/acme_vectors.py")


def _name(rng: random.Random, used: set[str]) -> str:
    name = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"
    if name in used:
        name = f"{name}_{len(used)}"
    used.add(name)
    return name


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _python(rng, used, words) -> str:
    out = []
    for _ in range(rng.randint(4, 7)):
        name = _name(rng, used)
        a, b = rng.randint(2, 9), rng.randint(10, 99)
        out.append(f'def {name}(items, limit={b}):\n    """{sentence(rng, "en", words)}"""\n'
                   f"    total = 0\n    for i, item in enumerate(items):\n        if i >= limit:\n"
                   f"            break\n        total += len(str(item)) * {a}\n"
                   f"    return total // max(1, len(items))\n")
    return "\n\n".join(out)


def _c_like(rng, used, words, lang: str) -> str:
    out = []
    for _ in range(rng.randint(4, 7)):
        name = _name(rng, used)
        a, b = rng.randint(2, 9), rng.randint(10, 99)
        comment = sentence(rng, "en", words)
        if lang == "go":
            out.append(f"// {_camel(name)} reports how many items it saw. {comment}\nfunc {_camel(name)}"
                       f"(items []string) int {{\n\ttotal := 0\n\tfor i, item := range items {{\n"
                       f"\t\tif i >= {b} {{\n\t\t\tbreak\n\t\t}}\n\t\ttotal += len(item) * {a}\n\t}}\n"
                       "\treturn total\n}\n")
        elif lang == "javascript":
            out.append(f"// {comment}\nexport function {_camel(name)}(items) {{\n  let total = 0;\n"
                       f"  for (const [i, item] of items.entries()) {{\n    if (i >= {b}) break;\n"
                       f"    total += String(item).length * {a};\n  }}\n  return total;\n}}\n")
        elif lang == "rust":
            out.append(f"/// {comment}\npub fn {name}(items: &[String]) -> usize {{\n    items.iter().take({b})"
                       f".map(|s| s.len() * {a}).sum()\n}}\n")
        else:  # c
            out.append(f"/* {comment} */\nint {name}(const char **items, int n)\n{{\n    int total = 0;\n"
                       f"    for (int i = 0; i < n && i < {b}; i++)\n        total += (int)strlen(items[i]) * {a};\n"
                       f"    return total;\n}}\n")
    return "\n".join(out)


def _sql(rng, used, words) -> str:
    out = []
    for _ in range(rng.randint(3, 6)):
        table = _name(rng, used)
        out.append(f"-- {sentence(rng, 'en', words)}\nCREATE TABLE {table} (\n    id INTEGER PRIMARY KEY,\n"
                   f"    label TEXT NOT NULL,\n    weight REAL DEFAULT {rng.randint(1, 9)}.0\n);\n\n"
                   f"SELECT label, SUM(weight) AS total\nFROM {table}\nWHERE weight > {rng.randint(1, 50)}\n"
                   f"GROUP BY label\nORDER BY total DESC;\n")
    return "\n".join(out)


def _lua(rng, used, words) -> str:
    out = []
    for _ in range(rng.randint(4, 6)):
        name = _name(rng, used)
        out.append(f"-- {sentence(rng, 'en', words)}\nlocal function {name}(items)\n  local total = 0\n"
                   f"  for i, item in ipairs(items) do\n    if i > {rng.randint(10, 99)} then break end\n"
                   f"    total = total + #tostring(item) * {rng.randint(2, 9)}\n  end\n  return total\nend\n")
    return "\n".join(out)


def _scheme(rng, used, words) -> str:
    out = []
    for _ in range(rng.randint(4, 7)):
        name = _name(rng, used).replace("_", "-")
        out.append(f";; {sentence(rng, 'en', words)}\n(define ({name} items)\n  (let loop ((xs items) (total 0))\n"
                   f"    (if (null? xs)\n        total\n        (loop (cdr xs) (+ total (* {rng.randint(2, 9)} "
                   f"(string-length (car xs))))))))\n")
    return "\n".join(out)


def _html(rng, words) -> str:
    paras = "\n".join(f"    <p>{sentence(rng, 'en', words)} {sentence(rng, 'en', words)}</p>" for _ in range(6))
    return f"<html>\n  <head><title>Guide</title></head>\n  <body>\n{paras}\n  </body>\n</html>\n"


def _markdown(rng, words, title: str) -> str:
    paras = "\n\n".join(" ".join(sentence(rng, "en", words) for _ in range(3)) for _ in range(4))
    return f"# {title}\n\n{paras}\n"


def _hash_header(year: int, holder: str, spdx: str) -> str:
    return f"# Copyright (c) {year} {holder}\n# SPDX-License-Identifier: {spdx}\n"


def _apache_header(year: int, holder: str, style: str) -> str:
    body = [f"Copyright {year} {holder}", "",
            'Licensed under the Apache License, Version 2.0 (the "License");',
            "you may not use this file except in compliance with the License.",
            "You may obtain a copy of the License at", "", "    http://www.apache.org/licenses/LICENSE-2.0"]
    if style == "//":
        return "\n".join(f"// {ln}".rstrip() for ln in body) + "\n"
    return "/*\n" + "\n".join(f" * {ln}".rstrip() for ln in body) + "\n */\n"


def _write(root: str, rel: str, data: str | bytes) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def _tarball(files: dict[str, str | bytes], top: str) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for rel in sorted(files):
            data = files[rel].encode("utf-8") if isinstance(files[rel], str) else files[rel]
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mtime, info.mode = len(data), 1_600_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(files):
            zf.writestr(zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0)), files[rel])
    return buf.getvalue()


def _acme(rng, used, words, n: int) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {"LICENSE": MIT.format(year=2019, holder="Acme Geometry Authors"),
                                     "README.md": _markdown(rng, words, "acme-geometry"),
                                     "setup.cfg": "[metadata]\nname = acme-geometry\n",
                                     "docs/logo.png": b"\x89PNG\r\n\x1a\n" + rng.randbytes(64),
                                     "acme_geometry/__init__.py": _hash_header(2019, "Acme Geometry Authors", "MIT")}
    files["acme_geometry/vectors.py"] = _hash_header(2019, "Acme Geometry Authors", "MIT") + "\n" + VECTORS
    files["acme_geometry/cli.py"] = ("#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n"
                                     + _hash_header(2020, "Acme Geometry Authors", "MIT") + "\n"
                                     + _python(rng, used, words))
    files["acme_geometry/notes.py"] = ("# Helpers for measuring polygons; the renderer calls these on every frame.\n"
                                       "# Keep them free of allocations.\n\n" + _python(rng, used, words))
    files["acme_geometry/docstring.py"] = ('"""Polygon helpers.\n\nCopyright (c) 2019 Acme Geometry Authors.\n"""\n\n'
                                           + _python(rng, used, words))
    for k in range(n):
        files[f"acme_geometry/shapes_{k}.py"] = (_hash_header(2019 + k % 3, "Acme Geometry Authors", "MIT") + "\n"
                                                 + _python(rng, used, words))
    return files


VECTORS = '''def add(a, b):
    """Adds two vectors component by component."""
    return tuple(x + y for x, y in zip(a, b))


def dot(a, b):
    """The dot product of two vectors of the same length."""
    return sum(x * y for x, y in zip(a, b))
'''


def _northwind(rng, used, words, n: int) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {"LICENSE": APACHE, "go.mod": "module example.org/northwind/http\n\ngo 1.21\n",
                                     "package-lock.json": json.dumps({"lockfileVersion": 3}) + "\n"}
    for k in range(n):
        header = _apache_header(2021, "The Northwind Authors", "//")
        files[f"server/handler_{k}.go"] = header + "\npackage server\n\n" + _c_like(rng, used, words, "go")
        files[f"web/client_{k}.js"] = _apache_header(2021, "The Northwind Authors", "/*") + "\n" + \
            _c_like(rng, used, words, "javascript")
    files["server/build_linux.go"] = (_apache_header(2022, "The Northwind Authors", "//") + "\n//go:build linux\n\n"
                                      "package server\n\n" + _c_like(rng, used, words, "go"))
    files["dist/bundle.min.js"] = "".join(f"function f{i}(a){{return a*{i}+{i % 7}}};" for i in range(120)) + "\n"
    files["web/strings_table.js"] = "".join(f"export const S{i} = \"{'x' * 20}{sentence(rng, 'en', words)}"
                                            f"{' and more text' * 8}\";\n" for i in range(12))
    files["testdata/golden.h"] = b"#define GOLDEN 1\n" + bytes([0, 1, 2, 3, 255, 254]) * 20
    return files


def _ocean(rng, used, words, n: int) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {"LICENSE.md": BSD3.format(year=2018, holder="Ocean SQL contributors"),
                                     "data/depths.csv": "x,y,depth\n1,2,30\n"}
    for k in range(n):
        files[f"schema/tables_{k}.sql"] = ("-- Copyright (c) 2018, Ocean SQL contributors\n"
                                           "-- Use of this file is governed by the BSD license in LICENSE.md.\n\n"
                                           + _sql(rng, used, words))
        files[f"scripts/tide_{k}.lua"] = ("--[[\n  Copyright (c) 2018, Ocean SQL contributors\n"
                                          "  All rights reserved.\n]]\n\n" + _lua(rng, used, words))
    files["docs/guide.html"] = "<!-- Copyright (c) 2018 Ocean SQL contributors. All rights reserved. -->\n" + \
        _html(rng, words)
    files["maps/level.lua"] = "return [[\n" + "\n".join(
        "".join(rng.choice("#.~~  ") for _ in range(60)) for _ in range(30)) + "\n]]\n"
    return files


def _kite(rng, used, words, n: int) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {"COPYING": BSD2.format(year=2017, holder="Kite Lisp developers")}
    for k in range(n):
        files[f"src/kite_{k}.scm"] = (";; Copyright (c) 2017 Kite Lisp developers\n;; See COPYING for the license.\n\n"
                                      + _scheme(rng, used, words))
    files["src/legacy.scm"] = (";; Ancien module: caf\xe9, na\xefve.\n(define (greet) \"ol\xe9\")\n").encode("latin-1")
    return files


def _rustic(rng, used, words, n: int) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {"LICENSE-MIT": MIT.format(year=2022, holder="Rustic Queue developers"),
                                     "LICENSE-APACHE": APACHE, "Cargo.lock": "# generated\nversion = 3\n"}
    for k in range(n):
        files[f"src/queue_{k}.rs"] = ("// Copyright 2022 Rustic Queue developers\n"
                                      "// SPDX-License-Identifier: MIT OR Apache-2.0\n\n"
                                      f"//! Queue helpers, part {k}.\n\n" + _c_like(rng, used, words, "rust"))
    files["vendor/acme_vectors.py"] = (_hash_header(2023, "Acme Geometry Authors (vendored copy)", "MIT") + "\n"
                                       + VECTORS)
    files["assets/huge_table.rs"] = "pub const T: &[u8] = &[\n" + "    0, 1, 2, 3, 4, 5, 6, 7,\n" * 50_000 + "];\n"
    return files


def _copyleft(rng, used, words, n: int) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {"COPYING": GPL3}
    for k in range(max(1, n // 2)):
        files[f"tools/tool_{k}.c"] = "#include <string.h>\n\n" + _c_like(rng, used, words, "c")
    return files


def _mystery(rng, used, words, n: int) -> dict[str, str | bytes]:
    return {f"notes_{k}.py": _python(rng, used, words) for k in range(max(1, n // 2))}


def _export_rows(rng, used, words, n: int) -> list[str]:
    rows = []
    for k in range(n):
        rows.append({"repo_name": "tidewater/geo-utils", "path": f"geo/grid_{k}.py", "license": "mit",
                     "content": _python(rng, used, words)})
        rows.append({"repo_name": "inkwell/editor", "path": f"src/buffer_{k}.c", "license": "gpl-3.0",
                     "content": _c_like(rng, used, words, "c")})
        rows.append({"repo_name": "harbor/pipes", "path": f"pipes/stage_{k}.js", "license": None,
                     "content": _c_like(rng, used, words, "javascript")})
        rows.append({"repo_name": "ghost/unlicensed", "path": f"main_{k}.go", "license": None,
                     "content": "package main\n\n" + _c_like(rng, used, words, "go")})
    rows.append({"repo_name": "harbor/pipes", "path": "LICENSE", "license": None, "content": APACHE})
    rows.append({"repo_name": "tidewater/geo-utils", "path": "assets/icon.js", "license": "mit", "content": None,
                 "binary": True})
    lines = [json.dumps(r, sort_keys=True) for r in rows]
    lines.insert(len(lines) // 2, '{"repo_name": "tidewater/geo-utils", "path": "geo/broken.py", "content": "x = ')
    return lines


def write_sample(directory: str, seed: int = 0, files_per_repo: int = 28, bad: bool = True) -> str:
    """Writes `repos/` (folders, a tarball, a zip) and `export/files-000.jsonl.gz` under `directory`;
    returns the --input spec naming both. About 300 KB of code is kept at the default size."""
    rng = random.Random(seed)
    used: set[str] = set()
    words: set[str] = set()
    repos = os.path.join(directory, "repos")
    n = files_per_repo
    for name, make in [("acme-geometry", _acme), ("kite-lisp", _kite), ("rustic-queue", _rustic),
                       ("copyleft-tools", _copyleft), ("mystery-notes", _mystery)]:
        for rel, data in make(rng, used, words, n).items():
            if bad or f"{name}/{rel}" not in BAD_FILES:
                _write(os.path.join(repos, name), rel, data)
    northwind = _northwind(rng, used, words, n)
    if not bad:
        del northwind["testdata/golden.h"]
    _write(repos, "northwind-http-2.3.1.tar.gz", _tarball(northwind, "northwind-http-3f2a1c9"))
    _write(repos, "ocean-sql.zip", _zip(_ocean(rng, used, words, n)))
    if bad:
        broken = {"LICENSE": MIT.format(year=2024, holder="Broken Upload"),
                  **{f"a/mod_{k}.py": _python(rng, used, words) for k in range(6)}}
        data = _tarball(broken, "broken-upload")
        _write(repos, TRUNCATED, data[: int(len(data) * 0.6)])
    export = os.path.join(directory, "export", "files-000.jsonl.gz")
    lines = _export_rows(rng, used, words, max(2, n // 2))
    if not bad:
        lines = [ln for ln in lines if not ln.endswith('"x = ') and '"binary": true' not in ln]
    os.makedirs(os.path.dirname(export), exist_ok=True)
    with open(export, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(("\n".join(lines) + "\n").encode("utf-8"))
    return f"{repos},{export}"
