"""A throwaway Dovecot on loopback ports, for the tests (Debian package dovecot-imapd).

Facts (docs/architecture.md): as root, Dovecot refuses root for its login and
mail processes, so the packaged `dovecot`/`dovenull` users run them and the
temp dir belongs to `dovecot`; as an ordinary user, that user runs everything.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    "Dovecot is required for the IMAP tests and was not found. Install it with "
    "`sudo apt-get install -y dovecot-imapd` (Debian/Ubuntu), or run scripts/test, which does."
)

CONFIG = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
{ssl_files}
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_failure_delay = 0
# Any user name (the default allows ASCII letters, digits and .-_@ only): the tests sign in
# a name beyond ASCII by AUTHENTICATE PLAIN (tests/integration/test_secrets.py).
auth_username_chars =
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = 0
mail_uid = {mail_user}
mail_gid = {mail_group}
mail_location = maildir:{base}/mail/%u
mailbox_list_index = no
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={base}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox "Éléments envoyés" {{
    special_use = \\Sent
  }}
  mailbox Drafts {{
    special_use = \\Drafts
  }}
}}
"""


ZLIB = (
    "mail_plugins = $mail_plugins zlib\n"
    "protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"Dovecot did not listen on 127.0.0.1:{port}")


class Dovecot:
    """One private Dovecot instance; every username logs in with `password`."""

    def __init__(
        self,
        base: Path,
        cert: Path | None = None,
        key: Path | None = None,
        introspection_url: str | None = None,
        compress: bool = False,
    ) -> None:
        self.binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not Path(self.binary).exists():
            raise RuntimeError(INSTALL_HINT)
        self.base = base
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()
        self.tls_port = free_port()
        self.tls = cert is not None
        self.config = base / "dovecot.conf"
        self._write_config(cert, key)
        if introspection_url is not None:
            self._add_oauth2(introspection_url)
        if compress:  # COMPRESS=DEFLATE (RFC 4978), offered once logged in
            text = self.config.read_text(encoding="utf-8")
            self.config.write_text(
                text.replace("protocols = imap\n", "protocols = imap\n" + ZLIB), encoding="utf-8"
            )

    def _add_oauth2(self, url: str) -> None:
        """XOAUTH2 and OAUTHBEARER through Dovecot's oauth2 passdb, each token checked by
        the tests' provider (tests/oauth_provider.py) at `url`, with no cache
        (auth_cache_size stays 0, or a revoked token would pass), and without the login
        penalty that delays logins from 127.0.0.1 after a few failures (it is lifted by
        opening anvil's penalty listener; login_trusted_networks does not, in 2.3)."""
        ext = self.base / "dovecot-oauth2.conf.ext"
        ext.write_text(
            f"introspection_url = {url}\nintrospection_mode = post\n"
            "username_attribute = username\nactive_attribute = active\nactive_value = true\n",
            encoding="utf-8",
        )
        text = self.config.read_text(encoding="utf-8")
        text = text.replace(
            "auth_mechanisms = plain login", "auth_mechanisms = plain login xoauth2 oauthbearer"
        )
        text = text.replace(
            "passdb {\n  driver = static\n",
            f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
            f"  args = {ext}\n}}\npassdb {{\n  driver = static\n  mechanisms = plain login\n",
        )
        text = text.replace(
            "service anvil {\n  chroot =\n}",
            "service anvil {\n  chroot =\n"
            "  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}",
        )
        self.config.write_text(text, encoding="utf-8")

    def _write_config(self, cert: Path | None, key: Path | None) -> None:
        root = os.geteuid() == 0
        me = pwd.getpwuid(os.geteuid()).pw_name
        # As an ordinary user outside the `dovecot` group, Dovecot's own sockets must go to
        # that user's group (it cannot chown them to `dovecot`: "chown(.../stats-writer)
        # failed"), and mail_gid must be a group's name, which need not be the user's.
        group = grp.getgrgid(os.getegid()).gr_name
        for sub in ("run", "state", "mail", "home"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        ssl_files = f"ssl_cert = <{cert}\nssl_key = <{key}" if cert else ""
        self.config.write_text(
            CONFIG.format(
                base=self.base,
                ssl="yes" if cert else "no",
                ssl_files=ssl_files,
                login_user="dovenull" if root else me,
                internal_user="dovecot" if root else me,
                internal_group="dovecot" if root else group,
                mail_user="dovecot" if root else me,
                mail_group="dovecot" if root else group,
                password=self.password,
                port=self.port,
                tls_port=self.tls_port,
            ),
            encoding="utf-8",
        )
        if root:
            os.chmod(self.base, 0o755)
            shutil.chown(self.base / "mail", "dovecot", "dovecot")
            shutil.chown(self.base / "home", "dovecot", "dovecot")

    def start(self) -> None:
        # Not a pipe: the daemon's children inherit stdout/stderr and would hold it open.
        with open(self.base / "startup.log", "w+", encoding="utf-8") as out:
            code = subprocess.call([self.binary, "-c", str(self.config)], stdout=out, stderr=out)
            out.seek(0)
            if code != 0:
                raise RuntimeError(f"dovecot failed to start: {out.read().strip()}\n{self.log()}")
        _wait_for_port(self.port, time.monotonic() + 10)

    def stop(self) -> None:
        pid_file = self.base / "run" / "master.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().strip())
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def doveadm(self, *args: str) -> str:
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        result = subprocess.run(
            [doveadm, "-c", str(self.config), *args], capture_output=True, text=True, check=True
        )
        return result.stdout

    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@contextmanager
def running(base: Path, **options: Any) -> Iterator[Dovecot]:
    """A Dovecot in `base` (not under pytest's 0700 tmp root: as root, its mail processes
    run as `dovecot` and need +x on every parent), stopped and removed afterwards."""
    server = Dovecot(base, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
