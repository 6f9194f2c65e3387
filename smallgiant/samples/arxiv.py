"""A small arXiv sample in arXiv's own source formats, generated from a seed.

Written to a directory:
- `arXiv_src_2301_001.tar`: a bulk archive of per-paper entries `2301/<id>.gz`, each a gzip'd tar of a
  multi-file paper (main file, sections in a subdirectory, a local macro package, a figure) or a gzip'd
  single .tex; plus an old-style id (`hep-th9901001`), a PDF-only entry and a corrupt (truncated) entry;
- `2302.00001.tar.gz` (one paper's tar), `2302.00002.gz` (one gzip'd .tex), `2302.00003.tex` (plain).

Planted: macros with two arguments, optional arguments with defaults, nested macros, `\\def`, a macro
loop, unbalanced braces, comments with escaped `\\%`, `\\iffalse` blocks, `\\input` with and without
`.tex` and a cycle, text before the first section, both bibliography styles, appendices, a paper with no
section.
"""
from __future__ import annotations

import gzip
import io
import os
import random
import re
import tarfile

from smallgiant.samples.crawl import sentence

BULK = "arXiv_src_2301_001.tar"
MACROS = r"""\newcommand{\R}{\mathbb{R}}
\newcommand{\inner}[2]{\left\langle #1, #2 \right\rangle}
\newcommand{\norm}[2][2]{\lVert #2 \rVert_{#1}}
\def\eps{\varepsilon}
\newcommand{\model}{\textsc{Gardener}}
\newcommand{\ours}{\model\ (ours)}
"""
TOPICS = ["Introduction", "Related Work", "Method", "Experiments", "Analysis", "Discussion", "Conclusion"]


def _para(rng: random.Random, used: set[str], n: int | None = None) -> str:
    return " ".join(sentence(rng, "en", used) for _ in range(n or rng.randint(3, 5)))


def _math(rng: random.Random) -> str:
    return rng.choice([
        r"\begin{equation} \inner{x}{y} \le \norm{x} \, \norm{y}, \quad x, y \in \R^{n}. \end{equation}",
        r"For every $\eps > 0$ we have $\norm[1]{w - v} < \eps$ and $\inner{u}{v} = 0$.",
        r"The \ours{} estimate satisfies $\norm[\infty]{\hat{f} - f} \le \eps$ on $\R$.",
        r"We compare \model{} with the baseline; \ours{} wins on 95\% of the runs.",
    ])


def _section(rng: random.Random, used: set[str], title: str) -> str:
    parts = [f"\\section{{{title}}}"]
    for i in range(rng.randint(3, 5)):
        parts.append(_para(rng, used))
        if rng.random() < 0.5:
            parts.append(_math(rng))
        if rng.random() < 0.3:
            parts.append(f"% TODO: shorten this paragraph ({i})")
        if rng.random() < 0.2:
            parts.append("\\iffalse\nAn older draft of this paragraph.\n\\fi")
    return "\n\n".join(parts) + "\n"


def _bibliography(rng: random.Random, used: set[str]) -> str:
    if rng.random() < 0.5:
        return "\\bibliographystyle{plain}\n\\bibliography{refs}\n"
    items = "\n".join(f"\\bibitem{{r{i}}} {sentence(rng, 'en', used)}" for i in range(3))
    return f"\\begin{{thebibliography}}{{9}}\n{items}\n\\end{{thebibliography}}\n"


def _front(rng: random.Random, used: set[str], packages: str = "") -> str:
    return ("\\documentclass[11pt]{article}\n\\usepackage{amsmath,amssymb" + packages + "}\n"
            + ("" if packages else MACROS)
            + f"\\title{{{sentence(rng, 'en', used)[:-1]}}}\n\\author{{A. Author}}\n\\begin{{document}}\n"
            "\\maketitle\n\\begin{abstract}\n" + _para(rng, used, 2) + "\n\\end{abstract}\n\n")


def single_paper(rng: random.Random, used: set[str], appendix: bool = False) -> str:
    """A one-file paper: preamble with the macros, abstract, sections, optional appendix, bibliography."""
    body = "".join(_section(rng, used, t) + "\n" for t in rng.sample(TOPICS, rng.randint(3, 5)))
    if appendix:
        body += "\\appendix\n" + _section(rng, used, "Proofs")
    return _front(rng, used) + body + _bibliography(rng, used) + "\\end{document}\n"


def multi_paper(rng: random.Random, used: set[str], cycle: bool = False) -> dict[str, str]:
    """A paper in several files: main.tex inputs its sections (with and without .tex, one through another
    section), its macros come from a local package."""
    titles = rng.sample(TOPICS, 4)
    files = {
        "macros.sty": "\\ProvidesPackage{macros}\n" + MACROS,
        "sections/one.tex": _section(rng, used, titles[0]),
        "sections/two.tex": _section(rng, used, titles[1]) + "\\input{sections/table}\n",
        "sections/table.tex": "\\begin{tabular}{ll} a & b \\\\ c & d \\end{tabular}\n",
        "sections/three.tex": _section(rng, used, titles[2]) + ("\\input{sections/three}\n" if cycle else ""),
        "main.tex": _front(rng, used, ",macros") + "\\input{sections/one}\n\\input{sections/two.tex}\n"
                    "% \\input{sections/old}\n\\include{sections/three}\n" + _section(rng, used, titles[3])
                    + _bibliography(rng, used) + "\\end{document}\n",
    }
    return files


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 1_600_000_000, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _paper_files(files: dict[str, str]) -> dict[str, bytes]:
    out = {k: v.encode() for k, v in files.items()}
    out["figures/plot.png"] = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    return out


def bulk_entries(rng: random.Random, used: set[str], papers: int) -> dict[str, bytes]:
    """Bulk archive members, name -> bytes."""
    entries: dict[str, bytes] = {}
    for i in range(papers):
        aid = f"2301.{i + 1:05d}"
        if i % 3 == 0:
            entries[f"2301/{aid}.gz"] = _gz(_tar_bytes(_paper_files(multi_paper(rng, used, cycle=i == 3))))
        else:
            entries[f"2301/{aid}.gz"] = _gz(single_paper(rng, used, appendix=i % 4 == 1).encode())
    entries["2301/hep-th9901001.gz"] = _gz(single_paper(rng, used).encode())
    entries[f"2301/2301.{papers + 1:05d}.pdf"] = b"%PDF-1.4\n% a PDF-only submission\n"
    no_section = _front(rng, used) + _para(rng, used) + "\n\\end{document}\n"
    entries[f"2301/2301.{papers + 2:05d}.gz"] = _gz(no_section.encode())
    loop = single_paper(rng, used).replace("\\begin{document}", "\\def\\loop{\\loop}\n\\begin{document}\n"
                                           "\\newcommand{\\broken}[1]{#1}\n", 1)
    loop = re.sub(r"(\\section\{[^}]*\}\n\n)", lambda m: m.group(1) + "\\loop{} \\broken{never closed\n\n", loop,
                  count=1)
    entries[f"2301/2301.{papers + 3:05d}.gz"] = _gz(loop.encode())
    entries[f"2301/2301.{papers + 4:05d}.gz"] = _gz(single_paper(rng, used).encode())[:200]  # truncated
    return entries


def write_sample(directory: str, seed: int = 0, papers: int = 60) -> str:
    """Write the sample under `directory`; returns the --input for the arxiv job (the directory)."""
    rng, used = random.Random(seed), set()
    os.makedirs(directory, exist_ok=True)
    entries = bulk_entries(rng, used, papers)
    with open(os.path.join(directory, BULK), "wb") as f:
        f.write(_tar_bytes(entries))
    with open(os.path.join(directory, "2302.00001.tar.gz"), "wb") as f:
        f.write(_gz(_tar_bytes(_paper_files(multi_paper(rng, used)))))
    with open(os.path.join(directory, "2302.00002.gz"), "wb") as f:
        f.write(_gz(single_paper(rng, used, appendix=True).encode()))
    with open(os.path.join(directory, "2302.00003.tex"), "w", encoding="utf-8") as f:
        f.write(single_paper(rng, used))
    return directory
