"""Reading DCP checkpoints without unpickling anything that is not checkpoint bookkeeping.

DCP stores tensors as raw bytes, but two things in a checkpoint are pickles that the stock reader and
planner load with no restriction, so a crafted checkpoint could run code: the `.metadata` file, and
the non-tensor values (the optimizer's hyper-parameters) saved with torch.save. Here the metadata is
unpickled with an allow-list (DCP's own metadata classes, torch.Size, dtypes, layouts and memory
formats, paths, plain containers) and the values with torch.load(weights_only=True). The metadata's
storage entries must name files inside the checkpoint directory, so a crafted one cannot read another
file into a tensor.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any

import torch
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

ALLOWED = {("torch", "Size"), ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"),
           ("pathlib", "PurePosixPath"), ("collections", "OrderedDict"), ("builtins", "set"),
           ("builtins", "frozenset"), ("builtins", "slice")}
DCP_MODULES = ("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem",
               "torch.distributed.checkpoint.planner")


class MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module in DCP_MODULES:
            found = super().find_class(module, name)
            # classes (dataclasses, enums) defined there, never functions, nor what the module imports
            # from elsewhere (torch.Tensor, enum.Enum, pathlib.Path, ...)
            if isinstance(found, type) and found.__module__ == module:
                return found
        if module == "torch" and isinstance(getattr(torch, name, None), (torch.dtype, torch.layout, torch.memory_format)):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"checkpoint metadata refers to {module}.{name}, which is not checkpoint "
                                     "bookkeeping: refusing to load it")


class SafeFileSystemReader(FileSystemReader):
    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as f:
            metadata = MetadataUnpickler(f).load()
        if not isinstance(metadata, Metadata):
            raise pickle.UnpicklingError(f"{path} does not hold DCP metadata")
        for info in (metadata.storage_data or {}).values():
            name = str(getattr(info, "relative_path", ""))
            if os.path.basename(name) != name or name in ("", ".", ".."):
                raise pickle.UnpicklingError(f"{path} points outside its checkpoint ({name!r}): refusing to load it")
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        obj = torch.load(value, weights_only=True)
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj


def safe_load(state: dict[str, Any], path: str, no_dist: bool) -> None:
    """dcp.load with the safe reader and planner."""
    import torch.distributed.checkpoint as dcp
    dcp.load(state, storage_reader=SafeFileSystemReader(path), planner=SafeLoadPlanner(), no_dist=no_dist)
