"""The transcoder's job directories, named after the process that owns them, so that a
worker starting up can remove what a killed one left behind.

Every media job works in its own temporary directory, removed when the job ends. A
worker killed mid-job (`kill -9`, the OOM killer, a node going away) leaves its
directory, source and outputs included. Several workers may share one work directory
(processes on one machine, containers sharing a volume), so a directory cannot be
judged by its age or its `kino-` prefix: it is named
`kino-job-<pid>-<start>-<random>`, where `<start>` is when that process started
(clock ticks since boot, from `/proc/<pid>/stat`). A directory is orphaned when no
process with that pid and start time runs any more: a reused pid has another start
time. Where `/proc` does not tell start times, the start is `0` and a directory is
orphaned only when its pid is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_JOB_DIR = re.compile(r"kino-job-(?P<pid>\d+)-(?P<start>\d+)-[^-]+")

#: `/proc/<pid>/stat`: fields after the command name (which may hold spaces and ")").
_STATE, _START_TIME = 0, 19


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of `/proc/<pid>/stat` after the command name; None without such a file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _has_proc() -> bool:
    return _proc_stat(os.getpid()) is not None


def process_start(pid: int) -> str | None:
    """When `pid` started, as digits that differ for a reused pid; None when no such
    process runs (or it is a zombie). Without `/proc`: "0" for any live pid."""
    if not _has_proc():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # someone else's process: alive all the same
        return "0"
    fields = _proc_stat(pid)
    if fields is None or fields[_STATE] == "Z":
        return None
    return fields[_START_TIME]


def job_dir_prefix() -> str:
    """The name prefix of this process's job directories (for `tempfile`)."""
    pid = os.getpid()
    return f"kino-job-{pid}-{process_start(pid) or 0}-"


def job_directory(work_dir: Path | None) -> tempfile.TemporaryDirectory[str]:
    """A new job directory of this process in `work_dir` (None: the system's temporary
    directory), removed with its contents when the `with` block ends."""
    return tempfile.TemporaryDirectory(prefix=job_dir_prefix(), dir=work_dir)


def remove_orphaned_job_dirs(work_dir: Path | None) -> list[Path]:
    """Remove the job directories in `work_dir` whose process is gone; return them.

    `work_dir` None means the system's temporary directory, where `tempfile` puts them
    then. Directories of live processes, and anything not named like a job directory,
    are left alone. Blocking: run it off the event loop.
    """
    base = work_dir if work_dir is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = _JOB_DIR.fullmatch(entry.name)
        if match is None or not entry.is_dir(follow_symlinks=False):
            continue
        if process_start(int(match["pid"])) == match["start"]:
            continue  # its owner still runs
        # Another worker starting at the same time may be removing it too.
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    if removed:
        log.info("removed job directories of stopped workers", count=len(removed), path=str(base))
    return removed
