"""Container health check: `python -m services.common.healthcheck HOST:PORT` (gRPC) or `--http URL`; exit 0 if healthy."""
from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.channels import sync_channel


def check_grpc(address: str, service: str = "", timeout: float = 3.0) -> str:
    """The health status name (SERVING, NOT_SERVING, ...) or the gRPC failure."""
    with sync_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=timeout)
        except grpc.RpcError as err:
            return f"{err.code().name}: {err.details()}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def check_http(url: str, timeout: float = 3.0) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return "SERVING" if reply.status < 400 else f"HTTP {reply.status}"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except OSError as err:
        return f"unreachable: {err}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.common.healthcheck",
                                description="exit 0 when the service answers SERVING (gRPC health) or HTTP 2xx/3xx")
    p.add_argument("address", nargs="?", help="gRPC HOST:PORT")
    p.add_argument("--service", default="", help="gRPC service name to check (default: the whole server)")
    p.add_argument("--http", metavar="URL", help="check an HTTP URL instead (the web service: /api/health)")
    p.add_argument("--timeout", type=float, default=3.0)
    args = p.parse_args(argv)
    if not args.address and not args.http:
        p.error("give a gRPC HOST:PORT or --http URL")
    status = check_http(args.http, args.timeout) if args.http else check_grpc(args.address, args.service, args.timeout)
    print(status)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
