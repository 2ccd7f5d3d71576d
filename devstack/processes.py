"""Child processes the devstack owns: start them in their own session, stop their group.

Each child gets its own session (`start_new_session=True`), so a Ctrl-C typed in the
terminal reaches only `python -m devstack`, which then stops the children in order,
instead of every process receiving SIGINT at once and racing the shutdown. Stopping
signals the whole process group, so helpers a child spawned go with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devstack.errors import DevstackError, StoreFailed

#: How long children get to exit after SIGTERM before SIGKILL.
DEFAULT_STOP_GRACE = 10.0


@dataclass
class ManagedProcess:
    """A child process, its log file and, when echoing, the thread copying its output."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    pump: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def has_exited(self) -> bool:
        return self.popen.poll() is not None

    def log_tail(self, lines: int = 40) -> str:
        """The end of the log, for error messages (the first place to look)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def exit_status(self) -> str:
        """How it ended, in words: "exited with code 3", "was killed by SIGKILL"."""
        code = self.popen.returncode
        if code is None:
            return "is still running"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def describe_exit(self) -> str:
        tail = self.log_tail()
        return f"{self.name} {self.exit_status()}; log {self.log_path}:\n{tail}"

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # group gone already
            os.killpg(self.popen.pid, sig)


def find_executable(name: str, *, advice: str) -> str:
    """The venv's `name` (next to this interpreter) or one on PATH.

    When there is neither, `StoreFailed` says "`name` not found: `advice`".
    """
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise StoreFailed(f"{name} not found: {advice}")
    return found


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    echo: bool = False,
    append: bool = False,
) -> ManagedProcess:
    """Start `argv` in a new session, its output going to `log_path` (and the terminal).

    With `echo`, every output line is also written to our stdout prefixed with `name`,
    which is what `make run` shows; the log file gets the lines either way. The log is
    started afresh, or with `append` continued (a restarted service keeps its history).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab" if append else "wb")
    try:
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if echo else log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        log.close()
        raise DevstackError(f"cannot start {name} ({argv[0]}): {error.strerror}") from error
    if not echo:
        log.close()  # the child holds its own descriptor
        return ManagedProcess(name, popen, log_path)
    assert popen.stdout is not None
    pump = threading.Thread(
        target=_copy_lines,
        args=(popen.stdout, log, f"{name:<11}| "),
        name=f"devstack-output-{name}",
        daemon=True,
    )
    pump.start()
    return ManagedProcess(name, popen, log_path, pump)


def _copy_lines(source: IO[bytes], log: IO[bytes], prefix: str) -> None:
    """Copy a child's output to its log and, prefixed, to our stdout, until EOF.

    A terminal that went away (`make run | head`) must not stall the child on a full
    pipe: the copying goes on, into the log only.
    """
    with source, log:
        for line in source:
            log.write(line)
            log.flush()
            text = line.decode(errors="replace").rstrip("\n")
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.write(f"{prefix}{text}\n")
                sys.stdout.flush()


@dataclass(frozen=True)
class EmbeddedServer:
    """A server the devstack started: where to reach it, and its process."""

    url: str
    process: ManagedProcess


def terminate(processes: Iterable[ManagedProcess]) -> None:
    """SIGTERM the groups still running, without waiting."""
    for proc in processes:
        if not proc.has_exited():
            proc.signal_group(signal.SIGTERM)


def stop_all(processes: Iterable[ManagedProcess], grace: float = DEFAULT_STOP_GRACE) -> None:
    """SIGTERM every group at once, wait up to `grace`, SIGKILL whatever is left.

    Signalling all first and waiting once makes shutdown take as long as the slowest
    child, not the sum of all of them. If the wait itself is interrupted, the rest are
    killed rather than left behind.
    """
    procs = list(processes)
    terminate(procs)
    deadline = time.monotonic() + grace
    try:
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            # Stragglers, helpers a child left in its group, or everyone if interrupted.
            proc.signal_group(signal.SIGKILL)
            proc.popen.wait()
            if proc.pump is not None:
                proc.pump.join(timeout=2.0)
