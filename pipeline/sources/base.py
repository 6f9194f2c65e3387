"""What a source of the mixture is, to the curation engine (`pipeline.engine`).

A `Source` knows its download format and its cleaning; the engine does everything else the same way for
all seven (CommonCrawl's is `pipeline.cc.source`): files in any Beam filesystem, keys, dead letters,
counting, the work area, sharded Parquet in the document schema, rejects with reasons, stats.json and the
printed funnel. A source is an ordered list of stages: `steps`, then `dedup_steps`, then `final_steps`.

- `files(spec)`: the input files (default: `pipeline.inputs.expand_inputs`).
- `read(path)`: stream one file, yielding `Document`s, `Rejected`s (dropped while reading, e.g. a redirect;
  their stage must be one of `stages`) and `DeadLetter`s. Memory must stay bounded by one record.
  Records that are not documents at all (another namespace, an image in a repository) are counted with
  `pipeline.runtime.counters.inc("read.skipped_records")` and not yielded.
- `spans(path)` and `read_span(path, span)`: a source whose files can be read in byte ranges at once
  (CommonCrawl's per-record gzip) gives the ranges (`(start, end)`, end None for the end of the file) and
  reads one; by default a file is one range, read by `read`. The ranges must depend on the file and the
  source's settings alone, never on the number of workers: they shape the keys and the output.
- `steps()`: per-document steps applied while reading, in order, built once per worker (load models
  here). A step that raises rejects that document with the exception as the reason.
- `dedup_steps()`: whole-run steps (`pipeline.engine.steps.WholeRunStep`, e.g. `pipeline.dedup`), in
  order; cheap to build (the driver builds them to lay out the graph), they load what they need lazily.
- `final_steps()`: per-document steps after the whole-run steps (e.g. CommonCrawl's language ID).
- `stages`: every stage name the funnel shows, in the order documents meet them (read-time stages,
  per-document steps, whole-run steps, final steps).

Sources are plain objects that pickle: they travel to Beam workers.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Iterator

from pipeline.inputs import WHOLE, Span
from pipeline.schema import DeadLetter, Document, Rejected


@dataclasses.dataclass
class Step:
    """A per-document step: returns the document (changed or not) to keep it, a reason string to reject
    it, or a `Rejected` whose document carries what the step measured (scores a threshold was applied to).
    Steps build new documents rather than change the one they are given: Beam's inputs must not change."""
    stage: str
    apply: Callable[[Document], "Document | str | Rejected"]


class Source:
    name: str = ""
    stages: tuple[str, ...] = ()

    def files(self, spec: str, max_files: int | None = None) -> list[str]:
        from pipeline.inputs import expand_inputs
        return expand_inputs(spec, limit=max_files)

    def read(self, path: str) -> Iterator[Document | Rejected | DeadLetter]:
        raise NotImplementedError

    def spans(self, path: str) -> list[Span]:
        return [WHOLE]

    def read_span(self, path: str, span: Span) -> Iterator[Document | Rejected | DeadLetter]:
        if tuple(span) != WHOLE:
            raise ValueError(f"{self.name} reads whole files only, not the range {span} of {path}")
        return self.read(path)

    def steps(self) -> list[Step]:
        return []

    def dedup_steps(self) -> list:
        return []

    def final_steps(self) -> list[Step]:
        return []

    def config(self) -> dict[str, Any]:
        """The settings recorded in stats.json."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The source's own command-line options (the job adds --input, --output and the common ones)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Source":
        return cls()
