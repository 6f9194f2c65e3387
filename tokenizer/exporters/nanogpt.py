"""nanoGPT's data directory (data/openwebtext/prepare.py): train.bin and val.bin, flat token arrays that
nanoGPT's train.py maps with np.memmap(..., dtype=np.uint16); documents back to back, each ending with EOS
(every document of a token dataset already does).

The split is by whole documents: val.bin is the shortest tail of documents holding at least the tokens
asked for (--val-tokens, or --val-share of all tokens). The shard job shuffled the documents globally, so
that tail is a random sample of them. Vocabularies over 65,536 pieces give uint32 files: meta.json says so,
and train.py's two np.uint16 must then read np.uint32. meta.json is not nanoGPT's meta.pkl, whose readers
expect a character vocabulary (stoi, itos).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from tokenizer.exporters import copy_tokens
from tokenizer.shard_format import TokenDataset, dtype_name

FILES = ["train.bin", "val.bin", "meta.json"]
DEFAULT_VAL_SHARE = 0.0005   # nanoGPT's openwebtext test_size


def held_out_tokens(ds: TokenDataset, val_share: float | None, val_tokens: int | None) -> int:
    if val_tokens is not None:
        if val_tokens > ds.num_tokens:
            raise ValueError(f"--val-tokens {val_tokens} is more than the dataset's {ds.num_tokens} tokens")
        return val_tokens
    share = DEFAULT_VAL_SHARE if val_share is None else val_share
    return math.ceil(share * ds.num_tokens)


def split_point(ds: TokenDataset, val_tokens: int) -> tuple[int, int]:
    """(where val.bin starts, documents before it): the last document boundary at or before
    num_tokens - val_tokens, so that val.bin holds whole documents and at least val_tokens tokens."""
    limit = ds.num_tokens - val_tokens
    cut, train_documents = 0, 0
    for ends in ds.document_ends():
        k = int(np.searchsorted(ends, limit, side="right"))
        if k:
            cut, train_documents = int(ends[k - 1]), train_documents + k
    if val_tokens and cut == 0:
        raise ValueError(f"holding out {val_tokens} tokens in whole documents leaves none of the dataset's "
                         f"{ds.num_tokens} tokens for train.bin")
    return cut, train_documents


def write(ds: TokenDataset, directory: str, val_share: float | None = None,
          val_tokens: int | None = None) -> dict[str, Any]:
    held_out = held_out_tokens(ds, val_share, val_tokens)
    cut, train_documents = split_point(ds, held_out)
    dtype = ds.token_dtype
    for name, start, end in (("train.bin", 0, cut), ("val.bin", cut, ds.num_tokens)):
        with open(os.path.join(directory, name), "wb") as f:
            copy_tokens(ds, start, end, f, dtype)
    documents = int(ds.manifest["num_documents"])
    meta = {"format": "nanogpt", "dtype": dtype_name(dtype), "vocab_size": ds.vocab_size, "eos_id": ds.eos_id,
            "bos_id": ds.bos_id, "tokens": {"train": cut, "val": ds.num_tokens - cut},
            "documents": {"train": train_documents, "val": documents - train_documents}}
    with open(os.path.join(directory, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    return {"files": FILES, "dtype": meta["dtype"], "vocab_size": ds.vocab_size, "tokens": ds.num_tokens,
            "documents": documents,
            "split": {"tokens": meta["tokens"], "documents": meta["documents"]}}


def usage(output: str, written: dict[str, Any]) -> str:
    split = written["split"]["tokens"]
    line = (f"nanoGPT reads it as its data directory {output}: train.bin {split['train']:,} tokens, "
            f"val.bin {split['val']:,} tokens; a vocabulary of {written['vocab_size']:,} (train.py builds 50,304 "
            "embeddings without a meta.pkl)")
    if written["dtype"] != "uint16":
        line += f"; the files are {written['dtype']}: read them with np.{written['dtype']}, not np.uint16"
    return line
