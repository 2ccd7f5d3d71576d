"""`python -m shared.healthcheck [ready|health]`: exit 0 when this container's service
answers 200 on `/ready` (or `/health`), else 1. For Docker `HEALTHCHECK` and compose,
whose slim images have no curl; the port is the gateway's admin port
(`KINO_GATEWAY_ADMIN_PORT`) in the gateway's container, else the service's own
`KINO_HTTP_PORT`."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    probe = argv[1] if len(argv) > 1 else "ready"
    if probe not in {"ready", "health"}:
        print(f"usage: python -m shared.healthcheck [ready|health], not {probe!r}", file=sys.stderr)
        return 2
    port = os.environ.get("KINO_GATEWAY_ADMIN_PORT") or os.environ.get("KINO_HTTP_PORT", "8080")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{probe}", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
