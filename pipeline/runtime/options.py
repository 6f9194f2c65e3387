"""Options declared once: a dataclass field carries its command-line form and help (`option`), and the
argparse options (`add_options`), the object built from parsed arguments (`from_namespace`) and the
settings recorded in stats.json (`summary`) are all derived from the fields."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable


def option(default: Any = dataclasses.MISSING, help: str | None = None, *, type: Callable | None = None,
           choices: tuple | None = None, negate: bool = False, required: bool = False, metavar: str | None = None,
           parse: Callable[[Any], Any] | None = None, show: Callable[[Any], Any] | None = None,
           in_summary: bool = True, cli_default: Any = dataclasses.MISSING, default_factory=dataclasses.MISSING):
    """A field with a command-line option `--<name-with-dashes>` (`--no-<name>` when `negate`, for a
    bool that defaults to True). `parse` turns the argument into the field's value (`cli_default` is then
    the argument's default); `show` turns the value into what stats.json records."""
    meta = {"cli": True, "help": help, "type": type, "choices": choices, "negate": negate, "required": required,
            "metavar": metavar, "parse": parse, "show": show, "in_summary": in_summary, "cli_default": cli_default}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _options(cls):
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli")]


def add_options(parser: argparse.ArgumentParser, cls) -> None:
    for f in _options(cls):
        m = f.metadata
        flag = "--" + f.name.replace("_", "-")
        if m["negate"]:
            parser.add_argument("--no-" + flag[2:], dest=f.name, action="store_false", help=m["help"])
            continue
        if f.type in (bool, "bool") and f.default is False:
            parser.add_argument(flag, dest=f.name, action="store_true", help=m["help"])
            continue
        kwargs = {"dest": f.name, "help": m["help"], "required": m["required"]}
        for k in ("type", "choices", "metavar"):
            if m[k] is not None:
                kwargs[k] = m[k]
        if not m["required"]:
            default = m["cli_default"] if m["cli_default"] is not dataclasses.MISSING else f.default
            kwargs["default"] = None if default is dataclasses.MISSING else default
        parser.add_argument(flag, **kwargs)


def from_namespace(cls, args: argparse.Namespace, **extra):
    values = {}
    for f in _options(cls):
        value = getattr(args, f.name)
        parse = f.metadata["parse"]
        values[f.name] = parse(value) if parse is not None and value is not None else value
    return cls(**values, **extra)


def summary(obj) -> dict[str, Any]:
    out = {}
    for f in _options(type(obj)):
        if not f.metadata["in_summary"]:
            continue
        value = getattr(obj, f.name)
        show = f.metadata["show"]
        out[f.name] = show(value) if show is not None else (list(value) if isinstance(value, tuple) else value)
    return out
