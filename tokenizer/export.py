"""`smallgiant tokenizer export`: a token dataset in another trainer's format (`tokenizer.exporters`):
Megatron-LM's indexed dataset, datatrove's .ds files for nanotron, or nanoGPT's train.bin and val.bin.

The output is claimed like every job's (pipeline/runtime/guard.py): files are built under its staging
directory and published when complete. A directory holds one export: publishing one format removes the
files an earlier export of another format wrote there, and export.json says what the directory holds.
"""
from __future__ import annotations

import json
import os
from typing import Any

from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output
from tokenizer.exporters import formats
from tokenizer.shard_format import MANIFEST, TokenDataset

JOB = "tokenizer export"
SUMMARY = "export.json"
OWNED_NAMES = sorted({SUMMARY, *(name for module in formats().values() for name in module.FILES)})


def dataset_directory(data: str) -> str:
    return os.path.dirname(data) if data.endswith(".json") else data


def run_export(data: str, fmt: str, output: str, options: dict[str, Any] | None = None, overwrite: bool = False,
               max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> dict[str, Any]:
    """Write the dataset at `data` in format `fmt` into `output`; print and return what was written.
    `options` are the format's own (nanogpt: val_share or val_tokens)."""
    module = formats().get(fmt)
    if module is None:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(formats())}")
    if "://" in output:
        raise ValueError(f"--output {output}: exports are written to a local directory")
    dataset_dir = dataset_directory(data)
    claim = claim_output(output, JOB, OWNED_NAMES, [dataset_dir], overwrite, max_lease_age)
    ds = TokenDataset(dataset_dir)
    with claim as out:
        out.remove(SUMMARY)   # first: until the new export is whole, nothing describes the directory
        os.makedirs(out.stage(), exist_ok=True)
        written = module.write(ds, out.stage(), **(options or {}))
        out.publish(module.FILES)
        for name in OWNED_NAMES:
            if name not in module.FILES and name != SUMMARY:
                out.remove(name)
        summary = {"format": fmt, **written, "options": options or {},
                   "source": {"path": os.path.abspath(dataset_dir), "manifest": MANIFEST,
                              "format_version": ds.manifest["format_version"], "vocab_size": ds.vocab_size,
                              "tokenizer_sha256": ds.tokenizer_sha256}}
        out.write(SUMMARY, json.dumps(summary, indent=1, sort_keys=True).encode())
    print(f"{fmt}: {summary['tokens']:,} tokens, {summary['documents']:,} documents, {summary['dtype']} -> "
          f"{', '.join(summary['files'])} in {output}\n{module.usage(output, written)}", flush=True)
    return summary
