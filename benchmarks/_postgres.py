"""A throw-away local PostgreSQL server, for the distributed-tuning tests and benchmark.

:func:`postgres_server` runs ``initdb`` into a new temporary folder, starts the server
with ``pg_ctl`` on 127.0.0.1 and a free port (its unix socket in that folder, trust
authentication, no fsync: the data are thrown away), creates one database, yields its
SQLAlchemy URL (``postgresql+psycopg2://postgres@127.0.0.1:PORT/NAME``) and always stops
the server (``pg_ctl stop -m fast``) and removes the folder afterwards. PostgreSQL
refuses to run as root: as root, the commands run as the ``postgres`` system user that
Debian's ``postgresql`` package creates (``runuser -u postgres --``).

The server binaries are found with ``pg_config --bindir``, then in
``/usr/lib/postgresql/<version>/bin`` (Debian, newest first), then on ``PATH``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: The programs a server needs.
_PROGRAMS = ("initdb", "pg_ctl", "postgres")
#: The system user that runs the server when this process is root.
SYSTEM_USER = "postgres"


def _has_programs(folder: str | Path) -> bool:
    return all(os.access(Path(folder, name), os.X_OK) for name in _PROGRAMS)


def find_bindir() -> Path | None:
    """The folder of PostgreSQL's server programs, or None where there is none.

    Returns
    -------
    pathlib.Path or None
        A folder holding ``initdb``, ``pg_ctl`` and ``postgres``.
    """
    candidates = []
    if shutil.which("pg_config"):
        result = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if result.returncode == 0:
            candidates.append(result.stdout.strip())

    def version(folder: str) -> tuple[int, ...]:
        name = Path(folder).parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for folder in candidates:
        if folder and _has_programs(folder):
            return Path(folder)
    return None


def unavailable_reason() -> str | None:
    """Why no server can start here (None where one can).

    Returns
    -------
    str or None
        What is missing, and how to install it.
    """
    if find_bindir() is None:
        return ("PostgreSQL's server programs (initdb, pg_ctl, postgres) were not found "
                "(pg_config --bindir, /usr/lib/postgresql/*/bin, PATH); install them with "
                "`apt-get install postgresql`")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            return (f"running as root, and PostgreSQL refuses root: the {SYSTEM_USER!r} "
                    "system user (created by Debian's postgresql package) does not exist")
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(command: list[str], as_user: str | None, **kwargs) -> subprocess.CompletedProcess:
    if as_user is not None:
        command = ["runuser", "-u", as_user, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def _check(result: subprocess.CompletedProcess, what: str, log: Path | None = None) -> None:
    if result.returncode != 0:
        text = (result.stdout + result.stderr)[-3000:]
        if log is not None and log.is_file():
            text += "\n--- server log ---\n" + log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{text}")


@contextlib.contextmanager
def postgres_server(database: str = "mmfusion", timeout: float = 60) -> Iterator[str]:
    """Start a local PostgreSQL server; yield a SQLAlchemy URL of a new database.

    Parameters
    ----------
    database : str, default="mmfusion"
        The database to create.
    timeout : float, default=60
        Seconds to wait for the server to start or stop.

    Yields
    ------
    str
        ``postgresql+psycopg2://postgres@127.0.0.1:PORT/DATABASE``.
    """
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    bindir = find_bindir()
    assert bindir is not None
    as_user = SYSTEM_USER if os.geteuid() == 0 else None
    # not under pytest's tmp_path: its folders are private to root, the server is not root
    folder = Path(tempfile.mkdtemp(prefix="mmfusion-postgres-"))
    data, log = folder / "data", folder / "server.log"
    if as_user is not None:
        entry = pwd.getpwnam(as_user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    started = False
    try:
        _check(_run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                     "-E", "UTF8", "--no-locale", "--no-sync"], as_user, timeout=timeout),
               "initdb")
        for attempt in range(3):  # the free port may be taken between probe and start
            port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {shlex.quote(str(folder))} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            result = _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                           "-t", str(int(timeout)), "-o", options, "start"], as_user,
                          timeout=timeout + 10)
            started = result.returncode == 0
            if started or attempt == 2:
                break
            time.sleep(0.5)
        _check(result, "pg_ctl start", log)
        createdb = bindir / "createdb"
        if createdb.is_file():
            command = [str(createdb), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                       database]
        else:
            command = [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U",
                       "postgres", "-d", "postgres", "-c", f'CREATE DATABASE "{database}"']
        _check(_run(command, None, timeout=timeout), "createdb", log)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
    finally:
        try:
            for mode in ("fast", "immediate") if started else ():
                stopped = _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", mode, "-w",
                                "-t", str(int(timeout)), "stop"], as_user, timeout=timeout + 10)
                if stopped.returncode == 0:
                    break
        finally:
            shutil.rmtree(folder, ignore_errors=True)
