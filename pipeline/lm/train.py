"""`pipeline lm train`: a language's SentencePiece model and 5-gram modified Kneser-Ney KenLM model.

Text comes from document files (Parquet in the document schema, JSONL with a `text` field, or plain
text), is normalised as at scoring time (`normalize_for_lm`), cut into SentencePiece pieces, counted and
estimated by KenLM's `lmplz` (with `--discount_fallback`, so that small corpora still train) and turned
into KenLM's binary format by `build_binary`. Outputs `<lang>.sp.model`, `<lang>.arpa.bin` and
`<lang>.meta.json`, each moved into place only when complete.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Iterator

from pipeline.doc_files import is_jsonl, iter_rows, local_files
from pipeline.lm.model import CUTOFFS, MODELS_JOB, PERPLEXITY_EXTRA, model_paths, normalize_for_lm
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output


def kenlm_tool(name: str, kenlm_bin: str | None = None) -> str:
    """Path of a KenLM program: in `kenlm_bin`, next to this Python (the set-up builds them into the
    virtual environment), or on PATH."""
    candidates = [os.path.join(kenlm_bin, name)] if kenlm_bin else []
    candidates += [os.path.join(os.path.dirname(sys.executable), name), shutil.which(name) or ""]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(f"KenLM's {name} was not found: `{PERPLEXITY_EXTRA}`, then build lmplz and "
                            f"build_binary with tools/build_kenlm.sh from the smallgiant source (`make setup` "
                            f"does both, into .venv/bin), or pass --kenlm-bin DIR")


def iter_texts(pattern: str) -> Iterator[str]:
    for path in local_files(pattern):
        if path.endswith(".parquet") or is_jsonl(path):
            yield from (row["text"] for row in iter_rows(path, ["text"]) if row["text"])
        else:
            with open(path, encoding="utf-8", errors="replace") as f:
                yield f.read()


def _write_normalized(pattern: str, path: str, max_lines: int | None) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as out:
        for text in iter_texts(pattern):
            for line in text.split("\n"):
                norm = normalize_for_lm(line)
                if norm:
                    out.write(norm + "\n")
                    n += 1
                    if max_lines and n >= max_lines:
                        return n
    return n


def train_language_model(pattern: str, language: str, output_dir: str, order: int = 5,
                         vocab_size: int = 65536, max_lines: int | None = None, kenlm_bin: str | None = None,
                         memory: str = "20%", seed: int = 0, overwrite: bool = False,
                         max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict:
    import sentencepiece
    sentencepiece.set_random_generator_seed(seed)  # SentencePiece draws a fresh seed per run otherwise
    lmplz, build_binary = kenlm_tool("lmplz", kenlm_bin), kenlm_tool("build_binary", kenlm_bin)
    names = [os.path.basename(p) for p in model_paths(output_dir, language)] + [f"{language}.meta.json"]
    claim = claim_output(output_dir, MODELS_JOB, names + [CUTOFFS], local_files(pattern), overwrite, max_lease_age)
    t0 = time.time()
    with claim as out:
        tmp = os.path.join(out.stage(), "work")
        os.makedirs(tmp)
        corpus = os.path.join(tmp, "corpus.txt")
        lines = _write_normalized(pattern, corpus, max_lines)
        if lines == 0:
            raise ValueError(f"no text in {pattern!r}")
        sp_prefix = os.path.join(tmp, f"{language}.sp")
        with working_directory(tmp):
            sentencepiece.SentencePieceTrainer.train(
                input="corpus.txt", model_prefix=f"{language}.sp", vocab_size=vocab_size, hard_vocab_limit=False,
                character_coverage=0.9995, input_sentence_size=2_000_000, shuffle_input_sentence=True,
                num_threads=os.cpu_count() or 1, minloglevel=2)
        sp = sentencepiece.SentencePieceProcessor(model_file=sp_prefix + ".model")
        tokens_path, arpa = os.path.join(tmp, "tokens.txt"), os.path.join(tmp, f"{language}.arpa")
        n_tokens = 0
        with open(corpus, encoding="utf-8") as src, open(tokens_path, "w", encoding="utf-8") as dst:
            for line in src:
                pieces = sp.encode(line.rstrip("\n"), out_type=str)
                n_tokens += len(pieces)
                dst.write(" ".join(pieces) + "\n")
        with open(tokens_path, "rb") as src, open(arpa, "wb") as dst:
            _run([lmplz, "-o", str(order), "-S", memory, "-T", tmp, "--discount_fallback"], stdin=src, stdout=dst)
        binary = arpa + ".bin"
        _run([build_binary, arpa, binary])
        sp_name, lm_name = names[:2]
        os.replace(sp_prefix + ".model", out.stage(sp_name))
        os.replace(binary, out.stage(lm_name))
        meta = {"language": language, "order": order, "vocab_size": sp.get_piece_size(), "lines": lines,
                "pieces": n_tokens, "seed": seed, "estimator": "KenLM lmplz (modified Kneser-Ney)"}
        with open(out.stage(names[2]), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        out.publish(names)
        _forget_cutoffs(out, language)
    return {**meta, "seconds": round(time.time() - t0, 1)}


@contextlib.contextmanager
def working_directory(path: str):
    """SentencePiece records its input and output paths in the model: training with relative paths
    from inside the temporary directory keeps them (and so the model bytes) the same wherever it runs."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _forget_cutoffs(out, language: str) -> None:
    """Cutoffs computed with the previous model of this language no longer apply."""
    path = out.path(CUTOFFS)
    if os.path.isfile(path):
        with open(path) as f:
            cutoffs = json.load(f)
        if cutoffs.pop(language, None) is not None:
            out.write(CUTOFFS, json.dumps(cutoffs, indent=2, sort_keys=True).encode())


def _run(cmd: list[str], **kwargs) -> None:
    res = subprocess.run(cmd, stderr=subprocess.PIPE, **kwargs)
    if res.returncode:
        raise RuntimeError(f"{os.path.basename(cmd[0])} failed ({res.returncode}): "
                           f"{res.stderr.decode(errors='replace')[-2000:]}")
