"""The secret store: passwords and API keys kept apart from events, referenced by name.

Secrets live in `$DBMIGRATE_DATA_DIR/secrets.json`, created with mode 0600 and rewritten atomically.
An environment variable DBMIGRATE_SECRET_<REF> (ref upper-cased, non-alphanumerics as `_`) overrides
the file, so an operator whose secrets file was lost can supply them again at start; the
SupplySecrets RPC does the same at run time.
"""
from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from services.common.errors import ConfigError
from services.common.logs import register_secret


def env_name(ref: str) -> str:
    return "DBMIGRATE_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", ref).upper()


class SecretStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        if self.path.exists():
            mode = self.path.stat().st_mode & 0o777
            if mode & 0o077:
                raise ConfigError(f"secret store {self.path} is readable by others (mode {mode:o}); "
                                  f"run: chmod 600 {self.path}")
            try:
                self._values = json.loads(self.path.read_text() or "{}")
            except json.JSONDecodeError:
                raise ConfigError(f"secret store {self.path} is not valid JSON; fix or remove it and "
                                  "supply the secrets again (SupplySecrets)") from None
        for value in self._values.values():
            register_secret(value)

    def get(self, ref: str) -> str | None:
        if not ref:
            return None
        value = os.environ.get(env_name(ref)) or self._values.get(ref)
        register_secret(value)
        return value

    def has(self, ref: str) -> bool:
        return self.get(ref) is not None

    def put(self, ref: str, value: str) -> None:
        register_secret(value)
        with self._lock:
            self._values[ref] = value
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self._values, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
