"""Progress lines from Beam workers, readable.

The local runner's worker processes forward their log records to the driver as text dumps of protobuf
messages under one Beam logger. `show_worker_progress` keeps those that this project logged and prints
just their message, so a local run shows per-file and per-stage progress as it goes; on Dataflow, Flink
or Spark the same records appear in the runner's own log viewer.
"""
from __future__ import annotations

import logging
import re

WORKER_LOGGER = "apache_beam.runners.portability.local_job_service"
_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_LOCATION = re.compile(r'log_location: "([^"]*)"')
PROGRESS_EVERY = 10_000
log = logging.getLogger("smallgiant.progress")


class _WorkerProgress(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        loc = _LOCATION.search(text)
        msg = _MESSAGE.search(text)
        if not (loc and msg and "pipeline" in loc.group(1)):
            return False
        record.msg = "worker: " + msg.group(1).encode().decode("unicode_escape", "replace")
        record.args = ()
        record.name = "smallgiant.progress"
        return True


def show_worker_progress() -> None:
    logger = logging.getLogger(WORKER_LOGGER)
    if not any(isinstance(f, _WorkerProgress) for f in logger.filters):
        logger.addFilter(_WorkerProgress())
    logger.setLevel(logging.INFO)


class Progress:
    """Logs `<what>: N` every PROGRESS_EVERY items seen by one worker."""

    def __init__(self, what: str):
        self.what = what
        self.n = 0

    def tick(self) -> None:
        self.n += 1
        if self.n % PROGRESS_EVERY == 0:
            log.info("%s: %d", self.what, self.n)
