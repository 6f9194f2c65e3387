"""Data-mixture manifests: which sources make up the training mixture, in what shares, for how many
epochs, and where each source's curated documents live (LLaMA-1's Table 1 as data).

A manifest is a YAML file (`data_manifests/`), validated completely on load: every error names the file
and the key, e.g. `llama1.yaml: sources.github.share: must be >= 0`. Relative paths resolve against a data
root (by default the manifest's own directory) and must stay under it (`../` that leaves the root is an
error); absolute paths and URLs (gs://, s3://) are used as they are. YAML anchors and aliases (`&a`, `*a`)
are refused as soon as they are parsed: a manifest has no use for them, and nested aliases expand
exponentially (a kilobyte of "billion laughs" needs gigabytes once built). Pure Python: nothing here
imports Beam until a glob on a remote filesystem is expanded.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import yaml

from pipeline import strict_yaml
from pipeline.inputs import InputError, expand_inputs, join
from pipeline.strict_yaml import StrictLoader

DEFAULT_SHARD_TOKENS = 2 ** 27
SHARE_TOLERANCE = 1e-6

_TOP_KEYS = {"name", "description", "total_tokens", "seed", "shard_tokens", "sources"}
_TOP_REQUIRED = ("name", "sources")
_SOURCE_KEYS = {"share", "epochs", "disk", "paths", "languages", "description"}
_SOURCE_REQUIRED = ("share", "epochs", "paths")


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class SourceSpec:
    name: str
    share: float
    epochs: float
    paths: tuple[str, ...]
    disk: str | None
    languages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    name: str
    path: str
    root: str
    total_tokens: int | None
    seed: int
    shard_tokens: int
    sources: tuple[SourceSpec, ...]

    def source(self, name: str) -> SourceSpec:
        for spec in self.sources:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.sources)
        raise ManifestError(f"{self.path}: sources.{name}: no such source (the manifest has {known})")

    def resolve(self, path: str) -> str:
        """A source path as the readers see it: absolute paths and URLs as written, others under root."""
        if "://" in path or os.path.isabs(path):
            return path
        return join(self.root, path)

    def files(self, name: str) -> list[str]:
        """Every file of a source, in a stable order without repeats; each of its paths must match."""
        found: dict[str, None] = {}
        for pattern in self.source(name).paths:
            path = self.resolve(pattern)
            try:
                matches = expand_inputs([path])
            except InputError as exc:
                raise ManifestError(f"{self.path}: sources.{name}.paths: {exc}") from None
            missing = [m for m in matches if not _exists(m)]
            if missing:
                raise ManifestError(f"{self.path}: sources.{name}.paths: no file {missing[0]!r}")
            found.update(dict.fromkeys(matches))
        return list(found)


def _exists(path: str) -> bool:
    if "://" in path:
        from apache_beam.io.filesystems import FileSystems
        return FileSystems.exists(path)
    return os.path.isfile(path)


def load_manifest(path: str, root: str | None = None, check_paths: bool = False) -> Manifest:
    """Read and validate a manifest; `root` (default: the manifest's directory) anchors relative paths.
    With `check_paths`, every path of every source must match at least one file."""
    if not os.path.isfile(path):
        raise ManifestError(f"{path}: no such manifest file")
    data = read_yaml(path)
    check = _Checker(path)
    if not isinstance(data, dict):
        check.fail("", f"must be a mapping of keys to values, not {_kind(data)}")
    check.keys("", data, _TOP_KEYS, _TOP_REQUIRED)
    name = check.string("name", data["name"])
    if "description" in data:
        check.string("description", data["description"])
    total = data.get("total_tokens")
    manifest = Manifest(
        name=name, path=path,
        root=root if root is not None else os.path.dirname(os.path.abspath(path)),
        total_tokens=None if total is None else check.count("total_tokens", total),
        seed=check.integer("seed", data.get("seed", 0), minimum=0),
        shard_tokens=check.integer("shard_tokens", data.get("shard_tokens", DEFAULT_SHARD_TOKENS), minimum=1),
        sources=_sources(check, data["sources"]))
    if check_paths:
        for spec in manifest.sources:
            manifest.files(spec.name)
    return manifest


class _ManifestLoader(StrictLoader):
    """A key twice under `sources` is a duplicate source name."""

    def construct_mapping(self, node, deep=False):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == "sources":
                self.__dict__.setdefault("_sources_nodes", set()).add(id(value_node))
        return super().construct_mapping(node, deep)

    def duplicate_message(self, node, key) -> str:
        if id(node) in self.__dict__.get("_sources_nodes", set()):
            return f"sources.{key}: duplicate source name"
        return super().duplicate_message(node, key)


def read_yaml(path: str) -> Any:
    try:
        return strict_yaml.read_yaml(path, _ManifestLoader)
    except strict_yaml.StrictYamlError as exc:
        raise ManifestError(str(exc)) from None


def _sources(check: "_Checker", raw: Any) -> tuple[SourceSpec, ...]:
    if not isinstance(raw, dict) or not raw:
        check.fail("sources", f"must be a non-empty mapping of source names to settings, not {_kind(raw)}")
    specs = [_source(check, name, settings) for name, settings in raw.items()]
    total = math.fsum(s.share for s in specs)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        shares = ", ".join(f"{s.name} {s.share:g}" for s in specs)
        check.fail("sources", f"shares must sum to 1, they sum to {total:.6g} ({shares})")
    return tuple(specs)


def _source(check: "_Checker", name: Any, raw: Any) -> SourceSpec:
    if not isinstance(name, str) or not name:
        check.fail("sources", f"source names must be non-empty strings, not {name!r}")
    key = f"sources.{name}"
    if not isinstance(raw, dict):
        check.fail(key, f"must be a mapping (share, epochs, paths, ...), not {_kind(raw)}")
    check.keys(key, raw, _SOURCE_KEYS, _SOURCE_REQUIRED)
    share = check.number(f"{key}.share", raw["share"], minimum=0.0)
    if share > 1:
        check.fail(f"{key}.share", f"must be <= 1, not {share:g}")
    epochs = check.number(f"{key}.epochs", raw["epochs"], minimum=0.0)
    if epochs == 0:
        check.fail(f"{key}.epochs", "must be > 0")
    paths = check.strings(f"{key}.paths", raw["paths"])
    if not paths:
        check.fail(f"{key}.paths", "must name at least one path or glob")
    for i, path in enumerate(paths):
        if _leaves_root(path):
            check.fail(f"{key}.paths[{i}]", f"{path!r} leaves the data root (relative paths resolve under it; "
                       "name a directory elsewhere by its absolute path or URL)")
    disk = raw.get("disk")
    if disk is not None:
        disk = check.string(f"{key}.disk", disk)
    languages = check.strings(f"{key}.languages", raw.get("languages", []))
    if "description" in raw:
        check.string(f"{key}.description", raw["description"])
    return SourceSpec(name=name, share=share, epochs=epochs, paths=paths, disk=disk, languages=languages)


def _leaves_root(path: str) -> bool:
    """A relative path whose `..` components climb above the directory it is resolved against."""
    if "://" in path or os.path.isabs(path):
        return False
    return os.path.normpath(path).split(os.sep)[0] == ".."


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"


class _Checker:
    """Type and range checks whose errors name the manifest file and the key."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, message: str):
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        raise ManifestError(where + message)

    def keys(self, key: str, data: dict, allowed: set[str], required: tuple[str, ...]) -> None:
        prefix = f"{key}." if key else ""
        for k in data:
            if k not in allowed:
                self.fail(f"{prefix}{k}", f"unknown key (known: {', '.join(sorted(allowed))})")
        for k in required:
            if k not in data:
                self.fail(f"{prefix}{k}", "missing (required)")

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, not {value!r}")
        return value

    def strings(self, key: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.fail(key, f"must be a list of strings, not {_kind(value)}")
        return tuple(self.string(f"{key}[{i}]", v) for i, v in enumerate(value))

    def number(self, key: str, value: Any, minimum: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"must be a number, not {value!r}")
        if value < minimum:
            self.fail(key, f"must be >= {minimum:g}, not {value:g}")
        return float(value)

    def integer(self, key: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer, not {value!r}")
        if value < minimum:
            self.fail(key, f"must be >= {minimum}, not {value}")
        return value

    def count(self, key: str, value: Any) -> int:
        """A positive whole number, written as an integer or in scientific notation (1.4e12)."""
        if isinstance(value, str):  # YAML 1.1 reads 1.4e12 (no sign in the exponent) as a string
            try:
                value = float(value)
            except ValueError:
                self.fail(key, f"must be a number, not {value!r}")
        number = self.number(key, value, minimum=0.0)
        if number <= 0 or number != int(number):
            self.fail(key, f"must be a positive whole number, not {value!r}")
        return int(number)
