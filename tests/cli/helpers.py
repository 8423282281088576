"""Runs the installed `dbmigrate` command as a subprocess, the way an operator or a script does."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DBMIGRATE = str(Path(sys.executable).parent / "dbmigrate")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)

    def assert_clean_error(self, code: int, *fragments: str) -> None:
        """A failure: the exit code, one clear line on stderr, no traceback."""
        assert self.code == code, f"exit {self.code} (wanted {code}); stderr: {self.err!r} stdout: {self.out!r}"
        assert "Traceback" not in self.err + self.out
        for fragment in fragments:
            assert fragment in self.err, f"{fragment!r} not in stderr {self.err!r}"


def dbmigrate(*args: str, coordinator: str | None = "127.0.0.1:1", env: dict[str, str] | None = None,
              timeout: float = 120) -> Result:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DBMIGRATE_")}
    if coordinator:
        e["DBMIGRATE_COORDINATOR"] = coordinator
    e.update(env or {})
    p = subprocess.run([DBMIGRATE, *args], env=e, capture_output=True, text=True, timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)
