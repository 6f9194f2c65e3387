"""datatrove's tokenized files (src/datatrove/pipeline/tokens/tokenizer.py), which nanotron's Nanoset
reads through datatrove's DatatroveFolderDataset:

    tokens.ds            the tokens back to back, little-endian uint16, or uint32 (token_size 4) when the
                         vocabulary has over 65,536 pieces, as datatrove chooses
    tokens.ds.index      little-endian uint64: where each document ends, in tokens
    tokens.ds.metadata   three lines: "TOKENIZER|TOKEN_SIZE", the token count, the count in words

One file holds the whole dataset, so no document is cut at a file boundary. Point nanotron's
`dataset_folder` at the output directory.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from tokenizer.exporters import copy_tokens, write_arrays
from tokenizer.shard_format import TokenDataset, dtype_name

NAME = "tokens.ds"
FILES = [NAME, NAME + ".index", NAME + ".metadata"]


def tokenizer_name(ds: TokenDataset) -> str:
    """What the metadata's first line names: the tokenizer's path, else its hash. datatrove splits the line
    at "|", so the name holds none."""
    tokenizer = ds.manifest.get("tokenizer", {})
    name = tokenizer.get("path") or (f"sha256:{tokenizer['sha256']}" if tokenizer.get("sha256") else "unknown")
    return name.replace("|", "_").replace("\n", " ")


def in_words(count: int) -> str:
    """A token count as datatrove's metadata states it: three significant digits and an SI prefix."""
    for exponent, prefix in ((12, "T"), (9, "G"), (6, "M"), (3, "k")):
        if count >= 10 ** exponent:
            return f"{count / 10 ** exponent:.3g} {prefix}T"
    return f"{count} T"


def write(ds: TokenDataset, directory: str) -> dict[str, Any]:
    dtype = ds.token_dtype
    with open(os.path.join(directory, NAME), "wb") as f:
        copy_tokens(ds, 0, ds.num_tokens, f, dtype)
    with open(os.path.join(directory, NAME + ".index"), "wb") as f:
        documents = write_arrays(f, ds.document_ends(), np.dtype("<u8"))
    metadata = [f"{tokenizer_name(ds)}|{dtype.itemsize}", str(ds.num_tokens), in_words(ds.num_tokens)]
    with open(os.path.join(directory, NAME + ".metadata"), "w", encoding="utf-8") as f:
        f.write("\n".join(metadata))
    return {"files": FILES, "dtype": dtype_name(dtype), "token_size": dtype.itemsize,
            "tokens": ds.num_tokens, "documents": documents}


def usage(output: str, written: dict[str, Any]) -> str:
    return (f"nanotron reads it with dataset_folder {output} and token size {written['token_size']} bytes "
            f"({written['dtype']})")
