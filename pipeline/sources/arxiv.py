"""The arXiv source: LaTeX source archives -> one document per paper, the LaTeX of its body."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Iterator

from pipeline.argtypes import non_negative_int
from pipeline.schema import DeadLetter, Document, Rejected
from pipeline.sources.base import Source, Step


class ArxivSource(Source):
    """arXiv LaTeX sources: one document per paper, the LaTeX of its sections with user macros expanded.

    Input: arXiv bulk source tars (members `YYMM/<id>.gz`, each a gzip'd tar of the paper or a gzip'd
    single .tex), per-paper `.tar.gz` / `.gz` files, plain `.tex` files (one paper each), or directories
    of these, on any Beam filesystem. Only LaTeX files are read from a paper (at most 8 MB each).

    Stages, in order:
      source        (read) rejects PDF-only and PostScript submissions and papers without a main file
                    (the file with \\documentclass or \\documentstyle and \\begin{document}; among several,
                    one that no other file includes, then the largest). The main file is joined with
                    every \\input, \\include, \\subfile, \\import and local \\usepackage'd .sty it names
                    (with or without .tex, relative to the main file's directory, then the including
                    file's; cycles and nesting past 16 levels cut). Text is UTF-8, else the encoding
                    inputenc declares, else Latin-1 if under 2% of bytes are not ASCII; anything else
                    (and binary data) is a dead letter.
      comments      removes % comments (not \\%), comment environments and \\iffalse...\\fi blocks.
      macros        expands \\newcommand, \\renewcommand, \\providecommand, \\def (also delimited
                    parameters), \\let and \\DeclareMathOperator macros with their arguments and optional
                    defaults, nested macros included, and removes the definitions. Unbalanced braces
                    leave a use as written; loops stop at --max-macro-depth nested expansions, and a
                    paper stops expanding after --max-macro-uses uses or 8x growth.
      preamble      drops everything before the first \\section or \\chapter of the body; a paper with
                    neither is rejected.
      bibliography  drops everything from thebibliography, \\bibliography{}, \\printbibliography or
                    \\end{document} on (appendices placed after the bibliography go with it).
      appendix      with --drop-appendix, also drops everything from \\appendix on; by default
                    appendices before the bibliography are kept (proofs and derivations are content).
    Papers are taken as English (metadata language "en"): LLaMA applies no language filter to arXiv.
    """
    name = "arxiv"

    def __init__(self, drop_appendix: bool = False, max_macro_depth: int = 32, max_macro_uses: int = 50_000):
        self.drop_appendix = drop_appendix
        self.max_macro_depth = max_macro_depth
        self.max_macro_uses = max_macro_uses

    @property
    def stages(self) -> tuple[str, ...]:
        return ("source", "comments", "macros", "preamble", "bibliography", "appendix")

    def files(self, spec: str, max_files: int | None = None) -> list[str]:
        from pipeline.inputs import expand_files
        return expand_files(spec, limit=max_files)

    def read(self, path: str) -> Iterator[Document | Rejected | DeadLetter]:
        from pipeline.inputs import open_stream
        from pipeline.sources.arxiv_archive import PaperSource, read_papers
        with open_stream(path) as stream:
            for item in read_papers(path, stream):
                yield _paper_or_dead_letter(item) if isinstance(item, PaperSource) else item

    def steps(self) -> list[Step]:
        from pipeline.sources import arxiv_latex as latex
        from pipeline.sources.arxiv_macros import Expander, expand_macros
        expander = Expander(max_depth=self.max_macro_depth, max_expansions=self.max_macro_uses)

        def macros(doc: Document) -> Document:
            result = expand_macros(doc.text, expander)
            meta = {**doc.metadata, "macros_defined": result.defined, "macro_uses": result.expanded}
            if result.stopped:
                meta["macro_expansion_stopped"] = result.stopped
            return dataclasses.replace(doc, text=latex.tidy(result.text), metadata=meta)

        def preamble(doc: Document) -> Document | str:
            body = latex.from_first_section(doc.text)
            return "no \\section or \\chapter in the body" if body is None else dataclasses.replace(doc, text=body)

        def bibliography(doc: Document) -> Document | str:
            text = latex.before_bibliography(doc.text)
            return dataclasses.replace(doc, text=text) if text.strip() else "nothing before the bibliography"

        def appendix(doc: Document) -> Document:
            return dataclasses.replace(doc, text=latex.before_appendix(doc.text)) if self.drop_appendix else doc

        return [Step("comments", lambda d: dataclasses.replace(d, text=latex.strip_comments(d.text))),
                Step("macros", macros), Step("preamble", preamble), Step("bibliography", bibliography),
                Step("appendix", appendix)]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--drop-appendix", action="store_true",
                            help="also drop everything from \\appendix on (default: keep appendices)")
        parser.add_argument("--max-macro-depth", type=non_negative_int, default=32,
                            help="nested macro expansions before a use is left as written (default 32)")
        parser.add_argument("--max-macro-uses", type=non_negative_int, default=50_000,
                            help="macro uses expanded per paper before the rest is left as written")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ArxivSource":
        return cls(args.drop_appendix, args.max_macro_depth, args.max_macro_uses)


def _paper_or_dead_letter(paper) -> Document | Rejected | DeadLetter:
    """`paper_document`, or a dead letter for that paper alone when it raises: a bulk archive holds
    thousands of papers, and the rest of it is still read."""
    try:
        return paper_document(paper)
    except Exception as exc:  # LaTeX as found in the wild: one paper the code cannot handle
        return DeadLetter(paper.entry, paper.offset, f"cannot read the paper's LaTeX: {type(exc).__name__}: {exc}",
                          record_id=paper.arxiv_id)


def paper_document(paper) -> Document | Rejected | DeadLetter:
    """A paper's joined LaTeX as a document (comments and all), or why it has none."""
    from pipeline.sources import arxiv_latex as latex
    from pipeline.sources.arxiv_archive import abs_url
    aid = paper.arxiv_id
    doc = Document(f"arxiv/{aid}", abs_url(aid), "arxiv", "", {"arxiv_id": aid, "language": "en"})
    if paper.not_latex:
        return Rejected(doc, "source", paper.not_latex)
    texts, encodings, undecodable = {}, {}, []
    for name, data in paper.files.items():
        try:
            texts[name], encodings[name] = latex.decode_tex(data, name)
        except latex.UndecodableError as exc:
            undecodable.append(str(exc))
    main = latex.choose_main(texts)
    if main is None:
        if undecodable:
            return DeadLetter(paper.entry, paper.offset, "; ".join(undecodable), record_id=aid)
        return Rejected(doc, "source", "no LaTeX main file (no \\documentclass or \\begin{document})")
    joined = latex.join_inputs(main, texts)
    meta = {**doc.metadata, "main_file": main, "files": joined.files, "encoding": encodings[main]}
    for key, value in (("missing_inputs", joined.missing), ("input_cycles", joined.cycles),
                       ("undecodable_files", undecodable), ("skipped_files", paper.skipped)):
        if value:
            meta[key] = value
    return dataclasses.replace(doc, text=joined.text, metadata=meta)
