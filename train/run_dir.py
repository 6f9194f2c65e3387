"""The run directory: config.json (the resolved configuration), run.json (the dataset the run reads and
its tokenizer; for a run imported from Hugging Face, also where it came from), and the rules for starting
or resuming a run in it.

A new run refuses a directory that already holds checkpoints, and any non-empty directory that is not a
run directory; a resumed run must keep the fields that fix what its checkpoints mean (model shape,
context, batch, seed) and read the same dataset, and keeps its learning-rate schedule unless a change is
allowed (`--allow-schedule-change`); `--resume auto` starts afresh or resumes, as the directory calls for.
The run directory never overlaps the dataset, and one
run at a time holds it (`hold_run_dir`: the lease of `pipeline.runtime.guard`, taken by the first process).
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator

from pipeline.runtime.guard import (LEASE, SETTINGS_FILE, acquire_lease, check_no_overlap, release_lease,
                                    settings_for, write_atomically)
from tokenizer.shard_format import TokenDataset
from train.checkpoint import latest_checkpoint, list_checkpoints, write_json_atomic
from train.config import FROZEN_ON_RESUME, SCHEDULE_FIELDS, TrainConfig


IMPORTED = "imported_from"      # run.json: the Hugging Face checkpoint a run was imported from


def load_run_config(run_dir: str) -> TrainConfig:
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a run directory")
    with open(path) as f:
        return TrainConfig.from_dict(json.load(f))


def load_run_info(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "run.json")) as f:
        return json.load(f)


def saved_data_path(run_dir: str) -> str | None:
    """The dataset a run was started on, if the directory records one."""
    if not os.path.exists(os.path.join(run_dir, "run.json")):
        return None
    return load_run_info(run_dir)["data"]


def check_resume_compatible(saved: TrainConfig, cfg: TrainConfig) -> None:
    changed = [f"{k} {getattr(saved, k)} -> {getattr(cfg, k)}" for k in FROZEN_ON_RESUME
               if getattr(saved, k) != getattr(cfg, k)]
    if changed:
        raise ValueError("cannot resume with a different " + ", ".join(changed) +
                         ": these fix what the checkpoint means; start a new run instead")


def schedule_changes(saved: TrainConfig, cfg: TrainConfig) -> list[str]:
    """The learning-rate schedule fields a resume would change, as "field old -> new"."""
    return [f"{k} {getattr(saved, k)} -> {getattr(cfg, k)}" for k in SCHEDULE_FIELDS if getattr(saved, k) != getattr(cfg, k)]


def plan_resume(cfg: TrainConfig, output: str, resume: bool | str) -> tuple[str | None, list[str]]:
    """Check that the run may start (or resume) here; return the checkpoint to resume from (None: a fresh
    start) and the schedule changes resuming would make. `resume` True: there must be a checkpoint;
    "auto": resume the newest complete one if there is one, else start afresh (the same command serves
    the first start and every restart)."""
    ckpt_dir = os.path.join(output, "checkpoints")
    found = latest_checkpoint(ckpt_dir)
    if resume == "auto":
        resume = found is not None
    if not resume:
        if list_checkpoints(ckpt_dir):
            raise ValueError(f"{output} already holds checkpoints: pass --resume to continue that run, "
                             "or choose another --output")
        return None, []
    if found is None:
        raise FileNotFoundError(f"--resume: no complete checkpoint in {ckpt_dir}")
    saved = load_run_config(output)
    check_resume_compatible(saved, cfg)
    return found[1], schedule_changes(saved, cfg)


def refuse_schedule_change(changes: list[str]) -> None:
    if changes:
        raise ValueError("resuming would change the learning-rate schedule (" + ", ".join(changes) + "): pass "
                         "--allow-schedule-change if that is meant, or resume with the run's saved values")


def write_run_files(cfg: TrainConfig, output: str, dataset: TokenDataset, resuming: bool) -> None:
    """config.json and run.json (process 0 only)."""
    os.makedirs(output, exist_ok=True)
    kept = _kept_on_resume(output) if resuming else {}
    write_json_atomic(os.path.join(output, "config.json"), cfg.to_dict())
    write_json_atomic(os.path.join(output, "run.json"), {
        "data": os.path.abspath(dataset.directory), "num_tokens": dataset.num_tokens,
        "vocab_size": dataset.vocab_size, "eos_id": dataset.eos_id, "bos_id": dataset.bos_id,
        "tokenizer": dataset.manifest.get("tokenizer", {}), **kept})


def prepare_run_dir(cfg: TrainConfig, output: str, dataset: TokenDataset, resume: bool | str, is_main: bool) -> str | None:
    """Check that the run may start (or resume, with its schedule unchanged) here and write config.json and
    run.json; return the checkpoint to resume from."""
    found, changes = plan_resume(cfg, output, resume)
    refuse_schedule_change(changes)
    if is_main:
        write_run_files(cfg, output, dataset, found is not None)
    return found


def _kept_on_resume(output: str) -> dict:
    """What run.json keeps when the run resumes: where an imported run came from."""
    if not os.path.exists(os.path.join(output, "run.json")):
        return {}
    info = load_run_info(output)
    return {IMPORTED: info[IMPORTED]} if IMPORTED in info else {}


def record_import(output: str, source: dict) -> None:
    """Note in run.json where an imported run's weights and tokenizer came from (kept across resumes)."""
    write_json_atomic(os.path.join(output, "run.json"), {**load_run_info(output), IMPORTED: source})


RUN_FILES = {"config.json", "run.json", "checkpoints", "metrics.jsonl", "summary.json", "tensorboard", LEASE,
             SETTINGS_FILE, "tokenizer"}     # tokenizer/: the copy an imported run carries


@contextlib.contextmanager
def hold_run_dir(output: str, data: str, is_first_process: bool) -> Iterator[None]:
    """Refuse a run directory that overlaps the dataset or is some other directory with files in it, and
    hold it against a second run for as long as the block lasts (only the first process takes the lease;
    under torchrun the others are stopped with it if it fails)."""
    check_no_overlap(output, [data])
    if os.path.isdir(output):
        others = sorted(set(os.listdir(output)) - RUN_FILES)
        if others and not os.path.exists(os.path.join(output, "config.json")):
            raise ValueError(f"--output {output} is not a run directory and holds files ({others[0]}, ...): "
                             "choose a new or empty directory")
    if not is_first_process:
        yield
        return
    os.makedirs(output, exist_ok=True)
    lease = acquire_lease(output, "train")
    try:
        settings = settings_for(output)
        if settings is not None:   # the command line's resolved settings: `--config-file RUN/config.yaml`
            write_atomically(os.path.join(output, SETTINGS_FILE), settings)
        yield
    finally:
        release_lease(lease)
