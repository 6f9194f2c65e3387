"""Stages that run once and are skipped while their outputs are up to date, as `make` does.

A stage that finishes writes a stamp, `.stamps/<stage>.json`, holding its settings, wall time and the
figures it reports. It is up to date when its stamp exists with the same settings, every output it
declares exists, and the stamp is no older than the stamps of the stages it reads from. Re-running a
stage therefore re-runs everything downstream of it, and a stage that failed midway (no stamp) runs
again.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable

from pipeline.runtime.guard import write_atomically

STAMPS = ".stamps"


@dataclasses.dataclass
class Stage:
    name: str
    title: str
    run: Callable[[], dict[str, Any]]            # returns figures to keep in the stamp
    outputs: tuple[str, ...] = ()                # paths under the demo directory
    after: tuple[str, ...] = ()                  # stages whose outputs this one reads
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


def stamp_path(root: str, name: str) -> str:
    return os.path.join(root, STAMPS, f"{name}.json")


def read_stamp(root: str, name: str) -> dict[str, Any] | None:
    try:
        with open(stamp_path(root, name), encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _mtime(path: str) -> int:
    return os.stat(path).st_mtime_ns


def stale_reason(root: str, stage: Stage) -> str | None:
    """Why the stage must run, or None when it is up to date."""
    stamp = read_stamp(root, stage.name)
    if stamp is None:
        return "never ran"
    if stamp.get("params") != json.loads(json.dumps(stage.params)):
        return "its settings changed"
    missing = [p for p in stage.outputs if not os.path.exists(os.path.join(root, p))]
    if missing:
        return f"{missing[0]} is missing"
    mine = _mtime(stamp_path(root, stage.name))
    for up in stage.after:
        path = stamp_path(root, up)
        if not os.path.exists(path):
            return f"{up} has not run"
        if _mtime(path) > mine:
            return f"{up} ran again"
    return None


def write_stamp(root: str, stage: Stage, seconds: float, figures: dict[str, Any]) -> None:
    data = {"stage": stage.name, "title": stage.title, "params": stage.params, "seconds": round(seconds, 2),
            "figures": figures}
    write_atomically(stamp_path(root, stage.name), json.dumps(data, indent=1, sort_keys=True, default=str).encode())


def run_stages(root: str, stages: list[Stage], force: bool = False, say: Callable[[str], None] = print) -> list[dict]:
    """Run every stale stage in order; one record per stage: name, title, ran (bool), seconds."""
    done = []
    for i, stage in enumerate(stages, 1):
        head = f"[{i}/{len(stages)}] {stage.title}"
        reason = "--force" if force else stale_reason(root, stage)
        if reason is None:
            stamp = read_stamp(root, stage.name) or {}
            say(f"== {head}: up to date, skipped (ran in {stamp.get('seconds', 0):.1f} s)")
            done.append({"stage": stage.name, "title": stage.title, "ran": False, "seconds": 0.0})
            continue
        say(f"== {head} ({reason})")
        t0 = time.time()
        figures = stage.run() or {}
        seconds = time.time() - t0
        write_stamp(root, stage, seconds, figures)
        say(f"   {stage.name} done in {seconds:.1f} s")
        done.append({"stage": stage.name, "title": stage.title, "ran": True, "seconds": round(seconds, 2)})
    return done
