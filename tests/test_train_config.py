"""The config object and the `train` command line: presets, overrides in every form, clear errors, the
dry run (65B on the meta device), and the module entry point torchrun uses."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from train.cli import add_parser, build_config
from train.config import TrainConfig, apply_overrides, preset


def parse(argv):
    parser = argparse.ArgumentParser(prog="smallgiant")
    add_parser(parser.add_subparsers(dest="job", required=True))
    args, extra = parser.parse_known_args(["train", *argv])
    return args, extra


def run(argv) -> int:
    args, extra = parse(argv)
    return args.func(args, extra)


def config_from(argv) -> TrainConfig:
    args, extra = parse(argv)
    return build_config(args, extra)


def test_overrides_in_every_form_are_typed():
    cfg = config_from(["--config", "7b", "--lr", "1e-3", "warmup_steps=10", "--micro-batch-size", "4",
                       "--tensorboard", "false", "--grad_clip", "0.5", "--activation-checkpointing=full"])
    assert (cfg.lr, cfg.warmup_steps, cfg.micro_batch_size) == (1e-3, 10, 4)
    assert (cfg.tensorboard, cfg.grad_clip, cfg.activation_checkpointing) == (False, 0.5, "full")
    assert cfg.dim == 4096 and cfg.name == "7b"


def test_bad_overrides_fail_clearly():
    with pytest.raises(ValueError, match="unknown config field 'warmup_step'.*warmup_steps"):
        config_from(["--config", "tiny", "warmup_step=3"])
    with pytest.raises(ValueError, match="micro_batch_size: 'two' is not a valid int"):
        config_from(["--config", "tiny", "--micro-batch-size", "two"])
    with pytest.raises(ValueError, match="unknown config field 'no-such-field'"):
        config_from(["--config", "tiny", "--no-such-field", "1"])
    with pytest.raises(ValueError, match="unknown config 'llama7b'"):
        config_from(["--config", "llama7b"])
    with pytest.raises(ValueError, match="--config NAME is required"):
        config_from(["--lr", "1"])
    with pytest.raises(ValueError, match="activation_checkpointing must be one of"):
        apply_overrides(preset("7b"), {"activation_checkpointing": "some"}).resolved()
    with pytest.raises(ValueError, match="not a multiple of micro_batch_size 3 x 2 processes"):
        apply_overrides(preset("tiny"), {"micro_batch_size": "3"}).grad_accum_steps(2)


def test_resolved_config_round_trips_through_json():
    cfg = preset("13b").resolved()
    back = TrainConfig.from_dict(json.loads(cfg.to_json()))
    assert back == cfg and back.ffn_hidden == 13824 and back.max_steps == 238419
    with pytest.raises(ValueError, match="unknown config fields: bogus"):
        TrainConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_dry_run_65b_prints_resolved_config_and_parameters(capsys):
    assert run(["--config", "65b", "--dry-run", "--micro-batch-size", "4"]) == 0
    out = capsys.readouterr().out
    resolved = json.loads(out[out.index("{"):out.index("}") + 1])
    assert resolved["dim"] == 8192 and resolved["ffn_hidden"] == 22016 and resolved["micro_batch_size"] == 4
    assert "parameters: 65,285,660,672 (65.29B), counted on the meta device" in out
    assert "512 micro-steps of 4 sequence(s) on each of 1 process(es)" in out
    assert "333,787 steps" in out


def test_dry_run_of_a_config_that_takes_its_vocabulary_from_data_needs_data():
    with pytest.raises(ValueError, match="takes its vocabulary from the dataset"):
        run(["--config", "tiny", "--dry-run"])
    assert run(["--config", "tiny", "--dry-run", "vocab_size=300"]) == 0


def test_module_entry_point_runs_the_same_command():
    proc = subprocess.run([sys.executable, "-m", "train", "--config", "tiny", "--dry-run", "vocab_size=300"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert '"vocab_size": 300' in proc.stdout
