"""The `kino` commands: read the options, call the client or a flow, print the result.

Results (ids, tables, URLs) go to stdout; progress bars and notes to stderr. Any
failure is one line on stderr and exit status 1 (`main`), never a traceback;
`KINO_DEBUG=1` shows the traceback of an unexpected error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli import hosting, progress, trimming
from cli.client import KinoClient
from cli.config import Session, SessionStore
from cli.errors import NOT_SIGNED_IN, KinoError
from cli.files import file_size, write_whole

DEFAULT_URL = "http://127.0.0.1:8080"

app = typer.Typer(
    name="kino",
    help="Kino from the command line: upload, list, watch and trim videos.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console(highlight=False)


@dataclass(frozen=True)
class Settings:
    """What every command needs: the gateway and where its session is kept."""

    url: str
    sessions: SessionStore

    def session(self) -> Session | None:
        return self.sessions.load(self.url)

    def client(self) -> KinoClient:
        session = self.session()
        return KinoClient(self.url, session.token if session else None)


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.find_object(Settings)
    assert settings is not None, "the app callback sets it"
    return settings


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option("--url", envvar="KINO_URL", help="The gateway's address.")
    ] = DEFAULT_URL,
) -> None:
    """Kino from the command line: upload, list, watch and trim videos."""
    ctx.obj = Settings(url.rstrip("/"), SessionStore.default())


# -- account -----------------------------------------------------------------------

Email = Annotated[str, typer.Option("--email", envvar="KINO_EMAIL", prompt=True)]


def _password(*, confirm: bool) -> str:
    """`KINO_PASSWORD` (for scripts), else asked without echo."""
    return os.environ.get("KINO_PASSWORD") or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=confirm
    )


def _sign_in(settings: Settings, client: KinoClient, email: str, password: str) -> None:
    token = client.sign_in(email, password)
    settings.sessions.save(settings.url, Session(email=email, token=token))
    progress.stderr.print(f"Signed in to {settings.url} as {email}.")


@app.command()
def register(ctx: typer.Context, email: Email) -> None:
    """Create an account, then sign in with it."""
    settings = _settings(ctx)
    password = _password(confirm=True)
    with settings.client() as client:
        client.register(email, password)
        _sign_in(settings, client, email, password)


@app.command()
def login(ctx: typer.Context, email: Email) -> None:
    """Sign in; the session is kept in your configuration directory (mode 0600)."""
    settings = _settings(ctx)
    password = _password(confirm=False)
    with settings.client() as client:
        _sign_in(settings, client, email, password)


@app.command()
def logout(ctx: typer.Context) -> None:
    """Forget the session of this gateway."""
    settings = _settings(ctx)
    if not settings.sessions.forget(settings.url):
        raise KinoError(f"not signed in to {settings.url}")
    progress.stderr.print(f"Signed out of {settings.url}.")


# -- hosting -----------------------------------------------------------------------


@app.command()
def upload(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The video file.")],
    title: Annotated[str | None, typer.Option(help="Its title (default: the file name).")] = None,
    private: Annotated[bool, typer.Option("--private", help="List it for you only.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow processing until listed.")] = False,
    resumable: Annotated[
        bool | None,
        typer.Option(
            "--resumable/--single-request",
            help="Send it in parts, resumable by running the command again "
            "(default: for files over 64 MiB).",
        ),
    ] = None,
) -> None:
    """Upload a video straight to storage; prints its hash_id."""
    with _settings(ctx).client() as client:
        prepared = hosting.PreparedUpload.prepare(
            client, file, title=title, private=private, resumable=resumable
        )
        with progress.transfer(f"uploading {file.name}", prepared.size) as advance:
            prepared.send(client, advance)
        if wait:
            with progress.job("processing") as report:
                hosting.wait_until_listed(client, prepared.hash_id, report)
    typer.echo(prepared.hash_id)


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


@app.command("ls")
def list_mine(ctx: typer.Context) -> None:
    """Your videos: listed ones, and those still processing or failed."""
    with _settings(ctx).client() as client:
        mine = client.my_videos()
    table = Table("hash_id", "title", "status", "progress", "length", "detail")
    table.columns[0].no_wrap = True
    for video in mine.videos:
        status = "private" if video.is_private else "listed"
        table.add_row(video.hash_id, video.title, status, "", _minutes(video.duration_seconds), "")
    for item in mine.unprocessed_videos:
        done = f"{item.progress:.0%}" if item.progress is not None else ""
        eta = f"about {item.eta_seconds:.0f} s left" if item.eta_seconds is not None else ""
        detail = item.failure_reason or eta
        table.add_row(item.hash_id, item.file_name, item.status, done, "", detail)
    stdout.print(table)


@app.command()
def explore(
    ctx: typer.Context,
    include_my: Annotated[
        bool, typer.Option("--include-my", help="Your own public videos too.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many videos.")] = 20,
) -> None:
    """Public videos, newest listed first (following the pages)."""
    table = Table("hash_id", "title", "user_id", "length", "listed")
    table.columns[0].no_wrap = True
    shown = 0
    next_page: str | None = None
    with _settings(ctx).client() as client:
        while shown < limit:
            page = client.explore(include_my=include_my, next_page=next_page)
            for video in page.videos[: limit - shown]:
                listed = (video.listing_time or "")[:19].replace("T", " ")
                length = _minutes(video.duration_seconds)
                table.add_row(video.hash_id, video.title, video.user_id, length, listed)
                shown += 1
            next_page = page.next
            if next_page is None:
                break
    stdout.print(table)


#: A hash_id may begin with "-" (its alphabet is URL-safe base64), so commands that
#: take one pass an unknown "-…" word on as the argument rather than refuse it.
HASH_ID_ARGUMENT = {"ignore_unknown_options": True}


@app.command(context_settings=HASH_ID_ARGUMENT)
def watch(
    ctx: typer.Context,
    hash_id: str,
    user: Annotated[
        str | None, typer.Option("--user", help="The owner's user id (default: you).")
    ] = None,
) -> None:
    """Print the URLs to watch a video: the file, the HLS playlist, the thumbnail."""
    settings = _settings(ctx)
    if user is None:
        session = settings.session()
        if session is None:
            raise KinoError(f"{NOT_SIGNED_IN} (or name the owner with --user)")
        user = session.user_id
    with settings.client() as client:
        record = client.watch(user, hash_id)
    # Plain lines, never wrapped: URLs are to be copied or read by scripts.
    typer.echo(f"watchable_url: {record.watchable_url}")
    typer.echo(f"hls_url: {record.hls_url or ''}")
    typer.echo(f"thumbnail_url: {record.video.thumbnail_url or ''}")


@app.command("rm", context_settings=HASH_ID_ARGUMENT)
def remove(ctx: typer.Context, hash_id: str) -> None:
    """Delete one of your videos (not while it is processing)."""
    with _settings(ctx).client() as client:
        client.delete_video(hash_id)
    progress.stderr.print(f"Deleted {hash_id}.")


# -- trimming -----------------------------------------------------------------------


@app.command()
def trim(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The source video.")],
    start: Annotated[float, typer.Option(min=0, help="Where the clip starts, in seconds.")],
    duration: Annotated[float, typer.Option(min=0.001, help="The clip's length, in seconds.")],
    name: Annotated[str | None, typer.Option(help="Its name (default: the file's).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the request until done.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Download the clip here (implies --wait).")
    ] = None,
) -> None:
    """Cut a clip out of a video; prints the video's id."""
    size = file_size(file)
    with _settings(ctx).client() as client:
        with progress.transfer(f"uploading {file.name}", size) as advance:
            video_id = trimming.request_trim(
                client,
                file,
                name=name or file.stem,
                start=start,
                duration=duration,
                on_sent=advance,
            )
        if wait or out is not None:
            with progress.job("trimming") as report:
                clip = trimming.wait_for_clip(client, video_id, report)
            if out is not None:
                with (
                    client.download(clip.attributes.url) as (length, chunks),
                    progress.transfer(f"downloading {out.name}", length) as advance,
                ):
                    write_whole(out, chunks, advance)
    typer.echo(video_id)


@app.command("requests")
def list_requests(ctx: typer.Context) -> None:
    """Your trim requests, newest first."""
    with _settings(ctx).client() as client:
        found = client.trim_requests()
    table = Table("id", "status", "progress", "detail")
    table.columns[0].no_wrap = True
    for request in found:
        attributes = request.attributes
        done = f"{attributes.progress:.0%}" if attributes.progress is not None else ""
        table.add_row(request.id, attributes.status, done, attributes.failure_reason or "")
    stdout.print(table)


# -- the console script -------------------------------------------------------------


def _fail(message: str) -> None:
    typer.echo(f"kino: {message}", err=True)
    raise SystemExit(1)


def main() -> None:
    """Run the app (`kino`, `python -m cli`); every failure is one line on stderr."""
    try:
        app()
    except KinoError as error:
        _fail(str(error))
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        _fail(f"{error.strerror or error}{where}")
    except Exception as error:
        if os.environ.get("KINO_DEBUG"):
            raise
        _fail(f"unexpected error ({type(error).__name__}): {error}")
