"""What a job may do to its output directory, on local disk or any Beam filesystem.

Every job that writes a directory claims it first (`claim_output`), and the claim enforces four rules:

- The output never overlaps an input: an output that equals, contains or lies inside any input (after
  globs, listings and symbolic links are resolved) is refused before anything is read.
- One job per output at a time: a lease file `.smallgiant-lease.json` is created only if absent (a hard
  link of a complete file on local disk, a generation precondition on GCS) and names the job, host, pid
  and start time. A second job fails at once naming the holder. A lease whose process is gone (same host)
  or that is older than `max_lease_age` hours is taken over, with a message.
- The job removes only what it wrote: `.smallgiant-output.json` lists every file a run of this job
  published there. A later run deletes only listed files; a file it did not write inside one of the
  job's own names (e.g. a user's file in `docs/`), or a non-empty directory that is no output of this job,
  is refused unless `overwrite` is given, and even then only the job's own names are replaced.
- Outputs appear whole: files are staged under `_staging/` inside the output and moved into place when
  the job succeeded; single files are written under a temporary name and renamed.
- A resumable job (the curation engine) keeps what a later run may reuse under `_work/`. It survives a
  failed or killed run when it holds a completed part (a file named `*.done`), is removed when the job
  succeeds, and is cleared first when the job is asked to start afresh.
- The output named on the command line also receives `config.yaml`, the job's resolved settings, when the
  job succeeded (`job_settings`, set by the command line; `smallgiant.config_files`).

Filesystems other than local disk and GCS have no create-if-absent operation in Beam; there the lease is
written after an existence check and read back, which narrows but does not close the race.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
import fnmatch
import json
import logging
import os
import shutil
import socket
import time
import uuid
from typing import Iterable

from pipeline.inputs import join

MARKER = ".smallgiant-output.json"
LEASE = ".smallgiant-lease.json"
STAGING = "_staging"
WORK = "_work"
SETTINGS_FILE = "config.yaml"
DEFAULT_MAX_LEASE_AGE_HOURS = 72.0
log = logging.getLogger(__name__)


class OutputError(ValueError):
    """The output cannot be used as asked: it overlaps an input, holds files this job did not write, or
    another job holds it."""


def _remote(path: str) -> bool:
    return "://" in path


# --- file operations on local disk or a Beam filesystem -------------------------------------------

def exists(path: str) -> bool:
    if _remote(path):
        from apache_beam.io.filesystems import FileSystems
        return FileSystems.exists(path)
    return os.path.lexists(path)


def files_under(directory: str) -> list[str]:
    """Every file below `directory`, recursively, sorted (relative paths)."""
    if _remote(directory):
        from apache_beam.io.filesystems import FileSystems
        prefix = directory.rstrip("/") + "/"
        try:
            found = [m.path for r in FileSystems.match([prefix + "**"]) for m in r.metadata_list]
        except Exception:  # Beam raises when nothing matches
            return []
        return sorted(p[len(prefix):] for p in found if p.startswith(prefix))
    out = []
    for d, dirs, names in os.walk(directory):
        dirs.sort()
        rel = os.path.relpath(d, directory)
        out += [n if rel == "." else os.path.join(rel, n).replace(os.sep, "/") for n in names]
    return sorted(out)


def read_bytes(path: str) -> bytes:
    if _remote(path):
        from apache_beam.io.filesystems import FileSystems
        with FileSystems.open(path, compression_type="uncompressed") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def write_atomically(path: str, data: bytes) -> None:
    """`data` appears at `path` whole: written under a temporary name, then renamed over the old file."""
    if not _remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    from apache_beam.io.filesystems import FileSystems
    tmp = path + ".tmp"
    with FileSystems.create(tmp) as f:
        f.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def delete_files(paths: list[str]) -> None:
    """Remove these files (never a directory: a job lists the files it wrote, one by one)."""
    if not paths:
        return
    if _remote(paths[0]):
        from apache_beam.io.filesystems import FileSystems
        present = [p for p in paths if FileSystems.exists(p)]   # a listed file may never have been written
        if present:
            FileSystems.delete(present)
        return
    for p in paths:
        if os.path.lexists(p) and (os.path.islink(p) or not os.path.isdir(p)):
            os.remove(p)


def move_files(sources: list[str], targets: list[str]) -> None:
    if not sources:
        return
    if _remote(sources[0]):
        from apache_beam.io.filesystems import FileSystems
        FileSystems.rename(sources, targets)
        return
    for s, t in zip(sources, targets):
        os.makedirs(os.path.dirname(t), exist_ok=True)
        os.replace(s, t)


def _create_exclusive(path: str, data: bytes) -> bool:
    """Create `path` holding `data` only if nothing is there; False if something is."""
    if not _remote(path):
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)   # atomic, and the file is complete the moment it has its name
            return True
        except FileExistsError:
            return False
        finally:
            os.remove(tmp)
    if path.startswith("gs://"):
        return _gcs_create_exclusive(path, data)
    if exists(path):
        return False
    write_atomically(path, data)
    return read_bytes(path) == data


def _gcs_create_exclusive(path: str, data: bytes) -> bool:
    from google.api_core.exceptions import PreconditionFailed
    from google.cloud import storage
    bucket, _, name = path[len("gs://"):].partition("/")
    try:
        storage.Client().bucket(bucket).blob(name).upload_from_string(data, if_generation_match=0)
        return True
    except PreconditionFailed:
        return False


# --- inputs and outputs must not overlap ----------------------------------------------------------

def _canonical(path: str) -> str:
    if _remote(path):
        return path.rstrip("/")
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def _canonical_pattern(pattern: str) -> str:
    """A glob as `_canonical` would resolve the paths it matches (links resolved in its fixed part)."""
    if _remote(pattern):
        return pattern.rstrip("/")
    head, tail = os.path.split(os.path.abspath(os.path.expanduser(pattern)))
    return os.path.join(_canonical(head), tail) if not any(c in head for c in "*?[") else os.path.join(head, tail)


def _inside(child: str, parent: str) -> bool:
    sep = "/" if _remote(parent) else os.sep
    return child.startswith(parent.rstrip(sep) + sep)


def check_no_overlap(output: str, inputs: Iterable[str], what: str = "--output") -> None:
    """Refuse an output that equals, contains or lies inside any of `inputs` (files or directories)."""
    out = _canonical(output)
    for item in inputs:
        if not item or _remote(item) != _remote(output):
            continue
        if any(c in item for c in "*?["):
            if fnmatch.fnmatchcase(out, _canonical_pattern(item)):
                raise OutputError(f"{what} {output} matches the input {item}: the next run would read this "
                                  "run's output; choose an output the input does not name")
            continue
        inp = _canonical(item)
        if out == inp:
            relation = "is"
        elif _inside(inp, out):
            relation = "contains"
        elif _inside(out, inp):
            relation = "lies inside"
        else:
            continue
        raise OutputError(f"{what} {output} {relation} the input {item}: a job never writes where it reads; "
                          "choose an output outside every input")


# --- the lease ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Lease:
    path: str
    token: str


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale_reason(held: dict, max_age_hours: float) -> str | None:
    age = time.time() - float(held.get("started_unix", 0))
    if held.get("host") == socket.gethostname() and not _pid_alive(int(held.get("pid", -1))):
        return f"its process {held.get('pid')} on this host is gone"
    if age > max_age_hours * 3600:
        return f"it is {age / 3600:.1f} hours old (over --max-lease-age {max_age_hours:g})"
    return None


def acquire_lease(output: str, job: str, max_age_hours: float = DEFAULT_MAX_LEASE_AGE_HOURS) -> Lease:
    path = join(output, LEASE)
    token = uuid.uuid4().hex
    now = time.time()
    record = {"job": job, "host": socket.gethostname(), "pid": os.getpid(), "token": token,
              "started": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(timespec="seconds"),
              "started_unix": now}
    data = json.dumps(record, indent=1).encode()
    for _ in range(2):
        if _create_exclusive(path, data):
            return Lease(path, token)
        try:
            held = json.loads(read_bytes(path))
        except FileNotFoundError:
            continue   # released between our attempt and the read
        except ValueError:
            held = {}
        reason = _stale_reason(held, max_age_hours) if held else "it is unreadable"
        if reason is None:
            raise OutputError(
                f"{output} is in use by `{held.get('job')}` (host {held.get('host')}, pid {held.get('pid')}, "
                f"since {held.get('started')}); one job per output at a time. If that job is gone, remove "
                f"{path} or wait until the lease is older than --max-lease-age")
        log.warning("taking over the lease on %s from `%s` (host %s, pid %s, since %s): %s", output,
                    held.get("job"), held.get("host"), held.get("pid"), held.get("started"), reason)
        delete_files([path])
    raise OutputError(f"{output}: another job took the lease while this one was taking over a stale one")


def release_lease(lease: Lease) -> None:
    try:
        held = json.loads(read_bytes(lease.path))
    except (OSError, ValueError):
        return
    if held.get("token") == lease.token:
        delete_files([lease.path])


# --- the settings a command line ran with ---------------------------------------------------------

_SETTINGS: contextvars.ContextVar[tuple[str, bytes] | None] = contextvars.ContextVar("settings", default=None)


@contextlib.contextmanager
def job_settings(output: str, data: bytes):
    """While the block runs, the claim of `output` writes `data` as its config.yaml when it succeeds."""
    token = _SETTINGS.set((_canonical(output), data))
    try:
        yield
    finally:
        _SETTINGS.reset(token)


def settings_for(output: str) -> bytes | None:
    held = _SETTINGS.get()
    return held[1] if held is not None and held[0] == _canonical(output) else None


# --- the claim ------------------------------------------------------------------------------------

def _names_a_file_inside(rel) -> bool:
    """A marker entry names a file below the output: relative, without `..`, not the marker or lease."""
    parts = rel.split("/") if isinstance(rel, str) else []
    return bool(parts) and not rel.startswith("/") and "\\" not in rel and ":" not in parts[0] \
        and all(p not in ("", ".", "..") for p in parts) and rel not in (MARKER, LEASE)


def _top(rel: str) -> str:
    return rel.split("/", 1)[0]


class OutputClaim:
    """An output directory held by one job: see the module docstring. Use as a context manager;
    `stage(name)` is where a directory is built, `publish(names)` moves staged directories into place,
    `write(name, data)` writes one file."""

    def __init__(self, output: str, job: str, owned: Iterable[str], overwrite: bool = False,
                 max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS, resumable: bool = False, fresh: bool = False):
        self.output = output.rstrip("/") if _remote(output) else output
        self.job, self.overwrite, self.max_lease_age = job, overwrite, max_lease_age
        self.resumable, self.fresh = resumable, fresh
        self.settings = settings_for(output)
        self.owned = set(owned) | {STAGING} | ({SETTINGS_FILE} if self.settings is not None else set()) \
            | ({WORK} if resumable else set())
        self.files: set[str] = set()
        self.lease: Lease | None = None

    def __enter__(self) -> "OutputClaim":
        self.created = not _remote(self.output) and not os.path.exists(self.output)
        self.marked = exists(join(self.output, MARKER))
        if not _remote(self.output):
            if os.path.exists(self.output) and not os.path.isdir(self.output):
                raise OutputError(f"--output {self.output} is a file, not a directory")
            os.makedirs(self.output, exist_ok=True)
        self.lease = acquire_lease(self.output, self.job, self.max_lease_age)
        try:
            self._check_ownership()
            self._save_marker()
            self.clear_staging()
            if self.resumable and self.fresh:
                self.clear_work()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        failed = exc[0] is not None
        if self.resumable:
            if failed and any(f.endswith(".done") for f in files_under(self.work())):
                log.info("%s: kept %s/ for a resumed run (the same command again; --fresh starts over)",
                         self.output, WORK)
            else:
                self.clear_work()
        failed_first_run = failed and not self.marked and not self.files \
            and not (self.resumable and exists(self.work()))
        if exc[0] is None and self.settings is not None:
            self.write(SETTINGS_FILE, self.settings)
        try:
            self.clear_staging()
            if failed_first_run:
                delete_files([self.path(MARKER)])   # a failed first run leaves no output behind
        finally:
            self._release()
        if failed_first_run and self.created:
            try:
                os.rmdir(self.output)
            except OSError:
                pass

    def _release(self) -> None:
        if self.lease is not None:
            release_lease(self.lease)
            self.lease = None

    def _marker(self) -> dict | None:
        path = join(self.output, MARKER)
        if not exists(path):
            return None
        try:
            marker = json.loads(read_bytes(path))
            if not isinstance(marker.get("files"), list):
                raise ValueError("no file list")
            outside = [f for f in marker["files"] if not _names_a_file_inside(f)]
            if outside:
                raise ValueError(f"it lists {outside[0]!r}, which is no file inside the output")
            return marker
        except ValueError as exc:
            raise OutputError(f"{path} is not a smallgiant output marker ({exc}); remove it or choose "
                              "another --output") from None

    def _check_ownership(self) -> None:
        present = [f for f in files_under(self.output) if f not in (MARKER, LEASE)]
        marker = self._marker()
        listed = set(marker["files"]) if marker else set()
        if marker and marker.get("job") != self.job:
            problem = f"it is the output of `{marker.get('job')}`, not of `{self.job}`"
        elif not marker and present:
            problem = f"it holds {len(present)} files that no smallgiant job wrote (e.g. {present[0]})"
        else:
            foreign = [f for f in present if self._owns(_top(f)) and _top(f) not in (STAGING, WORK)
                       and f not in listed]
            problem = (f"{len(foreign)} files in it were not written by `{self.job}` "
                       f"(e.g. {foreign[0]})") if foreign else None
        if problem and not self.overwrite:
            raise OutputError(f"--output {self.output}: {problem}. Choose another --output, or pass "
                              f"--overwrite to replace this job's own parts ({', '.join(sorted(self.owned - {STAGING}))}) "
                              "and leave everything else")
        if problem:
            log.warning("--overwrite: %s: %s; replacing %s", self.output, problem, ", ".join(sorted(self.owned)))
            self.files = {f for f in present if self._owns(_top(f))}   # ours to replace from now on
            if marker and marker.get("job") == self.job:
                self.files |= listed
        else:
            self.files = listed

    def _save_marker(self) -> None:
        marker = {"format": "smallgiant-output", "version": 1, "job": self.job, "files": sorted(self.files)}
        write_atomically(join(self.output, MARKER), json.dumps(marker, indent=1).encode())

    def path(self, *parts: str) -> str:
        return join(self.output, *parts)

    def stage(self, *parts: str) -> str:
        return join(self.output, STAGING, *parts)

    def work(self, *parts: str) -> str:
        """The resumable job's work area (see the module docstring)."""
        return join(self.output, WORK, *parts)

    def clear_staging(self) -> None:
        _remove_tree(join(self.output, STAGING))

    def clear_work(self) -> None:
        _remove_tree(self.work())

    def _owns(self, top: str) -> bool:
        return any(fnmatch.fnmatchcase(top, pattern) for pattern in self.owned)

    def _check_name(self, name: str) -> None:
        if not self._owns(_top(name)):
            raise ValueError(f"`{self.job}` does not own {name!r} in its output (it owns {sorted(self.owned)})")

    def publish(self, names: Iterable[str]) -> None:
        """Replace each owned name (a directory, a file, or a pattern such as `shard-*`) with what was staged
        under it: first the files this job wrote there before go, then the staged ones move in."""
        staged_all = files_under(self.stage())
        for name in names:
            self._check_name(name)
            old = sorted(f for f in self.files if fnmatch.fnmatchcase(_top(f), name))
            staged = [f for f in staged_all if fnmatch.fnmatchcase(_top(f), name)]
            delete_files([self.path(f) for f in old])
            self.files -= set(old)
            self._save_marker()
            move_files([self.stage(f) for f in staged], [self.path(f) for f in staged])
            self.files |= set(staged)
            if not staged and not _remote(self.output) and not any(c in name for c in "*?["):
                os.makedirs(self.path(name), exist_ok=True)   # an empty result is still a directory
            self._save_marker()

    def write(self, name: str, data: bytes) -> str:
        """Write one file of the output atomically and record it."""
        self._check_name(name)
        path = self.path(name)
        self.files.add(name)
        self._save_marker()
        write_atomically(path, data)
        return path

    def remove(self, name: str) -> None:
        """Remove a file this job wrote earlier (never one it did not)."""
        if name in self.files:
            delete_files([self.path(name)])
            self.files.discard(name)
            self._save_marker()

    def adopt_written(self) -> None:
        """Record every file now under the job's own names: for a job that writes in place (the demo's
        stages), after it ran. Nothing foreign was there when the claim was made."""
        self.files |= {f for f in files_under(self.output) if self._owns(_top(f)) and f not in (MARKER, LEASE)
                       and _top(f) not in (STAGING, WORK)}
        self._save_marker()

    def record(self, name: str) -> None:
        """Note a file the job wrote in place by other means (a library writing to a path)."""
        self._check_name(name)
        self.files.add(name)
        self._save_marker()


def _remove_tree(directory: str) -> None:
    if _remote(directory):
        delete_files([join(directory, f) for f in files_under(directory)])
    else:
        shutil.rmtree(directory, ignore_errors=True)


def claim_output(output: str, job: str, owned: Iterable[str], inputs: Iterable[str] = (),
                 overwrite: bool = False, max_lease_age: float = DEFAULT_MAX_LEASE_AGE_HOURS,
                 resumable: bool = False, fresh: bool = False) -> OutputClaim:
    """Check that `output` overlaps none of `inputs` (before anything is read), then return the claim to
    enter: `with claim_output(...) as out: ...`. A `resumable` claim keeps `work()` across failed runs
    unless `fresh`."""
    check_no_overlap(output, inputs)
    if max_lease_age < 0:
        raise OutputError("--max-lease-age must be >= 0 hours")
    return OutputClaim(output, job, owned, overwrite, max_lease_age, resumable, fresh)


def add_output_arguments(parser) -> None:
    """The options every job that writes a directory shares."""
    parser.add_argument("--overwrite", action="store_true",
                        help="use an output that holds files this job did not write: only the job's own "
                             "parts (e.g. docs/, stats.json) are replaced, everything else is left alone")
    from pipeline.argtypes import non_negative_float
    parser.add_argument("--max-lease-age", type=non_negative_float, default=DEFAULT_MAX_LEASE_AGE_HOURS, metavar="HOURS",
                        help="take over another job's lease on the output once it is this old (default: "
                             "%(default)s); a lease whose process is gone on this host is always taken over")
