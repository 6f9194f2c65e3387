"""`--config-file`: a job's options from YAML, flags winning, unknown keys refused, and the resolved settings
left as config.yaml next to the outputs, which run the job again exactly."""
from __future__ import annotations

import argparse

import pytest
import yaml

from helpers import LOCAL, sample_wet
from pipeline.runtime.config_files import add_config_file_option, expand, resolved
from smallgiant.cli import build_parser, main


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("config")
    sample_wet(str(root / "a.warc.wet.gz"))
    argv = ["pipeline", "cc", "--input", str(root / "a.warc.wet.gz"), "--output", str(root / "one"),
            "--min-chars", "120", "--languages", "en,fr", "--no-near-dedup", *LOCAL]
    assert main(argv) == 0
    return root


def test_a_finished_job_leaves_its_resolved_settings(first_run):
    settings = yaml.safe_load((first_run / "one" / "config.yaml").read_text())
    assert settings["min-chars"] == 120 and settings["languages"] == "en,fr"
    assert settings["no-near-dedup"] is True and settings["no-exact-dedup"] is False
    assert settings["lid-threshold"] == 0.5                    # defaults are written too
    assert settings["extra-args"] == LOCAL
    assert "config-file" not in settings


def test_the_settings_file_runs_the_job_again_exactly(first_run):
    one, two = first_run / "one", first_run / "two"
    assert main(["pipeline", "cc", "--config-file", str(one / "config.yaml"), "--output", str(two)]) == 0
    for part in ("docs", "rejects", "dead_letters"):
        files = sorted(p.name for p in (one / part).iterdir())
        assert files == sorted(p.name for p in (two / part).iterdir())
        assert all((one / part / f).read_bytes() == (two / part / f).read_bytes() for f in files)
    assert (one / "docs" / "part-00000.parquet").stat().st_size > 0
    settings = yaml.safe_load((two / "config.yaml").read_text())
    assert settings == {**yaml.safe_load((one / "config.yaml").read_text()), "output": str(two)}


def test_flags_win_over_the_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input: a.wet\noutput: out\nmin_chars: 50\nno-exact-dedup: true\nlanguages: [de, fr]\n")
    argv = expand(build_parser(), ["pipeline", "cc", "--config-file", str(cfg), "--min-chars", "70"])
    args = build_parser().parse_args(argv)
    assert (args.min_chars, args.exact_dedup, args.languages, args.input) == (70, False, "de,fr", "a.wet")


@pytest.mark.parametrize("text, message", [
    ("input: a\noutput: b\nmin-char: 5\n", "unknown key 'min-char'; did you mean min-chars?"),
    ("input: a\noutput: b\nno-near-dedup: yes please\n", "no-near-dedup is a switch: true or false"),
    ("- input\n", "a config file is a mapping of option names to values"),
    ("input: &x a\noutput: *x\n", "anchors and aliases are not allowed"),
    ("input: a\ninput: b\n", "input: duplicate key"),
])
def test_a_bad_config_file_is_exit_2_naming_the_problem(tmp_path, capsys, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    assert main(["pipeline", "cc", "--config-file", str(cfg)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_every_job_takes_a_config_file():
    def leaves(p: argparse.ArgumentParser, name: str):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield name, p
        for sub, child in (subs[0].choices.items() if subs else ()):
            yield from leaves(child, f"{name} {sub}")
    jobs = dict(leaves(build_parser(), "smallgiant"))
    assert {"smallgiant pipeline cc", "smallgiant pipeline books", "smallgiant pipeline lm cutoffs",
            "smallgiant classifier train", "smallgiant tokenizer shards", "smallgiant train",
            "smallgiant demo"} <= set(jobs)
    missing = [n for n, p in jobs.items() if "--config-file" not in {s for a in p._actions for s in a.option_strings}]
    assert missing == []


def test_settings_round_trip_through_their_text():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pair", type=lambda s: tuple(float(x) for x in s.split(",")), default=(30.0, 60.0))
    parser.add_argument("--flag", action="store_true")
    parser.add_argument("--name")
    add_config_file_option(parser)
    argv = ["--pair", "10,20", "--flag"]
    settings = yaml.safe_load(resolved(parser, argv, parser.parse_args(argv), []))
    assert settings == {"pair": [10.0, 20.0], "flag": True}
