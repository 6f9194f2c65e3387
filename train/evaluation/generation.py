"""Closed-book question answering: greedy decoding of many prompts at once, and exact match after the
usual answer normalisation (SQuAD's: lower case, no punctuation, no articles, white space collapsed)
against any accepted answer.

Prompts are right-padded in one batch (to a multiple of PAD_MULTIPLE, as in scoring); each step reads
every row's logits at its own last position (a causal model's positions never see the padding after
them), so rows of different lengths decode together. Only ids the tokenizer knows are chosen (a model
may pad its vocabulary). A row stops at EOS or at its first newline (the prompt puts one answer on a
line); `fixed_steps` decodes every row for `max_new_tokens` steps regardless, so that every process of a
sharded model runs the same forward passes.
"""
from __future__ import annotations

import re
import string

import torch

from train.evaluation.scoring import PAD_MULTIPLE, LanguageModel
from train.evaluation.tasks import AnswerExample

MAX_NEW_TOKENS = 32
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: tuple[str, ...] | list[str]) -> bool:
    guess = normalize_answer(prediction)
    return any(guess == normalize_answer(a) for a in answers)


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


@torch.no_grad()
def greedy_batch(lm: LanguageModel, prompts: list[str], max_new_tokens: int = MAX_NEW_TOKENS,
                 fixed_steps: bool = False) -> list[str]:
    """The greedy continuation of each prompt, up to its first newline."""
    tok = lm.tokenizer
    bos = [tok.bos_id] if tok.bos_id >= 0 else []
    rows = [(bos + tok.encode(p))[-lm.max_len:] for p in prompts]
    new: list[list[int]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    for _ in range(max_new_tokens):
        if all(done) and not fixed_steps:
            break
        seqs = [(r + n)[-lm.max_len:] for r, n in zip(rows, new)]
        width = min(-(-max(len(s) for s in seqs) // PAD_MULTIPLE) * PAD_MULTIPLE, lm.max_len)
        inputs = torch.zeros(len(seqs), width, dtype=torch.long)
        for i, s in enumerate(seqs):
            inputs[i, :len(s)] = torch.tensor(s)
        with lm.autocast():
            logits = lm.model(inputs.to(lm.device))
        last = torch.tensor([len(s) - 1 for s in seqs], device=logits.device)
        rows_logits = logits[torch.arange(len(seqs), device=logits.device), last, :tok.vocab_size]
        picks = rows_logits.float().argmax(-1).cpu().tolist()
        for i, token in enumerate(picks):
            if done[i]:
                continue
            if token == tok.eos_id:
                done[i] = True
                continue
            new[i].append(token)
            done[i] = "\n" in tok.decode(new[i])
    return [first_line(tok.decode(n)) for n in new]


def answer_questions(lm: LanguageModel, examples: list[AnswerExample], max_new_tokens: int = MAX_NEW_TOKENS,
                     fixed_steps: bool = False) -> list[dict]:
    """Per example: the decoded answer and whether it matches one of the accepted answers."""
    out = []
    for start in range(0, len(examples), lm.batch_size):
        chunk = examples[start:start + lm.batch_size]
        for ex, answer in zip(chunk, greedy_batch(lm, [e.prompt for e in chunk], max_new_tokens, fixed_steps)):
            out.append({"prediction": answer, "correct": exact_match(answer, ex.answers)})
    return out
