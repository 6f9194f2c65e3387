"""The demo's own benchmark, made from held-out documents that training never read (the shard job's
`val/<source>/` datasets, decoded with their tokenizer): the first PREFIX_WORDS words of a document, and
four endings of CONTINUATION_WORDS words each: the document's real next words, the same words shuffled,
and the words at the same place in two other documents. A model that learned anything about text picks
the real one more often than the chance rate of one in four.

Written in HellaSwag's jsonl fields (ctx, endings, label), one example a line, as the `continuation`
task reads it (train/evaluation/tasks.py), so the demo scores it with the harness's own code.
"""
from __future__ import annotations

import json
import os
import random
import re

PREFIX_WORDS = 32
CONTINUATION_WORDS = 12
MAX_EXAMPLES = 200
TASK_FILE = os.path.join("continuation", "continuation.jsonl")
_WORD = re.compile(r"\S+")


def held_out_texts(val_dir: str, tokenizer_model: str) -> list[tuple[str, str]]:
    """(source, text) of every held-out document under `val_dir` (a dataset per source), in order."""
    import sentencepiece as spm

    from tokenizer.shard_format import TokenDataset
    sp = spm.SentencePieceProcessor(model_file=tokenizer_model)
    special = {sp.bos_id(), sp.eos_id(), sp.unk_id(), sp.pad_id()}
    out = []
    for source in sorted(os.listdir(val_dir)):
        path = os.path.join(val_dir, source)
        if not os.path.exists(os.path.join(path, "dataset.json")):
            continue
        for doc in TokenDataset(path, verify=True).documents():
            out.append((source, sp.decode([int(t) for t in doc if int(t) not in special])))
    return out


def _split(text: str) -> tuple[str, list[str]] | None:
    """(the text up to the end of its PREFIX_WORDS-th word, the next CONTINUATION_WORDS words), or None."""
    spans = [m.span() for m in _WORD.finditer(text)][:PREFIX_WORDS + CONTINUATION_WORDS]
    if len(spans) < PREFIX_WORDS + CONTINUATION_WORDS:
        return None
    words = [text[a:b] for a, b in spans[PREFIX_WORDS:]]
    return text[:spans[PREFIX_WORDS - 1][1]], words


def _shuffled(words: list[str], rng: random.Random) -> list[str]:
    for _ in range(10):
        out = rng.sample(words, len(words))
        if out != words:
            return out
    return words[::-1]


def make_examples(texts: list[tuple[str, str]], max_examples: int = MAX_EXAMPLES, seed: int = 0) -> list[dict]:
    """The task's examples from (source, text) documents; documents too short to split are left out."""
    rng = random.Random(seed)
    split = [(source, s) for source, text in texts if (s := _split(text)) is not None]
    if len(split) < 3:
        raise ValueError(f"{len(split)} held-out documents of {PREFIX_WORDS + CONTINUATION_WORDS}+ words: the "
                         "continuation task needs at least 3")
    chosen = rng.sample(range(len(split)), min(max_examples, len(split)))
    examples = []
    for i in chosen:
        source, (prefix, words) = split[i]
        others = rng.sample([j for j in range(len(split)) if j != i], 2)
        endings = [words, _shuffled(words, rng), *(split[j][1][1] for j in others)]
        if any(e == words for e in endings[1:]):      # a repeated word, or a duplicated document
            continue
        order = rng.sample(range(4), 4)
        examples.append({"ctx": prefix, "endings": [" ".join(endings[k]) for k in order], "label": order.index(0),
                         "source": source})
    return examples


def write_task(val_dir: str, tokenizer_model: str, data_dir: str, max_examples: int = MAX_EXAMPLES,
               seed: int = 0) -> dict:
    """Write DATA_DIR/continuation/continuation.jsonl; what it holds."""
    from pipeline.runtime.guard import write_atomically
    examples = make_examples(held_out_texts(val_dir, tokenizer_model), max_examples, seed)
    body = "".join(json.dumps(e, sort_keys=True) + "\n" for e in examples)
    write_atomically(os.path.join(data_dir, TASK_FILE), body.encode())
    sources: dict[str, int] = {}
    for e in examples:
        sources[e["source"]] = sources.get(e["source"], 0) + 1
    return {"examples": len(examples), "choices": 4, "chance": 0.25, "sources": sources}
