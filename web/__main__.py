"""python -m web: the status page and JSON API on DBMIGRATE_WEB_ADDR (localhost only without a token)."""
from __future__ import annotations

import logging
import socket
import sys

import uvicorn

from services.common.config import env_str, listen_address, service_address
from services.common.errors import ConfigError
from services.common.logs import setup_logging
from services.common.server import _is_loopback
from web.app import create_app

log = logging.getLogger("web")


def bind_address(listen: str, token: str | None) -> tuple[str, int]:
    """Where to listen: as configured with a token; without one, never beyond this machine."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if token:
        log.info("web: DBMIGRATE_WEB_TOKEN is set; every request that changes something needs it")
    elif not _is_loopback(host):
        log.warning("web: no DBMIGRATE_WEB_TOKEN set, so listening on localhost only (127.0.0.1:%s) instead of "
                    "%s; set DBMIGRATE_WEB_TOKEN to accept connections from other machines", port, listen)
        host = "127.0.0.1"
    else:
        log.info("web: no DBMIGRATE_WEB_TOKEN set; listening on localhost only (%s:%s), actions need no token",
                 host, port)
    return host, int(port)


def _check_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}); pick another DBMIGRATE_WEB_ADDR") from None


def main() -> None:
    try:
        level = (env_str("DBMIGRATE_LOG_LEVEL", "INFO") or "INFO").upper()
        setup_logging("web", level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
        token = env_str("DBMIGRATE_WEB_TOKEN")
        host, port = bind_address(listen_address("web"), token)
        coordinator = service_address("coordinator")
        _check_free(host, port)
    except ConfigError as err:
        print(f"web: configuration error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    log.info("web: page and API on http://%s:%d/ talking to the coordinator at %s", host, port, coordinator)
    uvicorn.run(create_app(coordinator, token), host=host, port=port, log_config=None, access_log=False,
                timeout_graceful_shutdown=2, lifespan="on")


if __name__ == "__main__":
    main()
