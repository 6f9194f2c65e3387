"""Model files that travel with a job to its workers.

A small local model (the 0.9 MB lid.176.ftz) is carried inside the job as bytes, so it reaches Dataflow,
Flink or Spark workers without staging. A large one is named by a path on any Beam filesystem (gs://,
s3://, a shared disk) and copied to local disk once per worker.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

INLINE_LIMIT = 32 << 20


class ModelFile:
    def __init__(self, path: str):
        self.path = path
        self.data: bytes | None = None
        if os.path.isfile(path) and os.path.getsize(path) <= INLINE_LIMIT:
            with open(path, "rb") as f:
                self.data = f.read()

    def local_path(self) -> str:
        """A path on this machine's disk holding the model (written once per process)."""
        if self.data is None and os.path.isfile(self.path):
            return self.path
        digest = hashlib.sha1(f"{self.path}|{self._version()}".encode()).hexdigest()[:16]
        target = os.path.join(tempfile.gettempdir(), f"smallgiant-model-{digest}-{os.path.basename(self.path)}")
        if not os.path.exists(target):
            tmp = f"{target}.{os.getpid()}.part"
            if self.data is not None:
                with open(tmp, "wb") as f:
                    f.write(self.data)
            else:
                from apache_beam.io.filesystems import FileSystems
                with FileSystems.open(self.path, compression_type="uncompressed") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, target)
        return target

    def _version(self) -> str:
        """What changes when the model file is replaced: its bytes if carried, else size and mtime."""
        if self.data is not None:
            return hashlib.sha1(self.data).hexdigest()
        from apache_beam.io.filesystems import FileSystems
        meta = FileSystems.match([self.path])[0].metadata_list[0]
        return f"{meta.size_in_bytes}:{meta.last_updated_in_seconds}"
