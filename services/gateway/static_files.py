"""Where the gateway's static files are: its pages (`docs.html`; `app/`, the web app's
page, ES modules and styles) and their scripts, and `vendor/`, the front-end packages
`make setup` installs from the npm registry (hls.js, Swagger UI), served at `/static/`."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
