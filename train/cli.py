"""The `train` subcommand of `smallgiant` (and of `python -m train`, which torchrun launches).

    smallgiant train --config NAME --data DATASET --output RUN_DIR [--resume [auto]] [--dry-run] [overrides]
    smallgiant train export-hf RUN_DIR --output HF_DIR [--dtype bfloat16] [--step N]
    smallgiant train import-hf HF_DIR --output RUN_DIR --data DATASET [--config NAME] [overrides]

Overrides set any config field, as `--lr 1e-3`, `--lr=1e-3` or `lr=1e-3`. With --resume the run's saved
config.json is the base (and its dataset the default --data); overrides still apply, except to the
fields that fix what the checkpoint means. import-hf takes the model's shape from the Hugging Face
config.json and the training fields from --config (or the defaults) and the overrides.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from pipeline.argtypes import non_negative_int, positive_int
from train.config import PRESETS, TrainConfig, apply_overrides, parse_override_words, preset

USAGE = ("%(prog)s --config NAME --data DATASET --output RUN_DIR [--resume] [--dry-run] [--FIELD VALUE | FIELD=VALUE ...]\n"
         "       %(prog)s export-hf RUN_DIR --output HF_DIR [--dtype DTYPE] [--step N]\n"
         "       %(prog)s import-hf HF_DIR --output RUN_DIR --data DATASET [--config NAME] [--FIELD VALUE ...]")


def add_parser(jobs) -> None:
    p = jobs.add_parser(
        "train", usage=USAGE, help="train a LLaMA model on token shards (PyTorch; torchrun for many processes)",
        description="Train LLaMA-1-architecture models as the paper did, or export a run to Hugging Face. "
                    "Many processes: torchrun --nproc_per_node N -m train --config NAME --data D --output R.",
        epilog="Presets: " + ", ".join(PRESETS) + ". Any config field is an override: --field value, "
               "--field=value or field=value.")
    p.add_argument("--config", help="preset name (" + ", ".join(PRESETS) + ")")
    p.add_argument("--data", help="token dataset directory (holding dataset.json)")
    p.add_argument("--output", help="run directory (train, import-hf) or Hugging Face directory (export-hf)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="auto",
                   help="continue the run in --output from its latest checkpoint (there must be one); "
                        "--resume auto: resume when there is a checkpoint, else start afresh (one command for "
                        "the first start and every restart, e.g. under torchrun --max-restarts)")
    p.add_argument("--allow-schedule-change", action="store_true",
                   help="let a resume change lr, min_lr_ratio, warmup_steps or max_steps (logged with old and new values)")
    p.add_argument("--val-data", help="held-out token dataset(s) for the validation loss: a dataset directory, or "
                                      "one holding a dataset per source (default: DATASET/val, from the shard job)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config and parameter count (meta device, nothing allocated) and exit")
    p.add_argument("--stop-at-step", type=positive_int,
                   help="stop after this step with a checkpoint (schedule unchanged)")
    p.add_argument("--list-configs", action="store_true", help="list the presets and exit")
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"),
                   help="export-hf: weight dtype (default bfloat16)")
    p.add_argument("--step", type=non_negative_int,
                   help="export-hf: export this step's checkpoint instead of the latest")
    p.add_argument("--overwrite", action="store_true",
                   help="export-hf: replace the files of a directory that holds files no export wrote")
    fields = p.add_argument_group("config fields", "override the preset's value")
    for f in dataclasses.fields(TrainConfig):
        if f.name != "name":
            fields.add_argument("--" + f.name.replace("_", "-"), dest="cfg_" + f.name, metavar=_type_name(f).upper(),
                                help="default from the preset")
    p.set_defaults(func=run_command, own_arguments=True)  # the config overrides among the leftovers


def _type_name(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else f.type.__name__


def _extra_overrides(extra: list[str]) -> dict[str, str]:
    """Overrides among the arguments argparse leaves to the command: key=value words and options it does
    not define (`--field_name value`), in their order."""
    out, i = {}, 0
    while i < len(extra):
        tok = extra[i]
        if tok.startswith("--"):
            key, sep, value = tok[2:].partition("=")
            if not sep:
                if i + 1 >= len(extra):
                    raise ValueError(f"{tok} needs a value")
                i, value = i + 1, extra[i + 1]
            out[key] = value
        else:
            out.update(parse_override_words([tok]))
        i += 1
    return out


def _overrides(args: argparse.Namespace, extra: list[str]) -> dict[str, str]:
    """The config fields set on the command line: as options argparse knows, then the leftovers."""
    overrides = {name[4:]: v for name, v in vars(args).items() if name.startswith("cfg_") and v is not None}
    overrides.update(_extra_overrides(extra))
    return overrides


def resume_mode(args: argparse.Namespace, extra: list[str]) -> bool | str:
    """--resume, --resume auto, or neither. A word after a bare --resume that is not "auto" is an override
    (`--resume lr=1e-3`): it goes back among the leftovers."""
    value = args.resume
    if isinstance(value, str) and value != "auto":
        extra.insert(0, value)
        value = True
    args.resume = value
    return value


def _resuming(args: argparse.Namespace) -> bool:
    """Whether this command continues a run already in --output (for --resume auto: one with a checkpoint)."""
    if args.resume != "auto":
        return bool(args.resume)
    from train.checkpoint import latest_checkpoint
    return latest_checkpoint(os.path.join(args.output, "checkpoints")) is not None


def build_config(args: argparse.Namespace, extra: list[str]) -> TrainConfig:
    resume_mode(args, extra)
    overrides = _overrides(args, extra)
    saved_path = os.path.join(args.output, "config.json") if args.output else ""
    if saved_path and _resuming(args) and os.path.exists(saved_path):
        from train.run_dir import load_run_config
        base = load_run_config(args.output)
        if args.config and args.config.lower() != base.name:
            raise ValueError(f"--config {args.config}: the run in {args.output} was started with {base.name}")
    elif args.config:
        base = preset(args.config)
    else:
        raise ValueError("--config NAME is required (" + ", ".join(PRESETS) + ")")
    cfg = apply_overrides(base, overrides)
    cfg.validate()  # before the run directory or the process group is touched
    return cfg


def run_command(args: argparse.Namespace, extra: list[str]) -> int:
    if extra and extra[0] == "export-hf":
        return _export(args, extra[1:])
    if extra and extra[0] == "import-hf":
        return _import(args, extra[1:])
    if args.list_configs:
        print(list_configs())
        return 0
    cfg = build_config(args, extra)
    if args.dry_run:
        print(dry_run_report(cfg, args.data))
        return 0
    if not args.output:
        raise ValueError("--output RUN_DIR is required")
    from train.run_dir import saved_data_path
    data = args.data or (saved_data_path(args.output) if _resuming(args) else None)
    from train.trainer import NonFiniteLossError, train
    try:
        train(cfg, data, args.output, resume=args.resume, stop_at_step=args.stop_at_step,
              allow_schedule_change=args.allow_schedule_change, val_data=args.val_data)
    except NonFiniteLossError as exc:
        print(f"smallgiant train: error: {exc}", file=sys.stderr)
        return 3
    return 0


def _export(args: argparse.Namespace, words: list[str]) -> int:
    if len(words) != 1 or words[0].startswith("-"):
        raise ValueError("usage: smallgiant train export-hf RUN_DIR --output HF_DIR [--dtype D] [--step N]")
    if not args.output:
        raise ValueError("export-hf needs --output HF_DIR")
    from train.export_hf import export_hf
    report = export_hf(words[0], args.output, dtype=args.dtype, step=args.step, overwrite=args.overwrite)
    print(f"exported {report['checkpoint']} to {report['output']}: {report['bytes'] / 2**20:,.1f} MiB of "
          f"{report['dtype']} weights; {report['tokenizer']}")
    return 0


def _import(args: argparse.Namespace, words: list[str]) -> int:
    if not words or words[0].startswith("-"):
        raise ValueError("usage: smallgiant train import-hf HF_DIR --output RUN_DIR --data DATASET [--config NAME] "
                         "[overrides]")
    if not args.output or not args.data:
        raise ValueError("import-hf needs --output RUN_DIR and --data DATASET (the step-0 checkpoint holds the "
                         "data cursor of the dataset the run continues on)")
    overrides = _overrides(args, words[1:])
    base = preset(args.config) if args.config else TrainConfig(name="imported")
    from train.import_hf import import_hf
    report = import_hf(words[0], args.output, args.data, base, overrides)
    tok = report["tokenizer"]
    spm = f"; SentencePiece model at {tok['sentencepiece_model']}" if tok["sentencepiece_model"] else ""
    print(f"imported {words[0]} ({report['parameters']:,} parameters) as {report['checkpoint']}; tokenizer files "
          f"copied: {', '.join(tok['files']) or 'none'}{spm}. Continue with: smallgiant train --resume "
          f"--output {args.output} --data {args.data}")
    return 0


def list_configs() -> str:
    from train.model import count_parameters
    rows = []
    for name, cfg in PRESETS.items():
        counted = count_parameters(cfg) if cfg.vocab_size else None
        size = f"{counted / 1e9:.2f}B" if counted else "vocab from data"
        rows.append(f"{name:>5}  dim {cfg.dim:>5}  layers {cfg.n_layers:>3}  heads {cfg.n_heads:>3}  "
                    f"lr {cfg.lr:.1e}  batch {cfg.global_batch_tokens:>9,} tokens  {size}")
    return "\n".join(rows)


def dry_run_report(cfg: TrainConfig, data: str | None) -> str:
    from train.metrics import flops_per_token
    from train.model import count_parameters
    if cfg.vocab_size == 0:
        if not data:
            raise ValueError(f"config {cfg.name} takes its vocabulary from the dataset: pass --data or vocab_size=N")
        from tokenizer.shard_format import TokenDataset
        cfg = cfg.resolved(TokenDataset(data, verify=False).vocab_size)
    else:
        cfg = cfg.resolved()
    # under torchrun the job's size; otherwise the size the HSDP fields describe (dp_shard=32: 32 GPUs)
    world = int(os.environ.get("WORLD_SIZE", cfg.dp_replicate * (cfg.dp_shard or 1)))
    n = count_parameters(cfg)
    per_layer = 4 * cfg.dim * cfg.dim + 3 * cfg.dim * cfg.hidden_dim + 2 * cfg.dim
    fpt = flops_per_token(cfg, n)
    lines = [
        f"config {cfg.name}, resolved:", cfg.to_json().rstrip(),
        (f"parameters: {n:,} ({n / 1e9:.2f}B), counted on the meta device: {cfg.n_layers} layers x {per_layer:,} "
         f"+ embeddings {cfg.vocab_size * cfg.dim:,} + output {cfg.vocab_size * cfg.dim:,} + final norm {cfg.dim}"),
        f"feed-forward hidden {cfg.hidden_dim}, head dimension {cfg.head_dim}, context {cfg.seq_len}",
        (f"batch: {cfg.global_batch_tokens:,} tokens = {cfg.global_batch_sequences:,} sequences of {cfg.seq_len}; "
         f"{cfg.grad_accum_steps(world)} micro-steps of {cfg.micro_batch_size} sequence(s) on each of {world} "
         "process(es)"),
        (f"schedule: {cfg.max_steps:,} steps ({cfg.max_steps * cfg.global_batch_tokens / 1e9:,.1f}B tokens), "
         f"{cfg.warmup_steps} warmup, lr {cfg.lr:g} cosine to {cfg.lr * cfg.min_lr_ratio:g}"),
        f"FLOPs per token (6N + 12LdT): {fpt:.4g}; whole run: {fpt * cfg.max_steps * cfg.global_batch_tokens:.4g}",
        *memory_report(cfg, world),
    ]
    return "\n".join(lines)


def memory_report(cfg: TrainConfig, world: int) -> list[str]:
    """The per-GPU memory estimate of the chosen micro-batch, and the micro-batch the estimate would choose."""
    from train.config import MEMORY_MARGIN, choose_micro_batch, fits, memory_estimate, mesh_shape, resolve_grad_sync
    replicas, shards = mesh_shape(cfg, world)
    sync = resolve_grad_sync(cfg, world)
    est = memory_estimate(cfg, world, grad_sync=sync)
    total = sum(est.values()) / 2**30
    budget = MEMORY_MARGIN * cfg.gpu_memory_gib
    when = "the last micro-step" if sync == "last" else "every micro-step"
    lines = [f"memory per GPU (estimate; {world} process(es) = {replicas} replica(s) x {shards} shard(s), "
             f"gradients reduced in {cfg.reduce_dtype} on {when}):"]
    lines += [f"  {name:<52} {b / 2**30:9.2f} GiB" for name, b in est.items()]
    verdict = "fits" if fits(cfg, est) else "DOES NOT FIT"
    lines.append(f"  {'total':<52} {total:9.2f} GiB: {verdict} in {budget:.0f} GiB "
                 f"({MEMORY_MARGIN:.0%} of gpu_memory_gib {cfg.gpu_memory_gib:g})")
    best = choose_micro_batch(cfg, world)
    if best != cfg.micro_batch_size:
        lines.append(f"  the estimate would choose micro_batch_size {best} "
                     f"({best * cfg.seq_len:,} tokens per micro-step)")
    return lines
