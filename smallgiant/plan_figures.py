"""The throughput figures `smallgiant plan` prices the build from, with where each came from: measured
here (a row of benchmarks/RESULTS.md, its date and machine) or assumed (and what was assumed)."""
from __future__ import annotations

from dataclasses import dataclass

BENCH_MACHINE = "2 vCPU Intel Xeon VM, 24 GiB"


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    measured: bool
    basis: str          # the benchmark (date, machine, run) or the assumption

    def label(self) -> str:
        return f"{'measured' if self.measured else 'assumed'}: {self.basis}"


def _measured(value: float, unit: str, what: str, date: str = "2026-11-24") -> Figure:
    return Figure(value, unit, True, f"{what}, {date}")


# the CC job, 1 worker in-process: 20,000 WET records, 76.5 MB of text, in 54.2 s on one core
CC_JOB_BYTES_PER_CORE_S = _measured(76.5e6 / 54.2, "bytes/core-s", "CC job on bench.warc.wet.gz, 1 worker")
BENCH_BYTES_PER_DOC = _measured(76.5e6 / 20_000, "bytes/doc", "mean document of bench.warc.wet.gz")
REFERENCE_DOCS_PER_CORE_S = _measured(5_212, "docs/core-s", "quality.reference stage of the CC job")
PERPLEXITY_DOCS_PER_CORE_S = _measured(661, "docs/core-s", "quality.perplexity stage of the CC job")
# the shard benchmark: 18,723,181 tokens of 20,000 documents, 4.086 bytes per token, 32k tokenizer
ENCODE_TOKENS_PER_CORE_S = _measured(1_057_152, "tokens/core-s", "bare SentencePiece encoding, shard benchmark")
BYTES_PER_TOKEN = _measured(4.086, "bytes/token", "32k tokenizer on bench.warc.wet.gz")
TOKENS_PER_DOC = _measured(18_723_181 / 20_000, "tokens/doc", "shard benchmark")
# no GPU has measured the trainer yet (RESULTS.md, "Trainer speed on GPU")
TRAIN_MFU = Figure(0.495, "MFU", False, "the paper's 65B run, 380 tokens/s per A100-80GB = 49.5% of "
                                        "312 TFLOP/s; the trainer's own MFU is not measured yet")
