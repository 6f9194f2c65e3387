"""The arXiv source: macro expansion, comments, joining files, the cuts, archive formats, and the job."""
import io
import json
import os
import random
import tarfile

import pytest

from helpers import LOCAL, read_rows, source_command
from pipeline.schema import DeadLetter
from pipeline.sources import arxiv_latex as latex
from pipeline.sources.arxiv import ArxivSource
from pipeline.sources.arxiv_archive import PaperSource, arxiv_id, read_papers
from pipeline.sources.arxiv_macros import Expander, expand_macros
from pipeline.sources.job import run
from smallgiant.samples import arxiv as sample


def expand(text: str, **limits) -> str:
    return Expander(**limits).expand(text).text


# -- macros ---------------------------------------------------------------------------------------------
def test_macro_with_two_arguments():
    text = r"\newcommand{\pair}[2]{\langle #1, #2 \rangle}$\pair{a}{b_{1}}$ and $\pair x y$"
    assert expand(text) == r"$\langle a, b_{1} \rangle $ and $\langle x, y \rangle $"


def test_optional_argument_default_and_given():
    text = r"\newcommand{\norm}[2][2]{\|#2\|_{#1}}$\norm{v}$ $\norm[\infty]{w}$"
    assert expand(text) == r"$\|v\|_{2}$ $\|w\|_{\infty}$"


def test_nested_macros_and_bodies_that_take_arguments_from_the_text():
    text = (r"\newcommand{\R}{\mathbb{R}}\newcommand{\vect}[1]{\mathbf{#1}\in\R}\newcommand{\v}{\vect}"
            r"$\vect{x}$ $\v{y}$")
    assert expand(text) == r"$\mathbf{x}\in\mathbb{R}$ $\mathbf{y}\in\mathbb{R}$"


def test_def_with_plain_and_delimited_parameters_let_and_operators():
    text = (r"\def\eps{\varepsilon}\def\f#1#2{f(#1,#2)}\def\pair(#1,#2){P[#1|#2]}\let\e=\eps"
            r"\DeclareMathOperator*{\argmax}{arg\,max}"
            r"$\eps \f ab \pair(x,{y,z}) \e \argmax_i$")
    assert expand(text) == r"$\varepsilon f(a,b) P[x|y,z] \varepsilon \operatorname*{arg\,max}_i$"


def test_renew_and_provide_follow_latex_order():
    text = r"\newcommand{\x}{1}\x \renewcommand{\x}{2}\x \providecommand{\x}{3}\x \providecommand{\y}{4}\y"
    assert expand(text) == "1224"  # TeX drops the space after a control word


def test_control_words_do_not_fuse_with_letters():
    assert expand(r"\newcommand{\x}{\alpha}$\x y$ \x{}") == r"$\alpha y$ \alpha {}"
    assert expand(r"\newcommand{\g}[1]{\gamma#1}$\g b$") == r"$\gamma b$"


def test_macro_loops_stop_and_the_rest_survives():
    r = Expander().expand(r"\def\a{\a}x \a y \newcommand{\ok}{OK}\ok")
    assert r.text == r"x \a y OK" and r.expanded == 32 + 1
    r = Expander(max_expansions=1000).expand(r"\def\b{\b\b}start \b end \newcommand{\x}{X}\x")
    assert r.stopped.startswith("more than 1000") and r.text.startswith("start ")
    assert r.text.endswith(r"\b end \newcommand{\x}{X}\x")  # after the stop, the rest is left as written
    r = Expander().expand(r"\def\c{\c\c\c\c\c\c\c\c\c\c\c\c}" + "word " * 100 + r"\c")
    assert r.stopped and len(r.text) < 10 * 1_000_000


def test_unbalanced_braces_leave_the_use_and_later_text_expands():
    text = r"\newcommand{\one}[1]{<#1>}\newcommand{\z}{Z}\one{never closed \z \z"
    assert expand(text) == r"\one{never closed ZZ"
    assert expand(r"\newcommand{\broken}{ { } \z") == r"\newcommand{\broken}{ { } \z"
    assert expand(r"\newcommand{\one}[1]{<#1>}\one}") == r"\one}"


def test_verbatim_and_verb_are_not_expanded():
    text = r"\newcommand{\e}{E}\begin{verbatim}\e{}\end{verbatim} \verb|\e| \e"
    assert expand(text) == r"\begin{verbatim}\e{}\end{verbatim} \verb|\e| E"


def test_structural_commands_are_not_redefined():
    assert expand(r"\renewcommand{\section}[1]{BAD}\section{Intro}") == r"\section{Intro}"


def test_preamble_defines_and_body_expands():
    r = expand_macros("\\documentclass{article}\n\\newcommand{\\R}{\\mathbb{R}}\n\\begin{document}\n$\\R$\n")
    assert r.text.endswith("\\begin{document}\n$\\mathbb{R}$\n") and r.defined == 1 and r.expanded == 1


# -- comments, joining, cuts ----------------------------------------------------------------------------
def test_comments_go_escaped_percent_stays():
    text = ("Rate of 50\\% here. % a note\n% whole line\nA\\\\% after a line break\nglued%\n   on\n"
            "\\begin{comment}\nhidden\n\\end{comment}\n\\iffalse draft \\iff \\else shown \\fi end\n"
            "\\begin{verbatim}\n% kept in verbatim\n\\end{verbatim}\n")
    assert latex.strip_comments(text) == ("Rate of 50\\% here.\nA\\\\gluedon\n shown  end\n"
                                          "\\begin{verbatim}\n% kept in verbatim\n\\end{verbatim}\n")


def test_inputs_are_joined_with_and_without_tex_relative_paths_and_cycles():
    files = {
        "main.tex": "\\documentclass{article}\\usepackage{amsmath,defs}\n\\begin{document}\n"
                    "\\input{sec/a}\n\\include{sec/b.tex}\n% \\input{sec/old}\n\\input sec/c\n\\input{nowhere}\n"
                    "\\end{document}\n",
        "defs.sty": "\\newcommand{\\D}{d}\n",
        "sec/a.tex": "A \\input{sec/a}\n",       # a file that inputs itself
        "sec/b.tex": "B \\input{sec/inner}\n",   # resolved from the main file's directory
        "sec/inner.tex": "INNER\n", "sec/c.tex": "C\n", "sec/old.tex": "OLD\n",
    }
    assert latex.choose_main(files) == "main.tex"
    joined = latex.join_inputs("main.tex", files)
    body = joined.text.split("\\begin{document}")[1]
    assert [w for w in body.split() if w.isupper()] == ["A", "B", "INNER", "C"]
    assert "\\newcommand{\\D}{d}" in joined.text and "OLD" not in joined.text
    assert joined.missing == ["nowhere"] and joined.cycles == ["sec/a.tex"]


def test_main_file_is_the_one_not_included_by_another():
    files = {"a.tex": "\\documentclass{article}\\begin{document}\\input{b}\\end{document}",
             "b.tex": "\\documentclass{article}\\begin{document}long long long text\\end{document}",
             "notes.tex": "\\section{x}"}
    assert latex.choose_main(files) == "a.tex"
    assert latex.choose_main({"x.tex": "plain TeX \\bye"}) is None


def test_cuts_first_section_bibliography_appendix():
    text = ("\\documentclass{article}\\titleformat{\\section}{\\bf}\n\\begin{document}\n\\begin{abstract}Abs"
            "\\end{abstract}\n\\section{Intro}\nBody.\n\\appendix\n\\section{Proofs}\nP.\n"
            "\\bibliographystyle{plain}\n\\bibliography{refs}\n\\section{After}\n\\end{document}\n")
    body = latex.before_bibliography(latex.from_first_section(text))
    assert body == "\\section{Intro}\nBody.\n\\appendix\n\\section{Proofs}\nP."
    assert latex.before_appendix(body) == "\\section{Intro}\nBody."
    assert latex.from_first_section("\\begin{document}no sections\\end{document}") is None
    for bib in ("\\begin{thebibliography}{9}\\bibitem{a} x\\end{thebibliography}", "\\printbibliography"):
        assert latex.before_bibliography("\\section{A} text\n" + bib + " tail") == "\\section{A} text"


def test_decoding_utf8_declared_latin1_sparse_latin1_and_binary():
    assert latex.decode_tex("é".encode(), "a.tex") == ("é", "utf-8")
    declared = b"\\usepackage[latin1]{inputenc}\n" + "é".encode("latin-1") * 50
    assert latex.decode_tex(declared, "a.tex")[1] == "latin-1"
    assert latex.decode_tex(b"x" * 200 + "é".encode("latin-1"), "a.tex") == ("x" * 200 + "é", "latin-1")
    with pytest.raises(latex.UndecodableError, match="not UTF-8"):
        latex.decode_tex(bytes(range(128, 256)) * 4, "a.tex")
    with pytest.raises(latex.UndecodableError, match="binary"):
        latex.decode_tex(b"\x89PNG\x00\x00", "a.tex")


# -- archives -------------------------------------------------------------------------------------------
def _tar(files: dict[str, bytes]) -> bytes:
    return sample._tar_bytes(files)


def _papers(path, data):
    return list(read_papers(path, io.BytesIO(data)))


def test_bulk_tar_entries_of_every_kind():
    paper = sample._gz(_tar({"main.tex": b"\\documentclass{x}", "fig.png": b"\x89PNG" + bytes(100)}))
    bulk = _tar({"2301/2301.00001.gz": paper, "2301/hep-th9901001.gz": sample._gz(b"\\documentclass{y}"),
                 "2301/2301.00002.pdf": b"%PDF-1.4", "2301/2301.00003.gz": sample._gz(os.urandom(5000))[:60],
                 "2301/2301.00004.gz": sample._gz(b"%!PS-Adobe")})
    items = _papers("bulk.tar", bulk)
    papers = {p.arxiv_id: p for p in items if isinstance(p, PaperSource)}
    assert papers["2301.00001"].files == {"main.tex": b"\\documentclass{x}"}  # the figure is not read
    assert papers["hep-th/9901001"].files == {"hep-th9901001.tex": b"\\documentclass{y}"}
    assert "PDF-only" in papers["2301.00002"].not_latex and "PostScript" in papers["2301.00004"].not_latex
    dead = [i for i in items if isinstance(i, DeadLetter)]
    assert len(dead) == 1 and dead[0].record_id == "2301.00003" and "corrupt entry" in dead[0].reason


def test_truncated_bulk_archive_keeps_the_papers_before_the_cut():
    entries = {f"2301/2301.{i:05d}.gz": sample._gz(os.urandom(3000)) for i in range(1, 6)}
    data = _tar(entries)
    items = _papers("bulk.tar", data[: len(data) // 2])
    assert sum(isinstance(i, PaperSource) for i in items) >= 2
    assert isinstance(items[-1], DeadLetter) and "ends early" in items[-1].reason


def test_single_paper_formats_and_ids():
    project = sample._gz(_tar({"ms.tex": b"\\documentclass{a}"}))
    assert _papers("/d/2302.00001.tar.gz", project)[0].files == {"ms.tex": b"\\documentclass{a}"}
    assert _papers("/d/2302.00002.gz", sample._gz(b"\\documentclass{b}"))[0].files == {
        "2302.00002.tex": b"\\documentclass{b}"}
    assert _papers("/d/paper.tex", b"\\documentclass{c}")[0].files == {"paper.tex": b"\\documentclass{c}"}
    assert isinstance(_papers("/d/notes.bin", b"\x00\x01junk")[0], DeadLetter)
    assert arxiv_id("math0601001v2") == "math/0601001v2" and arxiv_id("2301.12345") == "2301.12345"


def test_sample_is_deterministic(tmp_path):
    a, b = sample.write_sample(str(tmp_path / "a"), papers=4), sample.write_sample(str(tmp_path / "b"), papers=4)
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    assert all(open(os.path.join(a, n), "rb").read() == open(os.path.join(b, n), "rb").read() for n in names)


# -- the job --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("arxiv")
    spec = sample.write_sample(str(d / "in"), papers=6)
    stats = run(ArxivSource(), spec, str(d / "out"), LOCAL)
    return d, spec, stats


def test_funnel_on_the_sample(sample_run):
    d, _, stats = sample_run
    rows = {r["stage"]: r for r in stats["stages"]}
    # bulk: 6 papers + old-style id + pdf + no-section + macro loop + corrupt; then 3 single-paper files
    assert stats["files"] == 4 and stats["dead_letters"] == 1 and rows["read"]["docs_out"] == 13
    assert rows["source"]["docs_out"] == 12                 # the PDF-only entry
    assert rows["preamble"]["docs_out"] == 11               # the paper without a section
    assert stats["documents_out"] == 11 and stats["languages"] == {"en": 11}
    assert rows["comments"]["bytes_out"] < rows["comments"]["bytes_in"]
    assert rows["bibliography"]["bytes_out"] < rows["bibliography"]["bytes_in"]
    docs = {r["id"]: r for r in read_rows(str(d / "out" / "docs"))}
    for r in docs.values():
        text = r["text"]
        assert text.startswith("\\section{") and "\\newcommand" not in text and "\\inner{" not in text
        assert "thebibliography" not in text and "\\bibliography{" not in text and "% TODO" not in text
    multi = docs["arxiv/2301.00001"]
    meta = json.loads(multi["metadata"])
    assert meta["main_file"] == "main.tex" and "sections/table.tex" in meta["files"]
    assert "\\begin{tabular}" in multi["text"] and multi["url"] == "https://arxiv.org/abs/2301.00001"
    assert "arxiv/hep-th/9901001" in docs
    assert json.loads(docs["arxiv/2301.00004"]["metadata"])["input_cycles"] == ["sections/three.tex"]
    loop = docs["arxiv/2301.00009"]
    assert "\\loop" in loop["text"] and "\\broken{never closed" in loop["text"]
    # expansion went on after the loop and the unbalanced brace
    assert "\\varepsilon" in loop["text"] and "\\eps" not in loop["text"]
    rejects = {r["id"]: r["reason"] for r in read_rows(str(d / "out" / "rejects"))}
    assert "PDF-only" in rejects["arxiv/2301.00007"] and "no \\section" in rejects["arxiv/2301.00008"]
    dead = read_rows(str(d / "out" / "dead_letters"))
    assert [r["record_id"] for r in dead] == ["2301.00010"]


def test_same_input_same_bytes(sample_run, tmp_path):
    d, spec, _ = sample_run
    run(ArxivSource(), spec, str(tmp_path / "again"), LOCAL)
    one, two = sorted((d / "out" / "docs").iterdir()), sorted((tmp_path / "again" / "docs").iterdir())
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]


def test_bad_input_is_dead_letters_and_good_papers_stay(tmp_path):
    rng, used = random.Random(1), set()
    good = sample.single_paper(rng, used).encode()
    (tmp_path / "good.tex").write_bytes(good)
    (tmp_path / "binary.tex").write_bytes(b"\x00\x01\x02" * 100)
    (tmp_path / "cp.tex").write_bytes(bytes(range(128, 256)) * 8)
    entries = {"2301/2301.00001.gz": sample._gz(good), "2301/2301.00002.gz": sample._gz(good)}
    bulk = _tar(entries)
    second = tarfile.open(fileobj=io.BytesIO(bulk)).getmembers()[1]
    (tmp_path / "cut.tar").write_bytes(bulk[: second.offset_data + 100])
    args = source_command(["arxiv", "--input", f"{tmp_path}/*.tex,{tmp_path}/cut.tar",
                           "--output", str(tmp_path / "out"), "--drop-appendix"])
    assert args.func(args, LOCAL) == 0
    ids = sorted(r["id"] for r in read_rows(str(tmp_path / "out" / "docs")))
    assert ids == ["arxiv/2301.00001", "arxiv/good"]
    reasons = sorted(r["reason"] for r in read_rows(str(tmp_path / "out" / "dead_letters")))
    assert len(reasons) == 4  # the cut entry, the archive's early end, the binary file, the undecodable one
    assert reasons[0].startswith("archive ends early after 2 entries") and "binary data" in reasons[1]
    assert "corrupt entry 2301/2301.00002.gz" in reasons[2] and "not UTF-8" in reasons[3]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["config"]["drop_appendix"] is True and stats["dead_letters"] == 4


def test_a_paper_the_latex_code_cannot_handle_costs_that_paper_only(tmp_path, monkeypatch):
    good = b"\\documentclass{x}\n\\begin{document}\n\\section{A}\nText.\n\\end{document}\n"
    bad = b"\\documentclass{x}\n\\begin{document}\nBREAKS\n\\end{document}\n"
    bulk = tmp_path / "bulk.tar"
    bulk.write_bytes(_tar({"2301/2301.00001.gz": sample._gz(bad), "2301/2301.00002.gz": sample._gz(good)}))
    choose_main = latex.choose_main

    def fragile(texts):
        if any("BREAKS" in t for t in texts.values()):
            raise IndexError("string index out of range")
        return choose_main(texts)
    monkeypatch.setattr(latex, "choose_main", fragile)
    items = list(ArxivSource().read(str(bulk)))
    assert [type(i).__name__ for i in items] == ["DeadLetter", "Document"]
    assert items[0].record_id == "2301.00001" and "IndexError" in items[0].reason
    assert items[1].id == "arxiv/2301.00002"
