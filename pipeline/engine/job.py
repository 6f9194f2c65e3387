"""The engine's Beam graph and its run: read pass, rounds of the whole-run steps, final pass, publish.

The same graph runs on the local runner (default: one worker process per core), Dataflow, Flink and
Spark. What is shuffled: unit descriptions, NumPy-packed entries and results of the rounds, and the kept
documents' ids; the documents themselves stay in the work area (`pipeline.engine.spill`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import threading

import apache_beam as beam
import numpy as np

from pipeline.engine import spill
from pipeline.engine.keys import DEFAULT_CHUNK_DOCS, MAX_FILES, MAX_PARTS, MAX_ROWS, Unit, doc_key, part_name, units_of
from pipeline.engine.steps import pack, unpack
from pipeline.engine.view import UnitView
from pipeline.inputs import join
from pipeline.runtime.counters import add_all, capture, doc_bytes, inc, timed, timed_iter
from pipeline.runtime.funnel import format_funnel, languages, stage_funnel
from pipeline.runtime.guard import DEFAULT_MAX_LEASE_AGE_HOURS, claim_output
from pipeline.runtime.memory import release_memory
from pipeline.runtime.output import RowBatches
from pipeline.runtime.progress import Progress
from pipeline.runtime.runner import local_cores, pipeline_options, run_graph
from pipeline.schema import DEAD_LETTER_SCHEMA, DOC_SCHEMA, REJECT_SCHEMA, DeadLetter, Document, Rejected

OUTPUTS = ["docs", "rejects", "dead_letters"]
STATS = "stats.json"
DEFAULT_BUCKETS = 64
MAX_DEFAULT_SHARDS = 256
log = logging.getLogger(__name__)


@dataclasses.dataclass
class EngineSettings:
    chunk_docs: int = DEFAULT_CHUNK_DOCS
    buckets: int = DEFAULT_BUCKETS
    output_shards: int | None = None
    fresh: bool = False


@contextlib.contextmanager
def _trimming(every_seconds: float = 2.0):
    """While the local runner holds the shuffles in this process, give back what it has freed, now and
    then (a buffer the runner drops after a round otherwise stays in the process's heap)."""
    done = threading.Event()

    def loop():
        while not done.wait(every_seconds):
            release_memory()

    thread = threading.Thread(target=loop, name="release-memory", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def whole_run_steps(source, chunk_docs: int) -> list:
    steps = source.dedup_steps()
    for step in steps:
        step.chunk_docs = chunk_docs
    return steps


def check_steps(steps) -> None:
    for before, after in zip(steps, steps[1:]):
        if before.changes_text:
            raise ValueError(f"whole-run step {after.stage} cannot follow {before.stage}, which changes the "
                             "text: a step's hashes are those of the text as read")
    names = [r.name for s in steps for r in s.rounds()]
    if len(set(names)) != len(names):
        raise ValueError(f"round names must be unique: {names}")


# --- read pass -------------------------------------------------------------------------------------

def file_parts(item, source):
    """(file index, path) -> (file index, part, path, start, end) for each byte range the source reads
    the file in (one for most files: `Source.spans`)."""
    index, path = item
    spans = source.spans(path)
    if len(spans) > MAX_PARTS:
        raise ValueError(f"{path}: {len(spans)} parts, at most {MAX_PARTS}")
    for part, (start, end) in enumerate(spans):
        yield index, part, path, start, end


class ReadPass(beam.DoFn):
    """(file index, part, path, start, end) -> the part's units; documents go to the work area, once."""

    def __init__(self, source, work: str, chunk_docs: int, fingerprint: str, n_files: int):
        self.source, self.work, self.chunk_docs = source, work, chunk_docs
        self.fingerprint, self.n_files = fingerprint, n_files

    def setup(self):
        self.steps = self.source.steps()

    def process(self, item):
        index, part, path, start, end = item
        reader, span = part_name(index, part), [start, end]
        where = f"{path} (file {index + 1}/{self.n_files})"
        if part or end is not None:
            where += f" bytes {start}-{'end' if end is None else end}"
        marker = spill.read_marker(self.work, reader)
        if marker and marker.get("fingerprint") == self.fingerprint and marker.get("path") == path \
                and marker.get("span") == span:
            log.info("read %s: done by an earlier run, %d rows", where, sum(marker["units"]))
            inc("read.parts_resumed")
        else:
            spill.forget_part(self.work, reader)
            with capture() as counts:
                units, n_dead = self._read(index, part, path, (start, end))
            marker = {"path": path, "span": span, "fingerprint": self.fingerprint, "units": units,
                      "dead": n_dead, "counters": counts}
            spill.write_marker(self.work, reader, marker)
            log.info("read %s: %d rows in %d units, %d dead letters", where, sum(units), len(units), n_dead)
        add_all(marker["counters"])
        release_memory()
        for chunk, rows in enumerate(marker["units"]):
            yield Unit(index, part, chunk, rows, dead=chunk == 0 and marker["dead"] > 0)

    def _read(self, index: int, part: int, path: str, span) -> tuple[list[int], int]:
        units: list[int] = []
        writer: RowBatches | None = None
        dead: list[DeadLetter] = []
        row = 0
        for item in timed_iter("read", self._items(path, span)):
            if isinstance(item, DeadLetter):
                dead.append(item)
                continue
            if row == MAX_ROWS:
                raise ValueError(f"{path}: more than {MAX_ROWS} documents in one part of a file; split it into smaller files")
            if row % self.chunk_docs == 0:
                if writer is not None:
                    units.append(writer.close())
                    release_memory()   # a large file's read would otherwise keep every unit's garbage
                writer = RowBatches(spill.unit_path(self.work, Unit(index, part, len(units), 0)),
                                    spill.SPILL_SCHEMA)
            writer.add(spill.spill_row(doc_key(index, row, part), self._stepped(item)))
            row += 1
        units.append(writer.close() if writer is not None else 0)
        spill.write_dead(self.work, part_name(index, part), dead)
        inc("read.parts")
        if part == 0:
            inc("read.files")
        return units, len(dead)

    def _items(self, path: str, span):
        """The source's items; a file that fails midway keeps what was read plus one dead letter."""
        progress = Progress(f"{self.source.name} records read from {path}")
        seq = 0
        try:
            for item in self.source.read_span(path, span):
                seq += 1
                progress.tick()
                if isinstance(item, DeadLetter):
                    inc("read.dead_letters")
                else:
                    inc("read.records")
                    doc = item.doc if isinstance(item, Rejected) else item
                    inc("read.docs_out")
                    inc("read.bytes_out", doc_bytes(doc.text))
                    if isinstance(item, Rejected):
                        count_reject(item)
                yield item
        except Exception as exc:  # the source could not go on: what was read stands, the rest is one dead letter
            inc("read.dead_letters")
            where = "cannot read file" if seq == 0 else f"reading stopped after record {seq}"
            yield DeadLetter(path, -1, f"{where}: {type(exc).__name__}: {exc}")

    def _stepped(self, item):
        return item if isinstance(item, Rejected) else apply_steps(self.steps, item)


def count_reject(rej: Rejected) -> None:
    inc(f"{rej.stage}.rejected")
    inc(f"{rej.stage}.rejected_bytes", doc_bytes(rej.doc.text))


def apply_steps(steps, doc: Document) -> Document | Rejected:
    """Per-document steps in order; the first rejection ends it (counted)."""
    for step in steps:
        before = doc_bytes(doc.text)
        with timed(step.stage):
            try:
                result = step.apply(doc)
            except Exception as exc:  # a document a step cannot handle costs that document only
                result = f"{step.stage} failed: {type(exc).__name__}: {exc}"
        if isinstance(result, str):
            result = Rejected(doc, step.stage, result)
        if isinstance(result, Rejected):
            count_reject(result)
            return result
        trimmed = before - doc_bytes(result.text)
        if trimmed:
            inc(f"{step.stage}.trimmed_bytes", trimmed)
        doc = result
    return doc


# --- rounds ----------------------------------------------------------------------------------------

def _view(work, joined, dtypes, steps, position, chunk_docs, units=None, kept_ids=None) -> UnitView:
    unit = joined["unit"][0]
    raw = {name: list(joined.get(name, [])) for name in dtypes}
    return UnitView(work, unit, chunk_docs, raw, dtypes, steps, position, units, kept_ids)


def packed_by(array: np.ndarray, groups: np.ndarray):
    """(group, packed rows of that group) for each distinct value of `groups`, rows in order."""
    order = np.argsort(groups, kind="stable")
    array, groups = array[order], groups[order]
    cuts = np.flatnonzero(np.diff(groups)) + 1
    for part in np.split(np.arange(len(array)), cuts):
        yield int(groups[part[0]]), pack(array[part])


class EmitRound(beam.DoFn):
    def __init__(self, source, work, chunk_docs, dtypes, position: int, round_name: str, buckets: int):
        self.source, self.work, self.chunk_docs, self.dtypes = source, work, chunk_docs, dtypes
        self.position, self.round_name, self.buckets = position, round_name, buckets

    def setup(self):
        self.steps = whole_run_steps(self.source, self.chunk_docs)
        self.step = self.steps[self.position]
        self.round = next(r for r in self.step.rounds() if r.name == self.round_name)

    def process(self, kv):
        _, joined = kv
        if not joined["unit"]:
            return
        view = _view(self.work, joined, self.dtypes, self.steps, self.position, self.chunk_docs)
        with timed(self.step.stage):
            entries = self.round.emit(view)
        del view
        release_memory()
        if not len(entries):
            return
        for bucket, packed in packed_by(entries, entries["h"] % np.uint64(self.buckets)):
            inc(f"shuffle.{self.round_name}.entry_bytes", len(packed))
            yield bucket, packed


class DecideRound(beam.DoFn):
    def __init__(self, source, chunk_docs, position: int, round_name: str):
        self.source, self.chunk_docs, self.position, self.round_name = source, chunk_docs, position, round_name

    def setup(self):
        self.step = whole_run_steps(self.source, self.chunk_docs)[self.position]
        self.round = next(r for r in self.step.rounds() if r.name == self.round_name)

    def process(self, group):
        _, parts = group
        dtype = self.round.entry
        entries = np.concatenate([unpack(p, dtype) for p in parts])
        with timed(self.step.stage):
            entries = entries[np.lexsort(tuple(entries[f] for f in reversed(dtype.names)))]
            results = self.round.decide(entries)
        if not len(results):
            return
        for unit, packed in packed_by(results, units_of(results["key"], self.chunk_docs)):
            inc(f"shuffle.{self.round_name}.result_bytes", len(packed))
            yield unit, packed


def _kept_by_unit(kv, chunk_docs: int):
    """(unit, DROP bytes) -> (unit of each kept document, DROP bytes about it)."""
    from pipeline.engine.steps import DROP
    _, raw = kv
    drops = unpack(raw, DROP)
    yield from packed_by(drops, units_of(drops["kept"], chunk_docs))


class LookupIds(beam.DoFn):
    """In the unit of the kept documents: their ids, sent to the units of the documents dropped for them."""

    def __init__(self, work, chunk_docs):
        self.work, self.chunk_docs = work, chunk_docs

    def process(self, kv):
        from pipeline.engine.keys import unit_of
        from pipeline.engine.steps import DROP
        _, joined = kv
        if not joined["unit"] or not joined["want"]:
            return
        drops = np.concatenate([unpack(b, DROP) for b in joined["want"]])
        wanted = set(drops["kept"].tolist())
        ids = {row["key"]: row["id"] for row in spill.read_rows(self.work, joined["unit"][0], ["key", "id"])
               if row["key"] in wanted}
        out: dict[int, set] = {}
        for key, kept in zip(drops["key"].tolist(), drops["kept"].tolist()):
            out.setdefault(unit_of(key, self.chunk_docs), set()).add((kept, ids.get(kept, "")))
        for uid, pairs in sorted(out.items()):
            yield uid, sorted(pairs)


# --- final pass ------------------------------------------------------------------------------------

class FinalPass(beam.DoFn):
    """(shard, [(unit id, joined decisions)]) -> Parquet files of the shard, streaming unit by unit."""

    def __init__(self, source, work, staging, chunk_docs, dtypes):
        self.source, self.work, self.staging, self.chunk_docs, self.dtypes = source, work, staging, chunk_docs, dtypes

    def setup(self):
        self.dedup = whole_run_steps(self.source, self.chunk_docs)
        self.final = self.source.final_steps()
        self.progress = Progress(f"{self.source.name} documents through the final steps on this worker")

    def process(self, group, all_units):
        shard, members = group
        units = {u.id: u for u in all_units}
        name = f"part-{shard:05d}.parquet"
        out = {"docs": RowBatches(join(self.staging, "docs", name), DOC_SCHEMA),
               "rejects": RowBatches(join(self.staging, "rejects", name), REJECT_SCHEMA),
               "dead_letters": RowBatches(join(self.staging, "dead_letters", name), DEAD_LETTER_SCHEMA)}
        for _, joined in sorted(members, key=lambda m: m[0]):
            kept_ids = dict(pair for pairs in joined.get("ids", []) for pair in pairs)
            view = _view(self.work, joined, self.dtypes, self.dedup, len(self.dedup), self.chunk_docs, units, kept_ids)
            wanted = sorted({k for step in self.dedup for k in step.wanted(view)})
            view.prefetched = view.fetch(wanted) if wanted else {}
            for key, item in view.rows():
                self.progress.tick()
                self._one(key, item, view, out)
            if view.unit.dead:
                for row in spill.read_dead(self.work, view.unit.reader):
                    out["dead_letters"].add(row)
            release_memory()
        for writer in out.values():
            writer.close()
        yield shard

    def _one(self, key: int, item, view: UnitView, out) -> None:
        if isinstance(item, Rejected):   # rejected while reading, counted then
            out["rejects"].add(item.to_row())
            return
        doc = item
        for step in self.dedup:
            with timed(step.stage):
                result = step.apply(key, doc, view)
            if result is None:
                inc(f"{step.stage}.merged")
                return
            if isinstance(result, Rejected):
                count_reject(result)
                out["rejects"].add(result.to_row())
                return
            doc = result
        result = apply_steps(self.final, doc)
        if isinstance(result, Rejected):
            out["rejects"].add(result.to_row())
            return
        inc("kept.docs")
        inc("kept.bytes", doc_bytes(result.text))
        lang = result.metadata.get("language")
        if lang:
            inc(f"kept.lang.{lang}")
        out["docs"].add(result.to_row())


def _shards(all_units: list[Unit], n_shards: int | None) -> dict[int, int]:
    """Unit id -> output shard: consecutive units share a shard, so each shard is in input order."""
    ordered = sorted(all_units)
    n = n_shards or min(len(ordered), MAX_DEFAULT_SHARDS)
    return {u.id: i * n // len(ordered) for i, u in enumerate(ordered)}


def build(p: beam.Pipeline, source, files: list[str], work: str, staging: str, settings: EngineSettings,
          fingerprint: str) -> None:
    steps = source.dedup_steps()
    check_steps(steps)
    dtypes = {r.name: r.result for s in steps for r in s.rounds()}
    chunk = settings.chunk_docs
    units = (p | "Files" >> beam.Create(list(enumerate(files)))
             | "Spread files" >> beam.Reshuffle()
             | "Parts" >> beam.FlatMap(file_parts, source)
             | "Spread parts" >> beam.Reshuffle()
             | "Read" >> beam.ParDo(ReadPass(source, work, chunk, fingerprint, len(files))))
    keyed = units | "Units by id" >> beam.Map(lambda u: (u.id, u))
    all_units = units | "All units" >> beam.combiners.ToList()
    decisions: dict[str, beam.PCollection] = {}   # each step's last round: what later steps and the final pass use
    for position, step in enumerate(steps):
        own: dict[str, beam.PCollection] = {}          # a step's earlier rounds feed only its later rounds
        for rnd in step.rounds():
            own[rnd.name] = (
                {"unit": keyed, **decisions, **own} | f"{rnd.name}: join" >> beam.CoGroupByKey()
                | f"{rnd.name}: emit" >> beam.ParDo(EmitRound(source, work, chunk, dtypes, position, rnd.name,
                                                               settings.buckets))
                | f"{rnd.name}: group" >> beam.GroupByKey()
                | f"{rnd.name}: decide" >> beam.ParDo(DecideRound(source, chunk, position, rnd.name)))
        last = step.rounds()[-1].name
        decisions[last] = own[last]
    results = decisions
    final_inputs = {"unit": keyed, **results}
    drop_rounds = [name for name in results if "kept" in dtypes[name].names]
    if drop_rounds:
        wants = ([results[n] for n in drop_rounds] | "Drops" >> beam.Flatten()
                 | "Kept keys by unit" >> beam.FlatMap(_kept_by_unit, chunk))
        final_inputs["ids"] = ({"unit": keyed, "want": wants} | "Kept ids: join" >> beam.CoGroupByKey()
                               | "Kept ids" >> beam.ParDo(LookupIds(work, chunk)))
    shard_map = all_units | "Assign shards" >> beam.Map(_shards, settings.output_shards)
    (final_inputs | "Final: join" >> beam.CoGroupByKey()
     | "By shard" >> beam.Map(lambda kv, shards: (shards[kv[0]], kv), beam.pvalue.AsSingleton(shard_map))
     | "Group shards" >> beam.GroupByKey()
     | "Final pass" >> beam.ParDo(FinalPass(source, work, staging, chunk, dtypes),
                                  beam.pvalue.AsSingleton(all_units)))


def fingerprint(source, settings: EngineSettings) -> str:
    """What a read pass depends on besides its file: a resumed run reuses only passes that match."""
    data = json.dumps({"source": source.name, "config": source.config(), "chunk_docs": settings.chunk_docs},
                      sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def run(source, files: list[str], out: str, inputs: list[str], beam_args: list[str] | None = None,
        settings: EngineSettings | None = None, overwrite: bool = False,
        max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS, config: dict | None = None, funnel=None) -> dict:
    """Run `source` over `files` to completion, publish its outputs, write stats.json, print the funnel.
    `inputs` are checked against the output for overlap; `funnel(counters, wall, cores)` builds the
    summary (default: the stages in order)."""
    settings = settings or EngineSettings()
    if len(files) > MAX_FILES:
        raise ValueError(f"{len(files)} input files, at most {MAX_FILES} in one job")
    if settings.output_shards is not None and settings.output_shards < 1:
        raise ValueError("--output-shards must be >= 1")
    claim = claim_output(out, f"pipeline {source.name}", OUTPUTS + [STATS], inputs, overwrite, max_lease_age,
                         resumable=True, fresh=settings.fresh)
    log.info("%s job: %d input files -> %s", source.name, len(files), out)
    opts = pipeline_options(beam_args or [])
    with claim as claimed, _trimming():
        counters, wall = run_graph(opts, lambda p: build(p, source, files, claimed.work(), claimed.stage(),
                                                         settings, fingerprint(source, settings)))
        claimed.publish(OUTPUTS)
        cores = local_cores(opts)
        summary = (funnel or _stage_funnel(source))(counters, wall, cores)
        summary["kept_languages"] = languages(counters, "kept.lang.")
        summary["parts"] = counters.get("read.parts", 0)
        summary["parts_resumed"] = counters.get("read.parts_resumed", 0)
        summary["shuffled_bytes"] = {k[len("shuffle."):]: v for k, v in sorted(counters.items())
                                     if k.startswith("shuffle.")}
        stats = {"job": source.name, "input_files": len(files), "config": config or source.config(), **summary}
        claimed.write(STATS, json.dumps(stats, indent=2, default=str).encode())
    print(f"{source.name}:\n{format_funnel(summary)}", flush=True)
    return stats


def _stage_funnel(source):
    def funnel(counters, wall, cores):
        out = stage_funnel(counters, list(source.stages), wall, cores)
        out["languages"] = languages(counters, "kept.lang.")
        return out
    return funnel
