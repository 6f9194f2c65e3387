"""Log-likelihood scoring: many (context, continuation) pairs per forward pass, and the LLaMA-1 paper's
choice rules for multiple-choice tasks.

A pair is tokenized as the whole text `context + continuation`; the continuation's tokens are those past
the longest prefix shared with the tokenized context (so a word that the boundary splits is scored as
part of the continuation), with BOS first and the context cut from the left to fit the model's window.
Pairs are sorted by length, right-padded to a multiple of PAD_MULTIPLE (few distinct shapes for a
compiled model), and scored in batches; a causal model's positions never see the padding after them.

Normalisations (paper section 3): "chars", the log-likelihood over the continuation's characters
(Gao et al. 2021); "unconditional", logP(continuation | context) - logP(continuation | "Answer:") (Brown
et al. 2020; OpenBookQA and BoolQ); "none", the plain log-likelihood (WinoGrande's partial scoring, where
every choice scores the same continuation, and MMLU's answer letters).
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from train.evaluation.tasks import ChoiceExample

UNCONDITIONAL_CONTEXT = "Answer:"
PAD_MULTIPLE = 32
NORMALISATIONS = ("chars", "unconditional", "none")


class SentencePieceTokenizer:
    """The run's SentencePiece model as the scorer needs it: encode, decode, BOS and EOS ids."""

    def __init__(self, processor: Any):
        self.sp = processor
        self.bos_id, self.eos_id = self.sp.bos_id(), self.sp.eos_id()
        self.vocab_size = self.sp.get_piece_size()

    @classmethod
    def from_file(cls, model_file: str) -> "SentencePieceTokenizer":
        import sentencepiece as spm
        return cls(spm.SentencePieceProcessor(model_file=model_file))

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)


@dataclasses.dataclass
class LanguageModel:
    """A causal model (tokens (batch, seq) -> logits (batch, seq, vocab)), its tokenizer and device.
    `autocast` wraps each forward pass (bf16 on CUDA in the trainer); `max_len` is the model's context."""
    model: Callable[[torch.Tensor], torch.Tensor]
    tokenizer: Any
    device: torch.device
    max_len: int
    batch_size: int = 16
    autocast: Callable[[], Any] = contextlib.nullcontext

    def pair_tokens(self, context: str, continuation: str) -> tuple[list[int], int]:
        """(BOS + tokens of context + continuation, cut to max_len + 1 from the left; how many of the last
        ones are the continuation's)."""
        ctx = self.tokenizer.encode(context)
        whole = self.tokenizer.encode(context + continuation)
        shared = 0
        for a, b in zip(ctx, whole):
            if a != b:
                break
            shared += 1
        shared = min(shared, len(whole) - 1)        # at least one continuation token
        ids = ([self.tokenizer.bos_id] if self.tokenizer.bos_id >= 0 else []) + whole
        n_cont = min(len(whole) - shared, self.max_len)
        return ids[-(self.max_len + 1):], n_cont

    @torch.no_grad()
    def loglikelihoods(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """log P(continuation | context) for each pair, in the order given."""
        encoded = [self.pair_tokens(c, x) for c, x in pairs]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
        out = [0.0] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            for i, value in zip(chunk, self._score_batch([encoded[i] for i in chunk])):
                out[i] = value
        return out

    def _score_batch(self, batch: list[tuple[list[int], int]]) -> list[float]:
        longest = max(len(ids) - 1 for ids, _ in batch)
        width = min(-(-longest // PAD_MULTIPLE) * PAD_MULTIPLE, self.max_len)
        inputs = torch.zeros(len(batch), width, dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            inputs[row, :len(ids) - 1] = torch.tensor(ids[:-1])
        with self.autocast():
            logits = self.model(inputs.to(self.device))
        logprobs = F.log_softmax(logits.float(), dim=-1)
        scores = []
        for row, (ids, n_cont) in enumerate(batch):
            end = len(ids) - 1
            targets = torch.tensor(ids[end - n_cont + 1:end + 1], device=logprobs.device)
            picked = logprobs[row, end - n_cont:end].gather(-1, targets[:, None])
            scores.append(picked.sum())
        return torch.stack(scores).double().cpu().tolist()


def choice_scores(example: ChoiceExample, conditional: list[float], unconditional: list[float] | None,
                  normalisation: str) -> list[float]:
    """Each choice's score under `normalisation` from its log-likelihoods."""
    if normalisation == "chars":
        return [ll / max(1, len(c)) for ll, c in zip(conditional, example.continuations)]
    if normalisation == "unconditional":
        if unconditional is None:
            raise ValueError("the unconditional normalisation needs logP(continuation | \"Answer:\")")
        return [ll - u for ll, u in zip(conditional, unconditional)]
    if normalisation == "none":
        return list(conditional)
    raise ValueError(f"normalisation {normalisation!r}: one of {NORMALISATIONS}")


def argmax(scores: list[float]) -> int:
    return max(range(len(scores)), key=lambda i: scores[i])


def score_choices(lm: LanguageModel, examples: list[ChoiceExample], normalisation: str) -> list[dict]:
    """Per example: each choice's log-likelihood (and unconditional one), its normalised score, the pick
    under the task's normalisation and the pick by the plain log-likelihood."""
    pairs = [(c, x) for ex in examples for c, x in zip(ex.contexts, ex.continuations)]
    conditional = lm.loglikelihoods(pairs)
    if normalisation == "unconditional":
        unique = sorted({x for ex in examples for x in ex.continuations})
        table = dict(zip(unique, lm.loglikelihoods([(UNCONDITIONAL_CONTEXT, x) for x in unique])))
    out, k = [], 0
    for ex in examples:
        n = len(ex.continuations)
        ll = conditional[k:k + n]
        k += n
        unconditional = [table[x] for x in ex.continuations] if normalisation == "unconditional" else None
        scores = choice_scores(ex, ll, unconditional, normalisation)
        out.append({"loglikelihoods": ll, "unconditional": unconditional, "scores": scores,
                    "pick": argmax(scores), "pick_unnormalised": argmax(ll), "label": ex.label})
    return out
