"""`smallgiant tokenizer shards`: the shard job, or with --plan its projection without tokenizing everything."""
from __future__ import annotations

import argparse
import json

from pipeline.argtypes import float_in, non_negative_float, non_negative_int, positive_int, seed


def _shards(args: argparse.Namespace, beam_args: list[str]) -> int:
    from tokenizer.manifest import load_manifest
    manifest = load_manifest(args.manifest, root=args.data_root)
    if args.plan:
        from tokenizer.plan import Prices, format_plan, make_plan
        prices = Prices(vcpu_hour=args.vcpu_hour_usd, gb_hour=args.gb_hour_usd, shuffle_gb=args.shuffle_gb_usd)
        plan = make_plan(manifest, args.tokenizer, args.sample_docs, args.total_tokens, args.shard_tokens, prices)
        print(format_plan(plan))
        if args.output:
            from pipeline.runtime.guard import claim_output
            from tokenizer.shards import OWNED, PLAN_FILE
            with claim_output(args.output, "tokenizer shards", OWNED, [manifest.path, args.tokenizer],
                              args.overwrite, args.max_lease_age) as out:
                out.write(PLAN_FILE, json.dumps(plan, indent=1).encode())
        return 0
    if not args.output:
        raise ValueError("--output is required (except with --plan)")
    from tokenizer.shards import ShardConfig, run
    run(ShardConfig(manifest, args.tokenizer, args.output, total_tokens=args.total_tokens,
                    shard_tokens=args.shard_tokens, seed=args.seed, val_share=args.val_share, val_docs=args.val_docs),
        beam_args, args.overwrite, args.max_lease_age)
    return 0


def add_step(steps) -> None:
    from pipeline.runtime.guard import add_output_arguments
    from tokenizer.plan import Prices
    s = steps.add_parser(
        "shards", help="token shards in the manifest's mixture (Beam), or --plan its size and cost",
        description="Tokenize every source of the manifest, realise its shares and epochs (repeating or "
                    "subsampling), shuffle globally with the manifest's seed and write fixed-size shards "
                    "(uint16 tokens, uint32 above 65,536 pieces) with a document index, checksums and "
                    "dataset.json (tokenizer/shard_format.py). Options this command does not know are Beam pipeline options (e.g. --runner DataflowRunner).")
    s.add_argument("--manifest", required=True)
    s.add_argument("--tokenizer", required=True, help="directory holding tokenizer.model")
    s.add_argument("--output", help="dataset directory (with --plan: where plan.json goes, optional)")
    s.add_argument("--data-root", help="what the manifest's relative paths resolve against")
    add_output_arguments(s)
    s.add_argument("--total-tokens", type=positive_int, help="override the manifest's total (default: the manifest's, "
                                                     "or the largest no source exceeds its epochs for)")
    s.add_argument("--shard-tokens", type=positive_int, help="override the manifest's tokens per shard")
    s.add_argument("--seed", type=seed, help="override the manifest's shuffle seed")
    s.add_argument("--val-share", type=float_in(0, 1, high_open=True), default=0.001,
                   help="share of each source's documents held out for validation, never trained on, written as "
                        "val/SOURCE/ token datasets (chosen by a hash of source and id; default 0.001; 0: none)")
    s.add_argument("--val-docs", type=non_negative_int, default=1000,
                   help="at most this many held-out documents per source (default 1000)")
    s.add_argument("--plan", action="store_true", help="print budget, epochs, shards, bytes, core-hours and "
                                                       "Dataflow cost (this build and the full one); write nothing else")
    s.add_argument("--sample-docs", type=positive_int, default=200, help="--plan: documents encoded per source")
    p = Prices()
    for option, default, what in (("--vcpu-hour-usd", p.vcpu_hour, "vCPU-hour price"),
                                  ("--gb-hour-usd", p.gb_hour, "memory GB-hour price"),
                                  ("--shuffle-gb-usd", p.shuffle_gb, "shuffle price per GB")):
        s.add_argument(option, type=non_negative_float, default=default, help=f"--plan: Dataflow {what}")
    s.set_defaults(func=_shards)
