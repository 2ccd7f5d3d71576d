"""A transcoder killed mid-job leaves its job directory behind; the next worker to start
removes it, and leaves alone what live workers (sharing the work directory) still use."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import aio_pika
import pytest

from devstack.errors import ServiceFailed
from devstack.ports import free_port
from devstack.probes import http_ok, wait_until
from devstack.processes import spawn, stop_all
from devstack.services import REPO_ROOT
from devstack.stores import StoreEndpoints
from services.transcoder.app import media_settings
from services.transcoder.service import MediaJobs
from services.transcoder.settings import TranscoderSettings
from services.transcoder.work_dirs import (
    job_dir_prefix,
    job_directory,
    process_start,
    remove_orphaned_job_dirs,
)
from shared.events import TrimFailed, TrimRequested
from shared.storage import ObjectMissing, Storage

#: A worker in the middle of a job: its job directory made the way the transcoder makes
#: it, with a file in it, printed, then waiting to be killed.
BUSY_WORKER = """
import sys, time
from pathlib import Path
from services.transcoder.work_dirs import job_directory
with job_directory(Path(sys.argv[1]) if sys.argv[1] else None) as job:
    (Path(job) / "source").write_bytes(bytes(4096))
    print(job, flush=True)
    time.sleep(300)
"""


@contextmanager
def busy_worker(work_dir: Path | None) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A process holding a job directory in `work_dir`; killed when the block ends."""
    worker = subprocess.Popen(
        [sys.executable, "-c", BUSY_WORKER, str(work_dir or "")],
        cwd=REPO_ROOT,
        env={**os.environ, "TMPDIR": tempfile.gettempdir()},  # what the test set, if anything
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        yield worker, Path(worker.stdout.readline().strip())
    finally:
        worker.kill()
        worker.wait()


def killed_worker_dir(work_dir: Path | None) -> Path:
    """The job directory of a worker killed with SIGKILL mid-job (its pid now free)."""
    with busy_worker(work_dir) as (worker, job):
        worker.kill()
        worker.wait()
    assert job.is_dir(), "SIGKILL leaves the job directory behind"
    assert process_start(worker.pid) is None
    return job


def test_only_directories_of_stopped_workers_are_removed(tmp_path: Path) -> None:
    dead = killed_worker_dir(tmp_path)
    reused_pid = tmp_path / f"kino-job-{os.getpid()}-1-abcd1234"  # our pid, another start
    reused_pid.mkdir()
    unrelated = [tmp_path / "kino-abcd1234", tmp_path / "kino-job-notes"]
    for path in unrelated:
        path.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "kino-job-1-1-link").symlink_to(elsewhere)

    with busy_worker(tmp_path) as (_, live), job_directory(tmp_path) as ours:
        removed = remove_orphaned_job_dirs(tmp_path)

        assert sorted(removed) == sorted([dead, reused_pid])
        assert not dead.exists()
        assert not reused_pid.exists()
        assert (live / "source").is_file(), "a live worker's job is untouched"
        assert Path(ours).is_dir()
        assert all(path.is_dir() for path in unrelated)
        assert (tmp_path / "kino-job-1-1-link").is_symlink()
        assert elsewhere.is_dir()


def test_no_work_dir_means_the_system_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = killed_worker_dir(None)

    assert dead.parent == tmp_path
    assert remove_orphaned_job_dirs(None) == [dead]
    assert remove_orphaned_job_dirs(tmp_path / "missing") == []


class MissingObjects:
    """Storage where every download finds nothing, noting where it was to be saved."""

    def __init__(self) -> None:
        self.destinations: list[Path] = []

    async def download(self, key: str, destination: Path) -> None:
        self.destinations.append(destination)
        raise ObjectMissing(key)


async def test_jobs_work_in_directories_named_after_their_worker(tmp_path: Path) -> None:
    storage = MissingObjects()
    settings = media_settings(TranscoderSettings(work_dir=tmp_path))
    with ThreadPoolExecutor(max_workers=1) as executor:
        jobs = MediaJobs(cast(Storage, storage), executor, settings)
        result = await jobs.trim(
            TrimRequested(
                trim_id="a" * 24,
                video_id="b" * 24,
                user_id="u",
                source_key="sources/none",
                start_seconds=0,
                duration_seconds=1,
            )
        )

    assert isinstance(result, TrimFailed)
    (destination,) = storage.destinations
    assert destination.parent.parent == tmp_path
    assert destination.parent.name.startswith(job_dir_prefix())
    assert not destination.parent.exists()


async def test_a_starting_transcoder_removes_what_a_killed_one_left(
    service_env: dict[str, str],
    stores: StoreEndpoints,
    amqp_cleanup: list[str],
    tmp_path: Path,
) -> None:
    work_dir = tmp_path / "work"
    work_dir.mkdir()
    dead = killed_worker_dir(work_dir)
    prefix = f"workdirs-{uuid.uuid4().hex[:8]}"
    for name in ("jobs",):
        amqp_cleanup.extend(f"{prefix}.transcoder.{name}{s}" for s in ("", ".retry", ".dlq"))
    port = free_port()

    with busy_worker(work_dir) as (_, live):
        transcoder = spawn(
            "transcoder",
            [sys.executable, "-m", "services.transcoder"],
            log_path=tmp_path / "transcoder.log",
            env={
                **os.environ,
                **service_env,
                "KINO_HTTP_HOST": "127.0.0.1",
                "KINO_HTTP_PORT": str(port),
                "KINO_AMQP_EXCHANGE": f"kino.{prefix}",
                "KINO_AMQP_QUEUE_PREFIX": prefix,
                "KINO_WORK_DIR": str(work_dir),
            },
            cwd=REPO_ROOT,
        )
        try:
            await asyncio.to_thread(
                wait_until,
                lambda: http_ok(f"http://127.0.0.1:{port}/ready"),
                what="the transcoder",
                timeout=60,
                error=ServiceFailed,
                process=transcoder,
            )
            assert not dead.exists()
            assert (live / "source").is_file()
        finally:
            stop_all([transcoder], grace=5)

    connection = await aio_pika.connect(stores.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(f"kino.{prefix}")
