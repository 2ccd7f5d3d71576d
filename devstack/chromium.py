"""Chromium for the browser tests: `python -m devstack.chromium` (run by `make test`).

The playback tests (`tests/browser/`) drive Debian's `chromium` package through
Playwright with `executable_path=/usr/bin/chromium`; Playwright's own browser download
is never used. When that binary is missing, this installs the package as the devstack
installs RabbitMQ: on Debian and as root with `apt-get`, output into a log file;
anywhere else it stops and says what to install. When Chromium is there it does
nothing and prints nothing, so it can run before every test session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from devstack.apt import apt_install, can_apt_install
from devstack.errors import DevstackError
from devstack.services import REPO_ROOT

#: Where Debian's `chromium` package puts the browser; the tests launch exactly this.
CHROMIUM = Path("/usr/bin/chromium")

#: Without the recommended extras (fonts, drivers) a headless test never uses.
INSTALL_OPTIONS = ("--no-install-recommends",)


def missing_chromium_message() -> str:
    return (
        f"Chromium is not installed at {CHROMIUM} (the browser playback tests need it) and "
        "it cannot be installed here (that needs Debian and root): install it "
        "(Debian/Ubuntu: apt-get install --no-install-recommends chromium)"
    )


def install_chromium(log_path: Path) -> Path:
    """`apt-get install chromium`, output into `log_path`."""
    apt_install(["chromium"], log_path, options=INSTALL_OPTIONS)
    if not CHROMIUM.exists():
        raise DevstackError(f"{CHROMIUM} still not found after apt-get; see {log_path}")
    return CHROMIUM


def ensure_chromium(log_path: Path) -> Path:
    """The Chromium binary, installed first when it is missing and we may install it."""
    if CHROMIUM.exists():
        return CHROMIUM
    if not can_apt_install():
        raise DevstackError(missing_chromium_message())
    print(
        f"devstack: {CHROMIUM} is missing (the browser playback tests need it): "
        f"installing Debian's chromium package with apt-get (output in {log_path})",
        flush=True,
    )
    return install_chromium(log_path)


def main(environ: Mapping[str, str] = os.environ) -> int:
    run_dir = Path(environ.get("KINO_DEV_RUN_DIR") or REPO_ROOT / ".run")
    try:
        ensure_chromium(run_dir / "logs" / "apt-chromium.log")
    except DevstackError as error:
        print(f"devstack: {error.message}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
