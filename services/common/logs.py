"""Structured logs: one JSON object per line on stdout, with service and workflow id, never a secret."""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time

workflow_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("workflow_id", default=None)

_service = "dbmigrate"
_known_secrets: set[str] = set()

# password=..., "password": "...", postgresql://user:secret@host, api_key=...
_PATTERNS = [
    re.compile(r"(?i)(password|passwd|api_key|apikey|token|secret)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&'\"}]+)"),
    re.compile(r"(?i)(postgres(?:ql)?://[^:/@\s]*:)([^@\s]*)(@)"),
]


def register_secret(value: str | None) -> None:
    """Remembers a secret value so that it is scrubbed from every log line and error message."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """Removes passwords and keys from a text: known secret values and key=value forms."""
    if not text:
        return text
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": _service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        wid = getattr(record, "workflow_id", None) or workflow_id_var.get()
        if wid:
            entry["workflow_id"] = wid
        for key in ("table", "phase", "agent", "attempt", "seconds", "rows"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            # Tracebacks stay in the server's log (redacted); they never reach a client.
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def setup_logging(service: str, level: str = "INFO") -> None:
    global _service
    _service = service
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("nats", "asyncio", "grpc", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
