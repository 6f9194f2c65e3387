"""The optional parts of smallgiant (pyproject's extras), imported only where they are used: a missing one
is a FileNotFoundError (a usage error, exit 2) that names the `pip install` line that brings it."""
from __future__ import annotations

import importlib
from types import ModuleType


def install_line(extra: str) -> str:
    return f"pip install 'smallgiant[{extra}]'"


def optional_module(name: str, extra: str, needed_for: str) -> ModuleType:
    """`import name`, or FileNotFoundError saying what needs it and which extra installs it."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name.split(".")[0]:
            raise
        raise FileNotFoundError(f"{needed_for} needs {name.split('.')[0]}: `{install_line(extra)}`") from None
