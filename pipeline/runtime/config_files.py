"""`--config-file FILE.yaml` for every job, and the resolved settings every job leaves next to its outputs.

A config file is a mapping whose keys are the job's own options, spelt as on the command line without the
dashes (`min-chars: 300`; `min_chars` works too). A switch takes true or false (`no-near-dedup: true`); a
list-valued option takes a YAML list or its comma-separated text; `extra-args` is a list of the words a
job takes beyond its options, as written on a command line: Beam pipeline options
(`["--runner=DataflowRunner", "--project=P"]`) or the trainer's config overrides. Flags on the command
line override the file. An unknown key is an error naming the closest option.

After a job succeeded, `config.yaml` in its output holds every option's resolved value in the same form,
so `smallgiant JOB ... --config-file OUTPUT/config.yaml` runs the job again exactly. Beam-free, so the
trainer's own entry point (`python -m train`) uses it too.
"""
from __future__ import annotations

import argparse
import difflib
import os
from typing import Any

import yaml

from pipeline.runtime.guard import SETTINGS_FILE as CONFIG_FILE
from pipeline.strict_yaml import read_yaml

OPTION = "--config-file"
EXTRA_KEY = "extra-args"   # words beyond the options: Beam pipeline options, the trainer's overrides
_NOT_SETTINGS = {"-h", "--help", OPTION, "--version"}


def add_config_file_option(parser: argparse.ArgumentParser) -> None:
    """`--config-file` on every command that runs a job (the parsers without subcommands)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.add_argument(OPTION, metavar="FILE.yaml",
                            help="read options from a YAML file (keys are option names; flags given here win); "
                                 f"a finished job writes {CONFIG_FILE} in this form next to its outputs")
        return
    for child in dict.fromkeys(subs[0].choices.values()):
        add_config_file_option(child)


def _command(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, int]:
    """The parser of the command `argv` names, and how many of its words name it."""
    i = 0
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        while i < len(argv) and argv[i].startswith("-") and subs:
            i += 1    # options of the command itself (-v) before its subcommand
        if not subs or i >= len(argv) or argv[i] not in subs[0].choices:
            return parser, i
        parser, i = subs[0].choices[argv[i]], i + 1


def _config_path(words: list[str]) -> tuple[str | None, list[str]]:
    """The `--config-file` value among `words`, and the words without it."""
    for i, word in enumerate(words):
        if word == OPTION:
            if i + 1 >= len(words):
                raise ValueError(f"{OPTION} needs a file")
            return words[i + 1], words[:i] + words[i + 2:]
        if word.startswith(OPTION + "="):
            return word.split("=", 1)[1], words[:i] + words[i + 1:]
    return None, words


def _actions(command: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The command's options by key (the long option without its dashes)."""
    out = {}
    for action in command._actions:
        longs = [s for s in action.option_strings if s.startswith("--") and s not in _NOT_SETTINGS]
        if longs:
            out[longs[0][2:]] = action
    return out


def _is_switch(action: argparse.Action) -> bool:
    return action.nargs == 0


def _words(path: str, data: Any, command: argparse.ArgumentParser) -> list[str]:
    """The command-line words a config file stands for."""
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file is a mapping of option names to values")
    actions = _actions(command)
    words: list[str] = []
    for raw_key, value in data.items():
        key = str(raw_key).replace("_", "-")
        if key == EXTRA_KEY:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{path}: {EXTRA_KEY} must be a list of words, e.g. [--runner=DataflowRunner]")
            words += value
            continue
        if key not in actions:
            close = difflib.get_close_matches(key, [*actions, EXTRA_KEY], n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"{path}: unknown key {raw_key!r}{hint}")
        flag = "--" + key
        if _is_switch(actions[key]):
            if not isinstance(value, bool):
                raise ValueError(f"{path}: {raw_key} is a switch: true or false, not {value!r}")
            words += [flag] if value else []
        elif value is not None:
            text = ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
            words.append(f"{flag}={text}")
    return words


def expand(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`argv` with its `--config-file` replaced by the words of the file, placed before the command's
    other words so that those win."""
    command, n = _command(parser, argv)
    path, rest = _config_path(argv[n:])
    if path is None:
        return argv
    if not os.path.isfile(path):
        raise ValueError(f"{OPTION} {path}: no such file")
    return argv[:n] + _words(path, read_yaml(path), command) + rest


def run_command(parser: argparse.ArgumentParser, argv: list[str], run) -> int:
    """Expand `--config-file`, parse, and call `run(args, leftovers)` with the resolved settings held for
    the output the command names (`--output`, or `--models` for the perplexity cutoffs)."""
    from pipeline.runtime.guard import job_settings
    argv = expand(parser, argv)
    args, leftovers = parser.parse_known_args(argv)
    output = getattr(args, "output", None) or getattr(args, "models", None)
    if not output:
        return run(args, leftovers)
    with job_settings(output, resolved(parser, argv, args, leftovers)):
        return run(args, leftovers)


def resolved(parser: argparse.ArgumentParser, argv: list[str], args: argparse.Namespace,
             extra: list[str]) -> bytes:
    """The settings a job ran with, as a config file that runs it again."""
    command, _ = _command(parser, argv)
    out: dict[str, Any] = {}
    for key, action in _actions(command).items():
        value = getattr(args, action.dest, None)
        if _is_switch(action):
            out[key] = value == action.const
        elif value is not None:
            out[key] = list(value) if isinstance(value, tuple) else value
    if extra:
        out[EXTRA_KEY] = list(extra)
    return yaml.safe_dump(out, sort_keys=True, allow_unicode=True).encode()
