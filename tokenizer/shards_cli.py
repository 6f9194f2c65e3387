"""`smallgiant tokenizer shards`: the shard job, or with --plan its projection without tokenizing everything."""
from __future__ import annotations

import argparse
import json


def _shards(args: argparse.Namespace, beam_args: list[str]) -> int:
    from tokenizer.manifest import load_manifest
    manifest = load_manifest(args.manifest, root=args.data_root)
    if args.plan:
        from tokenizer.plan import Prices, format_plan, make_plan
        prices = Prices(vcpu_hour=args.vcpu_hour_usd, gb_hour=args.gb_hour_usd, shuffle_gb=args.shuffle_gb_usd)
        plan = make_plan(manifest, args.tokenizer, args.sample_docs, args.total_tokens, args.shard_tokens, prices)
        print(format_plan(plan))
        if args.output:
            from pipeline.runtime.output import join, write_atomically
            write_atomically(join(args.output, "plan.json"), json.dumps(plan, indent=1).encode())
        return 0
    if not args.output:
        raise ValueError("--output is required (except with --plan)")
    from tokenizer.shards import ShardConfig, run
    run(ShardConfig(manifest, args.tokenizer, args.output, total_tokens=args.total_tokens,
                    shard_tokens=args.shard_tokens, seed=args.seed), beam_args)
    return 0


def add_step(steps) -> None:
    from tokenizer.plan import Prices
    s = steps.add_parser(
        "shards", help="token shards in the manifest's mixture (Beam), or --plan its size and cost",
        description="Tokenize every source of the manifest, realise its shares and epochs (repeating or "
                    "subsampling), shuffle globally with the manifest's seed and write fixed-size uint16 shards "
                    "with a document index, checksums and dataset.json (tokenizer/shard_format.py). Options this "
                    "command does not know are Beam pipeline options (e.g. --runner DataflowRunner).")
    s.add_argument("--manifest", required=True)
    s.add_argument("--tokenizer", required=True, help="directory holding tokenizer.model")
    s.add_argument("--output", help="dataset directory (with --plan: where plan.json goes, optional)")
    s.add_argument("--data-root", help="what the manifest's relative paths resolve against")
    s.add_argument("--total-tokens", type=int, help="override the manifest's total (default: the manifest's, "
                                                     "or the largest no source exceeds its epochs for)")
    s.add_argument("--shard-tokens", type=int, help="override the manifest's tokens per shard")
    s.add_argument("--seed", type=int, help="override the manifest's shuffle seed")
    s.add_argument("--plan", action="store_true", help="print budget, epochs, shards, bytes, core-hours and "
                                                       "Dataflow cost (this build and the full one); write nothing else")
    s.add_argument("--sample-docs", type=int, default=200, help="--plan: documents encoded per source")
    p = Prices()
    s.add_argument("--vcpu-hour-usd", type=float, default=p.vcpu_hour, help="--plan: Dataflow vCPU-hour price")
    s.add_argument("--gb-hour-usd", type=float, default=p.gb_hour, help="--plan: Dataflow memory GB-hour price")
    s.add_argument("--shuffle-gb-usd", type=float, default=p.shuffle_gb, help="--plan: Dataflow shuffle price per GB")
    s.set_defaults(func=_shards)
