"""Build the image with podman (no Docker engine here) and smoke-test it.

Recipe from shared/docs/container-ci.md: a Debian base made with debootstrap,
a stand-in for python:3.x-slim on it, runc, the docker image format (the OCI
one drops HEALTHCHECK). Then: --version, the demo, and `run` against a real
Dovecot on the host's loopback: healthy after a poll, and a SIGTERM stop that
exits 0 within seconds. Run as root: python scripts/container_smoke.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MIRROR = "http://deb.debian.org/debian"
IMAGE = "localhost/inboxwatch:ci"
# Cleaned as the official images are (debootstrap leaves its .debs and apt's caches), so
# the size the smoke test prints is comparable with a python:3.x-slim base's.
STANDIN = """FROM localhost/debian-min:local
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \\
    python-is-python3 ca-certificates && apt-get clean \\
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*
"""


def sh(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(args), flush=True)
    return subprocess.run(args, check=check, text=True, **kw)  # type: ignore[call-overload]


def podman_env(work: Path) -> None:
    (work / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
    (work / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{work}/graph"\nrunroot = "{work}/run"\n'
    )
    os.environ["CONTAINERS_CONF"] = str(work / "containers.conf")
    os.environ["CONTAINERS_STORAGE_CONF"] = str(work / "storage.conf")


def build(work: Path) -> None:
    rootfs = work / "rootfs"
    sh(
        "debootstrap",
        "--variant=minbase",
        "bookworm",
        str(rootfs),
        MIRROR,
        stdout=subprocess.DEVNULL,
    )
    tar = subprocess.Popen(
        ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    )
    sh("podman", "import", "-", "localhost/debian-min:local", stdin=tar.stdout)
    tar.wait()
    (work / "Standin").write_text(STANDIN)
    build_args = ["--format", "docker", "--isolation", "chroot", "--network", "host"]
    sh(
        "podman",
        "build",
        *build_args,
        "-f",
        str(work / "Standin"),
        "-t",
        "localhost/python-slim:local",
        str(work),
    )
    ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    sh(
        "podman",
        "build",
        *build_args,
        "--build-arg",
        "BASE_IMAGE=localhost/python-slim:local",
        "--build-arg",
        "PIP_CERT=/host-ca.crt",
        "-v",
        f"{ca}:/host-ca.crt:ro",
        "-t",
        IMAGE,
        str(ROOT),
    )


def report_sizes() -> None:
    """The image's size, the base's, and what inboxwatch adds (its venv): the figures the
    README quotes."""

    def size(image: str) -> float:
        out = sh("podman", "image", "inspect", "--format", "{{.Size}}", image, capture_output=True)
        return int(out.stdout.strip()) / 1e6

    venv = sh(
        *("podman", "run", "--rm", "--entrypoint", "du", IMAGE, "-s", "-B1", "/opt/inboxwatch"),
        capture_output=True,
    ).stdout.split()[0]
    image, base = size(IMAGE), size("localhost/python-slim:local")
    print(
        f"image size: {image:.0f} MB = base {base:.0f} MB + {image - base:.0f} MB "
        f"(of which the venv {int(venv) / 1e6:.0f} MB)"
    )


def expect(result: subprocess.CompletedProcess[str], code: int, text: str = "") -> None:
    output = (result.stdout or "") + (result.stderr or "")
    if result.returncode != code or text not in output:
        raise SystemExit(
            f"smoke test failed: exit {result.returncode} (wanted {code}), "
            f"wanted {text!r} in:\n{output[-3000:]}"
        )


def smoke(work: Path) -> None:
    from imapclient import IMAPClient

    from tests.dovecot import Dovecot

    expect(
        sh("podman", "run", "--rm", IMAGE, "--version", capture_output=True, check=False),
        0,
        "inboxwatch",
    )
    expect(
        sh(
            "podman",
            "run",
            "--rm",
            "--read-only",
            "--cap-drop",
            "ALL",
            IMAGE,
            "demo",
            capture_output=True,
            check=False,
        ),
        0,
        "4 conversations waiting > 24h",
    )
    # The docker format keeps HEALTHCHECK (the OCI format silently drops it).
    inspected = sh("podman", "image", "inspect", IMAGE, capture_output=True)
    expect(inspected, 0, '"inboxwatch",\n')
    if '"Healthcheck"' not in inspected.stdout:
        raise SystemExit("the image has no HEALTHCHECK")
    base = Path(tempfile.mkdtemp(prefix="inboxwatch-smoke-"))
    dovecot = Dovecot(base)
    dovecot.start()
    try:
        client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False)
        client.login("smoke", dovecot.password)
        client.create_folder("Sent")
        client.logout()
        secret = work / "imap_password"
        secret.write_text(dovecot.password)
        secret.chmod(0o600)  # root's: the container's uid 10001 cannot read it
        config = work / "config.toml"
        config.write_text(
            f'[[accounts]]\nname = "smoke"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
            'security = "plain"\nusername = "smoke@example.com"\n'
            'password_file = "/run/secrets/imap_password"\n'
            # The image's holidays extra and time zones: a calendar that loads at start.
            '[accounts.business_hours]\ntimezone = "Europe/Berlin"\nholidays = "DE-BE"\n'
            '[service]\npoll_interval = "1m"\n'
        )
        config.chmod(0o644)
        refused_secret(config, secret)
        os.chown(secret, 10001, -1)  # the README's fix: give it to the container's uid
        run_service(config, secret)
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)


def refused_secret(config: Path, secret: Path) -> None:
    """A root-owned 0600 secret: `run` stops at once with the line that says the fix."""
    done = sh(
        "podman",
        "run",
        "--rm",
        "--network",
        "host",
        "--read-only",
        "-v",
        f"{config}:/config/config.toml:ro",
        "-v",
        f"{secret}:/run/secrets/imap_password:ro",
        IMAGE,
        check=False,
        capture_output=True,
    )
    if done.returncode != 3 or "cannot be read by uid 10001" not in done.stderr:
        raise SystemExit(f"an unreadable secret gave exit {done.returncode}:\n{done.stderr}")
    print(f"unreadable secret refused: {done.stderr.strip()}")


def run_service(config: Path, secret: Path) -> None:
    from tests.dovecot import free_port

    name = "inboxwatch-smoke"
    port = free_port()  # the image's 9108 may be taken on this host (--network host)
    sh("podman", "rm", "-f", name, check=False, capture_output=True)
    sh(
        "podman",
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-v",
        f"{config}:/config/config.toml:ro",
        "-v",
        f"{secret}:/run/secrets/imap_password:ro",
        "-v",
        "inboxwatch-smoke-data:/data",
        "-e",
        f"INBOXWATCH_SERVICE__HEALTH_PORT={port}",
        IMAGE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = sh("podman", "healthcheck", "run", name, check=False, capture_output=True)
        if health.returncode == 0:
            break
        time.sleep(1)
    expect(health, 0)
    scrape_metrics(port)
    started = time.monotonic()
    sh("podman", "stop", "-t", "10", name)
    took = time.monotonic() - started
    code = sh(
        "podman", "inspect", name, "--format", "{{.State.ExitCode}}", capture_output=True
    ).stdout.strip()
    logs = sh("podman", "logs", name, capture_output=True)
    sh("podman", "rm", "-f", name, capture_output=True)
    sh("podman", "volume", "rm", "-f", "inboxwatch-smoke-data", capture_output=True)
    if code != "0" or took > 10:
        raise SystemExit(f"stop took {took:.1f}s with exit {code}:\n{logs.stderr[-2000:]}")
    if "poll:" not in logs.stderr:
        raise SystemExit(f"no poll line in the service log:\n{logs.stderr[-2000:]}")
    print(f"container smoke test passed: healthy after a poll, stopped in {took:.1f}s")


def scrape_metrics(port: int) -> None:
    """The image serves /metrics on all addresses (the container's HEALTH_ADDRESS)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        families = {f.name for f in text_string_to_metric_families(answer.read().decode())}
    if "inboxwatch_polls" not in families:
        raise SystemExit(f"no inboxwatch_polls in /metrics: {sorted(families)}")
    print(f"/metrics scraped: {len(families)} metric families")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="inboxwatch-podman-"))
    try:
        podman_env(work)
        build(work)
        report_sizes()
        smoke(work)
    finally:
        subprocess.run(["podman", "system", "reset", "--force"], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
