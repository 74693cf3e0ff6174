"""A throwaway PostgreSQL cluster for the tests (``initdb`` + ``pg_ctl`` in a temporary directory).

:func:`start` finds the server programs (`the newest under
``/usr/lib/postgresql/*/bin``, else ``pg_ctl`` on ``PATH``), makes a cluster in a fresh temporary
directory and starts it on a free loopback port, with its unix socket in
that directory too. PostgreSQL refuses to run as root, so as root the
cluster belongs to the ``postgres`` system user and its programs run through
``runuser``; otherwise they run as the current user. :meth:`PgServer.stop`
stops it and removes the directory.

The cluster trusts the superuser ``flowforge`` from loopback and asks every
other role for a password, so a test can try wrong credentials against the
role ``PASSWORD_USER``. It runs with ``fsync=off``: tests kill clients, never
the server.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import attrs

SUPERUSER = "flowforge"
PASSWORD_USER = "pw_user"
PASSWORD = "s3cret-Pa55"
DATABASE = "flowforge_test"
_HBA = f"""\
local all all trust
host all {SUPERUSER} 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


class NoPostgres(RuntimeError):
    """The PostgreSQL server programs are not installed."""


@attrs.frozen
class PgServer:
    """A running cluster; ``dsn`` reaches its test database as the superuser."""

    root: Path
    port: int
    bindir: Path
    owner: str | None

    @property
    def dsn(self) -> str:
        """The test database, as the trusted superuser."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def url(self, user: str, password: str | None = None, database: str = DATABASE) -> str:
        """A URL to this server for ``user`` (with ``password``, if given)."""
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server (fast shutdown), if it runs, and remove its directory."""
        try:
            if (self.root / "data" / "postmaster.pid").exists():
                _run(
                    self.owner,
                    self.bindir / "pg_ctl",
                    "stop",
                    "-D",
                    self.root / "data",
                    "-m",
                    "fast",
                )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def find_bindir() -> Path:
    """The directory of ``pg_ctl``; :class:`NoPostgres` if there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    on_path = shutil.which("pg_ctl")
    if not found and on_path:
        # Debian's /usr/bin only has wrappers for the clients; pg_ctl on PATH is a real install.
        found = [str(Path(on_path).resolve())]
    if not found:
        raise NoPostgres(
            "PostgreSQL is not installed (no pg_ctl under /usr/lib/postgresql/*/bin or on PATH); "
            "install it with: apt-get install -y postgresql"
        )
    return Path(found[-1]).parent


def start() -> PgServer:
    """Make and start a cluster; stop it with :meth:`PgServer.stop`."""
    bindir = find_bindir()
    owner = "postgres" if os.geteuid() == 0 else None
    # The postgres user must reach the directory: /tmp, not a TMPDIR under /root.
    root = Path(tempfile.mkdtemp(prefix="flowforge-pg-", dir="/tmp" if owner else None))
    if owner is not None:
        shutil.chown(root, owner)
    server = PgServer(root, _free_port(), bindir, owner)
    try:
        _initdb(server)
        _run(
            owner,
            bindir / "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            root / "data",
            "-l",
            root / "server.log",
            "-o",
            f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200",
        )
        _run(owner, bindir / "createdb", "-h", root, "-p", server.port, "-U", SUPERUSER, DATABASE)
        _run(
            owner,
            bindir / "psql",
            "-h",
            root,
            "-p",
            server.port,
            "-U",
            SUPERUSER,
            "-d",
            DATABASE,
            "-c",
            f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'",
        )
    except BaseException as exc:
        log = root / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start: {exc}\nIts log ends:\n{detail}") from exc
    return server


def _initdb(server: PgServer) -> None:
    data = server.root / "data"
    _run(
        server.owner,
        server.bindir / "initdb",
        "-D",
        data,
        "-U",
        SUPERUSER,
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-sync",
    )
    hba = data / "pg_hba.conf"
    hba.write_text(_HBA)
    if server.owner is not None:
        shutil.chown(hba, server.owner)


def _run(owner: str | None, *command: object) -> None:
    args = [str(part) for part in command]
    if owner is not None:
        args = ["runuser", "-u", owner, "--", *args]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _version(path: str) -> tuple[int, ...]:
    name = Path(path).parent.parent.name
    return tuple(int(part) for part in name.split(".") if part.isdigit())
