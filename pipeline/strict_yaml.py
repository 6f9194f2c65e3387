"""The project's YAML files (mixture manifests, jobs' config files) read strictly: YAML's safe types only,
no key written twice in one mapping (plain YAML keeps the last one silently, dropping a setting without a
word), and no anchors or aliases, refused the moment the parser reports one, before any node is built
(nested aliases expand exponentially: a kilobyte of "billion laughs" needs gigabytes once built)."""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml


class StrictYamlError(ValueError):
    pass


class _Refused(yaml.YAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            kind = "alias" if isinstance(event, yaml.AliasEvent) else "anchor"
            sign = "*" if kind == "alias" else "&"
            raise _Refused(f"line {event.start_mark.line + 1}: YAML {kind} {sign}{event.anchor[:40]}: "
                           "anchors and aliases are not allowed in this file; write each value out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base loader reports it
            if key in seen:
                raise _Refused(f"{self.duplicate_message(node, key)} (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep)

    def duplicate_message(self, node, key) -> str:
        return f"{key}: duplicate key"


def read_yaml(path: str, loader: type[StrictLoader] = StrictLoader) -> Any:
    """The document in `path`; errors as StrictYamlError naming the file and the line."""
    with open(path, encoding="utf-8") as f:
        try:
            return yaml.load(f, Loader=loader)
        except _Refused as exc:
            raise StrictYamlError(f"{path}: {exc}") from None
        except yaml.YAMLError as exc:
            raise StrictYamlError(f"{path}: not valid YAML: {exc}") from None
