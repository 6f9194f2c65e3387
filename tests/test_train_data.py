"""The loader's order: a seeded permutation of the sequences per epoch, so that one long document never
fills a batch by itself, and a resumed run reads what the uninterrupted one would."""
from __future__ import annotations

import numpy as np
import pytest

from tokenizer.shard_format import TokenDataset, write_token_dataset
from train.data import SequenceLoader, permute


@pytest.mark.parametrize("n", [1, 2, 3, 5, 64, 100, 1000, 4097])
def test_every_epoch_is_a_permutation_of_the_sequences(n):
    for seed, epoch in ((0, 0), (0, 1), (7, 0)):
        assert sorted(permute(i, n, seed, epoch) for i in range(n)) == list(range(n))


def test_the_order_depends_on_the_seed_and_the_epoch_only():
    order = [permute(i, 1000, 3, 0) for i in range(1000)]
    assert order == [permute(i, 1000, 3, 0) for i in range(1000)]
    assert order != [permute(i, 1000, 4, 0) for i in range(1000)]
    assert order != [permute(i, 1000, 3, 1) for i in range(1000)]
    assert sum(a + 1 == b for a, b in zip(order, order[1:])) < 20     # neighbours are not read together


def _long_documents(directory) -> TokenDataset:
    """Four 'sources', one long document each (ids 10.., 20.., 30.., 40..): a batch read in order holds
    one of them only."""
    docs = [("s", np.append(np.full(2000, 10 * (k + 1), dtype=np.uint16), 2).astype(np.uint16)) for k in range(4)]
    return TokenDataset(write_token_dataset(str(directory), docs, shard_tokens=1024, vocab_size=64))


def test_a_shuffled_batch_mixes_documents_that_an_ordered_one_does_not(tmp_path):
    ds = _long_documents(tmp_path / "data")
    ordered = SequenceLoader(ds, seq_len=32, global_batch=16, micro_batch=16)
    shuffled = SequenceLoader(ds, seq_len=32, global_batch=16, micro_batch=16, shuffle_seed=0)
    sources = lambda loader: {int(t) for t in loader.batch(0)[0].flatten() if t != 2}   # noqa: E731
    assert len(sources(ordered)) == 1
    assert len(sources(shuffled)) >= 3


def test_processes_and_micro_steps_read_disjoint_slots_of_one_permutation(tmp_path):
    ds = _long_documents(tmp_path / "data")
    one = SequenceLoader(ds, seq_len=32, global_batch=8, micro_batch=4, shuffle_seed=5)
    whole = np.concatenate([one.micro_batch_tokens(m) for m in range(one.accum_steps)])
    ranks = [SequenceLoader(ds, seq_len=32, global_batch=8, micro_batch=4, rank=r, world_size=2, shuffle_seed=5)
             for r in range(2)]
    split = np.concatenate([ranks[r].micro_batch_tokens(0) for r in range(2)])
    assert np.array_equal(whole, split)
