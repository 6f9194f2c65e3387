"""The `smallgiant tokenizer` command: `train` (the SentencePiece tokenizer on a manifest's mixture) and
`export` (a token dataset in Megatron-LM's, nanotron's or nanoGPT's format). `add_parser` returns the steps' subparsers so that further steps (the shard builder) attach to them."""
from __future__ import annotations

import argparse

from pipeline.argtypes import float_in, non_negative_int, positive_int, seed


def _train(args: argparse.Namespace, extra_args: list[str]) -> int:
    from tokenizer.manifest import load_manifest
    from tokenizer.train import train_tokenizer
    manifest = load_manifest(args.manifest, root=args.data_root)
    report = train_tokenizer(manifest, args.output, vocab_size=args.vocab_size, sample_docs=args.sample_docs,
                             seed=args.seed, held_out_docs=args.held_out_docs, held_out_share=args.held_out_share,
                             threads=args.threads, overwrite=args.overwrite, max_lease_age=args.max_lease_age)
    print(summary(report, args.output))
    return 0


def _export(args: argparse.Namespace, extra_args: list[str]) -> int:
    from tokenizer.export import run_export
    options = {k: getattr(args, k) for k in ("val_share", "val_tokens") if getattr(args, k) is not None}
    if options and args.format != "nanogpt":
        raise ValueError(f"--val-share and --val-tokens split nanoGPT's train.bin/val.bin; {args.format} has no split")
    run_export(args.data, args.format, args.output, options, args.overwrite, args.max_lease_age)
    return 0


def _add_export(steps) -> None:
    from pipeline.runtime.guard import add_output_arguments
    e = steps.add_parser("export", help="a token dataset in Megatron-LM's, nanotron's or nanoGPT's format",
                         description="Stream a token dataset (dataset.json and its shards) into another trainer's "
                                     "format: megatron (tokens.bin + tokens.idx, Megatron-LM's indexed dataset), "
                                     "nanotron (datatrove's tokens.ds, .ds.index, .ds.metadata) or nanogpt "
                                     "(train.bin, val.bin, meta.json). uint16 tokens, or uint32 (int32 for "
                                     "Megatron) when the vocabulary has over 65,536 pieces.")
    e.add_argument("--data", required=True, help="the token dataset directory (holding dataset.json)")
    e.add_argument("--format", required=True, choices=["megatron", "nanotron", "nanogpt"])
    e.add_argument("--output", required=True, help="output directory; an earlier export there is replaced")
    add_output_arguments(e)
    split = e.add_mutually_exclusive_group()
    split.add_argument("--val-share", type=float_in(0, 1, high_open=True),
                       help="nanogpt: hold out at least this share of the tokens in val.bin, as whole documents "
                            "from the end (default 0.0005)")
    split.add_argument("--val-tokens", type=non_negative_int,
                       help="nanogpt: hold out at least this many tokens in val.bin, as whole documents from the end")
    e.set_defaults(func=_export, beam=False)


def summary(report: dict, output: str) -> str:
    """What was sampled, how long it took, and bytes per token on the held-out text."""
    from tokenizer.report import format_table
    secs, text = report["seconds"], report["training_text"]
    read = sum(s["documents_read"] for s in report["sample"].values())
    lines = [f"sample ({report['manifest']['name']}): {text['bytes'] / 1e6:,.1f} MB, {text['lines']:,} lines, from "
             f"{read:,} documents read in {secs['sampling']:.1f} s ({read / max(secs['sampling'], 1e-9):,.0f} docs/s)"]
    for name, s in report["sample"].items():
        lines.append(f"  {name:14} share {s['share']:6.1%} -> {s['byte_share']:6.1%} of the bytes: "
                     f"{s['used_documents']:,} of {s['documents_read']:,} documents, {s['bytes'] / 1e6:,.2f} MB")
    mb_s = text["bytes"] / 1e6 / max(secs["training"], 1e-9)
    lines.append(f"SentencePiece BPE, vocabulary {report['vocab_size']:,}: trained in {secs['training']:.1f} s "
                 f"({mb_s:.2f} MB/s, {report['settings']['threads']} threads); Hugging Face tokenizer identical "
                 f"on {report['hf_identical_lines']:,} held-out lines")
    lines.append("bytes per token on held-out documents:")
    lines.append(_indent(format_table(report["held_out"])))
    lines.append(f"tokenizer.model, tokenizer.vocab, hf/ and report.json in {output} ({secs['total']:.1f} s)")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def add_parser(jobs) -> argparse._SubParsersAction:
    from pipeline.runtime.guard import add_output_arguments
    """Add `tokenizer` to the top-level subparsers; its steps' subparsers are returned."""
    from tokenizer.train import DEFAULT_HELD_OUT_DOCS, DEFAULT_HELD_OUT_SHARE, DEFAULT_SAMPLE_DOCS
    tok = jobs.add_parser("tokenizer", help="the SentencePiece tokenizer and the mixture's token shards",
                          description="Train LLaMA's SentencePiece BPE tokenizer on a manifest's mixture.")
    steps = tok.add_subparsers(dest="step", metavar="STEP", required=True)
    t = steps.add_parser("train", help="SentencePiece BPE with LLaMA-1's settings on a sample in the mixture's shares",
                         description="Draws documents from every source of the manifest in its share (streamed, "
                                     "bounded memory), trains SentencePiece BPE with LLaMA-1's settings and writes "
                                     "tokenizer.model, tokenizer.vocab, a Hugging Face directory hf/ "
                                     "(LlamaTokenizerFast) and report.json (bytes per token on held-out documents).")
    t.add_argument("--manifest", required=True, help="a mixture manifest (data_manifests/*.yaml)")
    t.add_argument("--output", required=True, help="output directory: tokenizer.model, tokenizer.vocab, hf/ and "
                                                   "report.json are replaced when training succeeds")
    add_output_arguments(t)
    t.add_argument("--data-root", help="directory or URL the manifest's relative paths resolve against "
                                       "(default: the manifest's directory)")
    t.add_argument("--vocab-size", type=positive_int, default=32000)
    t.add_argument("--sample-docs", type=positive_int, default=DEFAULT_SAMPLE_DOCS,
                   help="documents drawn for training, split over the sources in their shares "
                        f"(default {DEFAULT_SAMPLE_DOCS:,})")
    t.add_argument("--held-out-docs", type=non_negative_int, default=DEFAULT_HELD_OUT_DOCS,
                   help="held-out documents per source for the bytes-per-token report")
    t.add_argument("--held-out-share", type=float_in(0, 1, high_open=True), default=DEFAULT_HELD_OUT_SHARE,
                   help="share of documents (by a hash of their id) never used for training")
    t.add_argument("--seed", type=seed, default=0, help="sampling and SentencePiece seed")
    t.add_argument("--threads", type=positive_int, help="SentencePiece threads (default: every core; part of what "
                                               "makes the model byte-identical)")
    t.set_defaults(func=_train, beam=False)
    _add_export(steps)
    return steps
