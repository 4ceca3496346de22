"""Render the demo mailbox's digest to docs/digest.png (for the README).

Needs Debian's chromium. Run: .venv/bin/python scripts/render_digest.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from inboxwatch.cli.common import DEMO_AS_OF, demo_digest, demo_jobs
from inboxwatch.core.scan import run_scan
from inboxwatch.delivery.digest import render

DOCS = Path(__file__).resolve().parent.parent / "docs"
# Without the background-networking flags Chromium tries to reach Google at start.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def main() -> int:
    browser = shutil.which("chromium")
    if browser is None:
        print("render_digest: chromium not found (apt-get install -y chromium)", file=sys.stderr)
        return 1
    report = run_scan(demo_jobs(), DEMO_AS_OF, DEMO_AS_OF)
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        html = Path(profile) / "digest.html"
        html.write_text(render(report, demo_digest(), DEMO_AS_OF).html, encoding="utf-8")
        subprocess.run(
            [
                browser,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--window-size=680,960",
                f"--screenshot={DOCS / 'digest.png'}",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"wrote {DOCS / 'digest.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
