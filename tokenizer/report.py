"""Bytes per token of a SentencePiece model on held-out documents, per source and per language.

Bytes are the UTF-8 bytes of the text; tokens are SentencePiece's pieces without BOS/EOS, so the figure
is comparable with other tokenizers measured the same way. Documents without a language (code, or a
source with several languages and no `language` in the metadata) count in their source's row only.
"""
from __future__ import annotations

from collections import defaultdict

from tokenizer.sample import SourceSample


def _row(docs: int, nbytes: int, tokens: int) -> dict:
    return {"documents": docs, "bytes": nbytes, "tokens": tokens,
            "bytes_per_token": round(nbytes / tokens, 4) if tokens else None}


def bytes_per_token(sp, samples: list[SourceSample]) -> dict:
    """{"all": row, "sources": {source: row}, "languages": {language: row}} over the held-out documents."""
    totals = defaultdict(lambda: [0, 0, 0])
    for sample in samples:
        texts = [d.text for d in sample.held_out]
        for doc, ids in zip(sample.held_out, sp.encode(texts) if texts else []):
            n_bytes, n_tokens = len(doc.text.encode("utf-8")), len(ids)
            keys = [("all", ""), ("sources", sample.name)]
            keys += [("languages", doc.language)] if doc.language else []
            for key in keys:
                t = totals[key]
                t[0], t[1], t[2] = t[0] + 1, t[1] + n_bytes, t[2] + n_tokens
    out = {"all": _row(*totals[("all", "")]), "sources": {}, "languages": {}}
    for sample in samples:
        out["sources"][sample.name] = _row(*totals[("sources", sample.name)])
    languages = sorted((k[1] for k in totals if k[0] == "languages"), key=lambda lang: -totals[("languages", lang)][1])
    for lang in languages:
        out["languages"][lang] = _row(*totals[("languages", lang)])
    return out


def format_table(figures: dict) -> str:
    """The bytes-per-token figures as a plain-text table: all, then per source, then per language."""
    width = max([8] + [len(k) + 9 for k in [*figures["sources"], *figures["languages"]]])
    lines = [f"{'':{width}} {'docs':>7} {'MB':>9} {'bytes/token':>12}"]
    sections = [("all", {"all": figures["all"]}), ("source", figures["sources"]), ("language", figures["languages"])]
    for title, rows in sections:
        for name, row in rows.items():
            label = name if title == "all" else f"{title} {name}"
            bpt = f"{row['bytes_per_token']:.3f}" if row["bytes_per_token"] else "-"
            lines.append(f"{label:{width}} {row['documents']:>7,} {row['bytes'] / 1e6:>9.2f} {bpt:>12}")
    return "\n".join(lines)
