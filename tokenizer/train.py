"""`smallgiant tokenizer train`: LLaMA's SentencePiece BPE tokenizer, trained on a sample of a manifest's
sources drawn in the mixture's shares.

Steps: draw the sample and a held-out set (`tokenizer.sample`), write the training text one line per
paragraph (lines longer than SentencePiece's sentence limit are cut at spaces, not dropped), train
SentencePiece with LLaMA-1's settings, write the Hugging Face directory (`tokenizer.hf`) and check that it
encodes the held-out text exactly as SentencePiece does, then measure bytes per token on the held-out
documents (`tokenizer.report`). Everything is written in the output's staging area (`pipeline.runtime.guard`)
and moved into place when complete. Training is seeded and runs on relative paths inside that area, so
the same sample, seed and thread count give a byte-identical tokenizer.model.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Iterable, Iterator

from pipeline.lm.train import working_directory
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output
from tokenizer.hf import write_json
from tokenizer.manifest import Manifest
from tokenizer.sample import MAX_DOC_CHARS, SourceSample, draw_sample, mixture_texts

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_DOCS = 100_000
DEFAULT_HELD_OUT_DOCS = 1_000
DEFAULT_HELD_OUT_SHARE = 0.05
OUTPUTS = ["tokenizer.model", "tokenizer.vocab", "hf", "report.json"]
HF_CHECK_LINES = 2_000

# LLaMA-1's released tokenizer.model, trainer_spec and normalizer_spec (recipe section 3); the vocabulary
# size, seed and thread count are arguments.
LLAMA_SETTINGS = {
    "model_type": "bpe", "character_coverage": 0.99995, "byte_fallback": True, "split_digits": True,
    "normalization_rule_name": "identity", "add_dummy_prefix": True, "remove_extra_whitespaces": False,
    "allow_whitespace_only_pieces": True, "max_sentencepiece_length": 16, "max_sentence_length": 4192,
    "split_by_unicode_script": True, "split_by_whitespace": True, "split_by_number": True,
    "treat_whitespace_as_suffix": False, "input_sentence_size": 200_000_000, "shuffle_input_sentence": True,
    "hard_vocab_limit": True, "vocabulary_output_piece_score": True,
    "unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1,
}


def training_lines(texts: Iterable[str], max_bytes: int = LLAMA_SETTINGS["max_sentence_length"]) -> Iterator[str]:
    """One line per paragraph (SentencePiece's sentences), whitespace kept; empty lines dropped and lines
    over `max_bytes` cut before a space (or at a character boundary) so that none is skipped."""
    for text in texts:
        for line in text.split("\n"):
            if line:
                yield from _chunks(line, max_bytes)


def _chunks(line: str, limit: int) -> Iterator[str]:
    data = line.encode("utf-8")
    while len(data) > limit:
        cut = data.rfind(b" ", 1, limit + 1)
        if cut <= 0:
            cut = limit
            while data[cut] & 0xC0 == 0x80:  # inside a UTF-8 sequence
                cut -= 1
        yield data[:cut].decode("utf-8")
        data = data[cut:]
    if data:
        yield data.decode("utf-8")


def train_tokenizer(manifest: Manifest, output: str, vocab_size: int = 32000,
                    sample_docs: int = DEFAULT_SAMPLE_DOCS, seed: int = 0,
                    held_out_docs: int = DEFAULT_HELD_OUT_DOCS, held_out_share: float = DEFAULT_HELD_OUT_SHARE,
                    threads: int | None = None, max_doc_chars: int = MAX_DOC_CHARS, overwrite: bool = False,
                    max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict:
    """Train the tokenizer into `output` (tokenizer.model, tokenizer.vocab, hf/, report.json); the report.
    Everything is built in the output's staging area and moves into place only when all of it succeeded."""
    from tokenizer.hf import llama_tokenizer_fast
    llama_tokenizer_fast()   # the hf/ directory is checked with transformers: refuse now, not after training
    inputs = [manifest.path, *(f for s in manifest.sources for f in manifest.files(s.name))]
    with claim_output(output, "tokenizer train", OUTPUTS, inputs, overwrite, max_lease_age) as out:
        t0 = time.time()
        threads = threads or os.cpu_count() or 1
        samples = draw_sample(manifest, sample_docs, held_out_docs, held_out_share, seed, max_doc_chars)
        t_sample = time.time() - t0
        tmp = out.stage()
        work = os.path.join(tmp, ".work")
        os.makedirs(work)
        lines = _write_training_text(samples, os.path.join(work, "sample.txt"))
        t1 = time.time()
        _train_sentencepiece(work, vocab_size, seed, threads, lines)
        t_train = time.time() - t1
        for ext in ("model", "vocab"):
            os.replace(os.path.join(work, f"tokenizer.{ext}"), os.path.join(tmp, f"tokenizer.{ext}"))
        shutil.rmtree(work)
        report = _finish(tmp, samples, lines, manifest, {
            "vocab_size": vocab_size, "sample_docs": sample_docs, "seed": seed, "held_out_docs": held_out_docs,
            "held_out_share": held_out_share, "threads": threads, "max_doc_chars": max_doc_chars,
            "sentencepiece": {**LLAMA_SETTINGS, "vocab_size": vocab_size}})
        report["seconds"] = {"sampling": round(t_sample, 2), "training": round(t_train, 2),
                             "total": round(time.time() - t0, 2)}
        write_json(os.path.join(tmp, "report.json"), report)
        out.publish(OUTPUTS)
    return report


def _write_training_text(samples: list[SourceSample], path: str) -> dict[str, dict]:
    """The training text, sources in manifest order; per source the documents, lines and bytes used."""
    used = {}
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for name, texts in mixture_texts(samples).items():
            n_lines = n_bytes = 0
            for line in training_lines(texts):
                f.write(line + "\n")
                n_lines += 1
                n_bytes += len(line.encode("utf-8")) + 1
            used[name] = {"documents": len(texts), "lines": n_lines, "bytes": n_bytes}
    total = sum(u["bytes"] for u in used.values())
    log.info("training text: %d lines, %.1f MB", sum(u["lines"] for u in used.values()), total / 1e6)
    return used


def _train_sentencepiece(work: str, vocab_size: int, seed: int, threads: int, lines: dict) -> None:
    import sentencepiece
    n_lines = sum(u["lines"] for u in lines.values())
    if n_lines == 0:
        raise ValueError("the sample holds no text to train on")
    log.info("training SentencePiece BPE, vocabulary %d, %d threads, on %d lines", vocab_size, threads, n_lines)
    sentencepiece.set_random_generator_seed(seed)  # SentencePiece draws a fresh seed per run otherwise
    verbosity = 0 if log.isEnabledFor(logging.DEBUG) else 2  # SentencePiece's own progress with -v
    with working_directory(work):
        try:
            sentencepiece.SentencePieceTrainer.train(input="sample.txt", model_prefix="tokenizer",
                                                     vocab_size=vocab_size, num_threads=threads,
                                                     minloglevel=verbosity, **LLAMA_SETTINGS)
        except RuntimeError as exc:
            reason = str(exc).split("] ")[-1]
            if "Vocabulary size too high" in reason:
                raise ValueError(f"the sample is too small for a vocabulary of {vocab_size}: {reason} "
                                 f"(or draw more documents)") from None
            raise ValueError(f"SentencePiece training failed: {reason}") from None


def _finish(tmp: str, samples: list[SourceSample], lines: dict, manifest: Manifest, settings: dict) -> dict:
    import sentencepiece

    from tokenizer.hf import write_hf_tokenizer
    from tokenizer.report import bytes_per_token
    model = os.path.join(tmp, "tokenizer.model")
    write_hf_tokenizer(model, os.path.join(tmp, "hf"))
    checked = _check_hf(model, os.path.join(tmp, "hf"), samples)
    sp = sentencepiece.SentencePieceProcessor(model_file=model)
    total = sum(u["bytes"] for u in lines.values())
    sample = {s.name: {"share": s.share, "files": s.files, "documents_read": s.documents,
                       "held_out_documents": s.held_out_documents, "empty_documents": s.empty_documents,
                       "drawn_documents": len(s.train), "used_documents": lines[s.name]["documents"],
                       "lines": lines[s.name]["lines"], "bytes": lines[s.name]["bytes"],
                       "byte_share": round(lines[s.name]["bytes"] / total, 6) if total else 0.0,
                       "held_out_sample": len(s.held_out), "seconds": s.seconds} for s in samples}
    return {"manifest": {"name": manifest.name, "path": manifest.path}, "settings": settings,
            "vocab_size": sp.get_piece_size(), "sample": sample,
            "training_text": {"lines": sum(u["lines"] for u in lines.values()), "bytes": total},
            "hf_identical_lines": checked, "held_out": bytes_per_token(sp, samples)}


def _check_hf(model: str, hf_dir: str, samples: list[SourceSample]) -> int:
    """Encode held-out lines (or training lines when nothing is held out) with both tokenizers; any
    difference is an error. The number of lines compared."""
    import sentencepiece

    from tokenizer.hf import load_hf_tokenizer
    texts = [d.text for s in samples for d in (s.held_out or s.train[:50])]
    lines = [line for line, _ in zip(training_lines(texts), range(HF_CHECK_LINES))]
    sp = sentencepiece.SentencePieceProcessor(model_file=model)
    hf = load_hf_tokenizer(hf_dir)
    for line, ids in zip(lines, sp.encode(lines)):
        if hf.encode(line, add_special_tokens=False) != ids:
            raise RuntimeError(f"the Hugging Face tokenizer encodes {line[:200]!r} differently from SentencePiece")
    return len(lines)
