"""A wrong command line is an error before any job reads anything: a misspelt option is exit 2 naming the
closest valid one (the command's own or Beam's), an impossible number is exit 2 naming its option, and
valid Beam options still reach Beam. An http input whose server refuses connections gives up within
seconds and becomes a dead letter; throttling keeps its back-off, bounded by a deadline."""
from __future__ import annotations

import argparse
import dataclasses
import http.server
import socket
import threading

import pytest

from pipeline import inputs
from pipeline.inputs import RetryingHttpReader
from smallgiant.cli import build_parser, job_arguments, main
from train.config import TrainConfig


def exit_code(argv: list[str]) -> int:
    """The exit code of the command line, whether argparse exits or the job returns."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def job_argv(job: str, tmp_path) -> list[str]:
    """A job's command line with its required options; the inputs match nothing, so a job that were not
    refused would stop at once with another message."""
    none, out = str(tmp_path / "*.none"), str(tmp_path / "out")
    argv = {
        "cc": ["pipeline", "cc", "--input", none, "--output", out],
        "lm train": ["pipeline", "lm", "train", "--input", none, "--language", "en", "--output", out],
        "lm cutoffs": ["pipeline", "lm", "cutoffs", "--input", none, "--models", out],
        "classifier dataset": ["classifier", "dataset", "--positives", none, "--negatives", none, "--output", out],
        "classifier train": ["classifier", "train", "--data", out, "--output", out],
        "tokenizer train": ["tokenizer", "train", "--manifest", none, "--output", out],
        "tokenizer shards": ["tokenizer", "shards", "--manifest", none, "--tokenizer", out, "--output", out],
        "train": ["train", "--config", "tiny", "--dry-run", "vocab_size=300"],
        "train export-hf": ["train", "export-hf", str(tmp_path / "run"), "--output", out],
    }
    return argv.get(job) or ["pipeline", job, "--input", none, "--output", out]


# ---- misspelt options ---------------------------------------------------------------------------------

@pytest.mark.parametrize("typo, value, meant", [("--languagse", "fr", "--languages"),
                                                ("--minchars", "5", "--min-chars")])
def test_a_misspelt_option_of_a_beam_job_is_exit_2_naming_the_closest(typo, value, meant, tmp_path, capsys):
    assert exit_code(job_argv("cc", tmp_path) + [typo, value]) == 2
    assert f"unknown option {typo}; did you mean {meant}?" in capsys.readouterr().err


def test_a_misspelt_beam_option_is_matched_among_beams_options(tmp_path, capsys):
    assert exit_code(job_argv("c4", tmp_path) + ["--direct_num_worker=2"]) == 2
    assert "unknown option --direct_num_worker; did you mean --direct_num_workers?" in capsys.readouterr().err


def test_a_job_without_beam_refuses_leftovers_with_the_same_message(tmp_path, capsys):
    assert exit_code(job_argv("lm train", tmp_path) + ["--ordr", "3"]) == 2
    assert "unknown option --ordr; did you mean --order?" in capsys.readouterr().err
    assert exit_code(job_argv("classifier train", tmp_path) + ["--runner", "DirectRunner"]) == 2
    assert "unknown option --runner" in capsys.readouterr().err


def test_a_word_no_option_takes_is_exit_2(tmp_path, capsys):
    assert exit_code(job_argv("books", tmp_path) + ["stray"]) == 2
    assert "unrecognized arguments: stray" in capsys.readouterr().err


def test_a_beam_option_with_a_bad_value_is_exit_2_naming_it(tmp_path, capsys):
    assert exit_code(job_argv("cc", tmp_path) + ["--direct_num_workers", "many"]) == 2
    assert "argument --direct_num_workers: invalid int value: 'many'" in capsys.readouterr().err


BEAM_OPTIONS = ["--direct_num_workers=1", "--runner", "DirectRunner", "--temp_location", "gs://b/tmp",
                "--save_main_session", "--experiments=use_runner_v2", "--project", "p", "--region", "r"]


@pytest.mark.parametrize("job", ["cc", "wikipedia", "classifier dataset", "tokenizer shards"])
def test_valid_beam_options_reach_the_job_unchanged(job, tmp_path):
    parser = build_parser()
    args, leftovers = parser.parse_known_args(job_argv(job, tmp_path) + BEAM_OPTIONS)
    assert job_arguments(parser, args, leftovers) == BEAM_OPTIONS


def test_the_trainer_gets_its_config_overrides():
    parser = build_parser()
    args, leftovers = parser.parse_known_args(["train", "--config", "tiny", "lr=1e-3", "--warmup_steps", "3"])
    assert job_arguments(parser, args, leftovers) == ["lr=1e-3", "--warmup_steps", "3"]


def test_beam_pipeline_options_refuse_what_beam_would_drop():
    from pipeline.runtime.runner import pipeline_options, unknown_beam_args
    assert unknown_beam_args(BEAM_OPTIONS) == []
    assert unknown_beam_args(["--runner=DirectRunner", "--languagse", "fr"]) == ["--languagse", "fr"]
    with pytest.raises(ValueError, match="not Beam pipeline options: --languagse fr"):
        pipeline_options(["--languagse", "fr"])


# ---- impossible numbers ------------------------------------------------------------------------------

COUNTS = ["-1", "0"]        # a count that must be at least 1
NON_NEGATIVE = ["-1"]
SHARE = ["-1", "1.5"]       # a share or probability in [0, 1]
OPEN_SHARE = ["-1", "0", "1"]

SOURCE_COMMON = [(s, o, COUNTS) for s in ("arxiv", "books", "c4", "github", "stackexchange", "wikipedia")
                 for o in ("--output-shards", "--max-files")]
OPTIONS = SOURCE_COMMON + [
    ("cc", "--max-files", COUNTS), ("cc", "--max-record-bytes", COUNTS), ("cc", "--minhash-perms", COUNTS + ["1"]),
    ("cc", "--minhash-ngram", COUNTS), ("cc", "--template-line-docs", COUNTS + ["1"]),
    ("cc", "--template-max-words", NON_NEGATIVE), ("cc", "--template-line-docs-long", COUNTS + ["1"]),
    ("cc", "--min-chars", NON_NEGATIVE), ("cc", "--lid-threshold", SHARE), ("cc", "--output-shards", COUNTS),
    ("cc", "--minhash-threshold", OPEN_SHARE), ("cc", "--quality-threshold", SHARE),
    ("arxiv", "--max-macro-depth", NON_NEGATIVE), ("arxiv", "--max-macro-uses", NON_NEGATIVE),
    ("books", "--overlap", OPEN_SHARE), ("books", "--ngram", COUNTS), ("books", "--minhash-perms", COUNTS + ["1"]),
    ("books", "--max-book-bytes", COUNTS),
    ("c4", "--lid-threshold", SHARE), ("c4", "--minhash-threshold", OPEN_SHARE),
    ("github", "--max-file-bytes", COUNTS), ("github", "--max-line-length", COUNTS),
    ("github", "--max-mean-line-length", COUNTS), ("github", "--min-alphanumeric", SHARE),
    ("stackexchange", "--top-sites", COUNTS), ("stackexchange", "--min-answers", NON_NEGATIVE),
    ("lm train", "--order", COUNTS), ("lm train", "--vocab-size", COUNTS), ("lm train", "--max-lines", COUNTS),
    ("lm train", "--seed", NON_NEGATIVE),
    ("lm cutoffs", "--sample-docs", COUNTS), ("lm cutoffs", "--seed", NON_NEGATIVE),
    ("lm cutoffs", "--percentiles", ["-1,30", "0,60", "60,30", "30"]),
    ("classifier dataset", "--min-chars", NON_NEGATIVE), ("classifier dataset", "--negatives-per-positive", COUNTS),
    ("classifier dataset", "--valid-share", OPEN_SHARE), ("classifier dataset", "--test-share", OPEN_SHARE),
    ("classifier dataset", "--seed", NON_NEGATIVE),
    ("classifier train", "--word-ngrams", COUNTS + ["1"]), ("classifier train", "--dim", COUNTS),
    ("classifier train", "--epoch", COUNTS), ("classifier train", "--lr", COUNTS + ["inf"]),
    ("classifier train", "--min-count", COUNTS), ("classifier train", "--threads", COUNTS),
    ("classifier train", "--seed", NON_NEGATIVE), ("classifier train", "--target-precision", ["-1", "0", "1.5"]),
    ("tokenizer train", "--vocab-size", COUNTS), ("tokenizer train", "--sample-docs", COUNTS),
    ("tokenizer train", "--held-out-docs", NON_NEGATIVE), ("tokenizer train", "--held-out-share", ["-1", "1"]),
    ("tokenizer train", "--seed", NON_NEGATIVE), ("tokenizer train", "--threads", COUNTS),
    ("tokenizer shards", "--total-tokens", COUNTS), ("tokenizer shards", "--shard-tokens", COUNTS),
    ("tokenizer shards", "--sample-docs", COUNTS), ("tokenizer shards", "--seed", NON_NEGATIVE),
    ("tokenizer shards", "--vcpu-hour-usd", NON_NEGATIVE), ("tokenizer shards", "--gb-hour-usd", NON_NEGATIVE),
    ("tokenizer shards", "--shuffle-gb-usd", NON_NEGATIVE),
    ("train", "--stop-at-step", COUNTS), ("train export-hf", "--step", NON_NEGATIVE),
]


@pytest.mark.parametrize("job, option, value", [(j, o, v) for j, o, values in OPTIONS for v in values])
def test_an_impossible_number_is_exit_2_naming_its_option(job, option, value, tmp_path, capsys):
    assert exit_code(job_argv(job, tmp_path) + [f"{option}={value}"]) == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be" in err or f"argument {option}: expected" in err \
        or f"{option} must be" in err      # checked by the job's config, before it reads anything


def _numeric_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig) if f.type in ("int", "float")]


# fields where 0 cannot be meant either (0 in the others means "derived" or "none")
NO_ZERO = ("dim", "n_layers", "n_heads", "multiple_of", "seq_len", "global_batch_tokens", "micro_batch_size",
           "log_every", "checkpoint_every", "keep_checkpoints", "max_bad_steps", "lr", "norm_eps", "rope_theta",
           "init_std", "adam_eps", "grad_clip", "pue")


@pytest.mark.parametrize("field, value", [(f, "-1") for f in _numeric_fields()] + [(f, "0") for f in NO_ZERO]
                         + [("beta2", "1"), ("min_lr_ratio", "1.5"), ("lr", "nan")])
def test_an_impossible_config_override_is_exit_2_naming_the_field(field, value, tmp_path, capsys):
    assert exit_code(job_argv("train", tmp_path) + [f"{field}={value}"]) == 2
    assert f"{field} must be" in capsys.readouterr().err


def test_zero_stays_valid_where_it_means_derived(capsys):
    assert exit_code(["train", "--config", "7b", "--dry-run", "max_steps=0", "ffn_hidden=0", "cpu_threads=0",
                      "peak_tflops=0"]) == 0
    assert "238,419 steps" in capsys.readouterr().out     # from the preset's 1T tokens


def test_configs_built_in_code_are_checked_too(tmp_path):
    from classifier.model import TrainParams, train
    from pipeline.cc.config import CCConfig
    with pytest.raises(ValueError, match="--max-record-bytes"):
        CCConfig(input="x", output="o", max_record_bytes=-1).validate()
    with pytest.raises(ValueError, match="epoch 0 "):     # refused before the missing data is looked for
        train(str(tmp_path / "no-data"), str(tmp_path / "model"), TrainParams(epoch=0))
    with pytest.raises(ValueError, match="target precision"):
        train(str(tmp_path / "no-data"), str(tmp_path / "model"), TrainParams(), target_precision=0)


def test_a_run_with_no_steps_is_refused_before_it_starts(tmp_path, capsys):
    assert exit_code(["train", "--config", "tiny", "--max-steps", "0", "--output", str(tmp_path / "run"),
                      "--data", str(tmp_path)]) == 2
    assert "set max_steps or train_tokens" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _commands(parser: argparse.ArgumentParser, name: str = "smallgiant"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _commands(p, f"{name} {sub}")


def test_no_option_takes_an_unchecked_number():
    bare = [(name, a.option_strings[0]) for name, p in _commands(build_parser()) for a in p._actions
            if a.type in (int, float) and a.option_strings]
    assert bare == []


# ---- http inputs ------------------------------------------------------------------------------------------

class FakeClock:
    """Stands in for the reader's `time`: sleeping only advances the clock, and every wait is kept."""

    def __init__(self):
        self.now, self.waits = 0.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(inputs, "time", fake)
    return fake


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/f.warc.wet.gz"


def test_a_refused_connection_gives_up_within_seconds(clock):
    with pytest.raises(OSError, match="given up after 2 retries"):
        RetryingHttpReader(_refused_url()).read(1024)
    assert len(clock.waits) == 2 and sum(clock.waits) < 15


def test_an_unknown_host_gives_up_within_seconds(clock, monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(OSError, match="Name or service not known"):
        RetryingHttpReader("http://no-such-host.invalid/f.warc.wet.gz").read(1024)
    assert len(clock.waits) == 2 and sum(clock.waits) < 15


def test_a_refused_http_input_is_one_dead_letter(clock):
    from pipeline.readers.crawl import read_crawl
    from pipeline.schema import DeadLetter
    url = _refused_url()
    letters = list(read_crawl(url, 1 << 20))
    assert len(letters) == 1 and isinstance(letters[0], DeadLetter)
    assert letters[0].file == url and "refused" in letters[0].reason.lower()


class _Throttling(http.server.BaseHTTPRequestHandler):
    """429 for the first `throttled` requests (forever when None), then the payload."""
    payload = b"WARC/1.0\r\n" * 100
    throttled: int | None = 2
    calls = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).calls += 1
        if self.throttled is None or self.calls <= self.throttled:
            self.send_response(429)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)


@pytest.fixture
def throttling_server():
    def serve(throttled: int | None) -> str:
        handler = type("Handler", (_Throttling,), {"throttled": throttled, "calls": 0})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/f.warc"
    servers: list = []
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_throttling_is_waited_out(throttling_server):
    reader = RetryingHttpReader(throttling_server(2), backoff=0.01, timeout=5)
    assert reader.read() == _Throttling.payload


def test_throttling_without_end_stops_at_the_deadline(throttling_server, clock):
    reader = RetryingHttpReader(throttling_server(None), retries=1000, deadline=600, timeout=5)
    with pytest.raises(OSError, match="HTTP Error 429"):
        reader.read()
    assert sum(clock.waits) <= 600 and max(clock.waits) <= 60
    assert 6 < len(clock.waits) < 30        # more than a refused connection gets, far fewer than the count allows


def test_a_server_that_does_not_answer_keeps_every_retry(clock):
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        reader = RetryingHttpReader(f"http://127.0.0.1:{silent.getsockname()[1]}/f", retries=4, timeout=0.05)
        with pytest.raises(OSError, match="timed out"):
            reader.read()
    assert len(clock.waits) == 4
