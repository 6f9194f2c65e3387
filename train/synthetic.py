"""Token datasets with known structure, for checks that need data no tokenizer made: documents drawn
from a sparse first-order Markov chain (each token has `branching` possible successors), so that a model
that learns the chain reaches a loss near the chain's entropy rate, far below the unigram entropy of
the same tokens. Written with the shard format's own writer. Used by the tests and the speed benchmark.
"""
from __future__ import annotations

import math

import numpy as np

from tokenizer.shard_format import write_token_dataset

FIRST_TOKEN = 3            # 0, 1, 2 are unk, bos, eos as in LLaMA's tokenizer
EOS = 2


def markov_documents(num_tokens: int, vocab_size: int, branching: int, seed: int,
                     min_len: int = 32, max_len: int = 256) -> list[tuple[str, np.ndarray]]:
    """Documents (each ending with EOS) of about `num_tokens` tokens in all."""
    rng = np.random.default_rng(seed)
    states = vocab_size - FIRST_TOKEN
    successors = rng.integers(0, states, size=(states, branching))
    weights = rng.dirichlet(np.ones(branching), size=states)
    cumulative = np.cumsum(weights, axis=1)
    docs, total = [], 0
    while total < num_tokens:
        n = int(rng.integers(min_len, max_len + 1))
        draws = rng.random(n)
        seq = np.empty(n + 1, dtype=np.uint16)
        state = int(rng.integers(0, states))
        for i in range(n):
            seq[i] = state + FIRST_TOKEN
            state = int(successors[state, min(np.searchsorted(cumulative[state], draws[i]), branching - 1)])
        seq[n] = EOS
        docs.append((f"markov-{len(docs) % 2}", seq))
        total += n + 1
    return docs


def unigram_entropy(tokens: np.ndarray) -> float:
    """Entropy of the token frequencies, in nats (the loss of the best model that ignores context)."""
    counts = np.bincount(tokens.astype(np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def write_markov_dataset(directory: str, num_tokens: int, vocab_size: int = 128, branching: int = 3,
                         seed: int = 0, shard_tokens: int = 1 << 16) -> dict:
    """Write the dataset; return its directory and the unigram entropy of its tokens."""
    docs = markov_documents(num_tokens, vocab_size, branching, seed)
    write_token_dataset(directory, docs, shard_tokens=shard_tokens, vocab_size=vocab_size, eos_id=EOS, bos_id=1)
    stream = np.concatenate([t for _, t in docs])
    return {"directory": directory, "num_tokens": len(stream), "unigram_entropy": unigram_entropy(stream),
            "max_entropy_rate": math.log(branching)}
