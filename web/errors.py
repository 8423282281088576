"""API errors: one JSON shape {"error": ...} with the HTTP status that fits, mapped from gRPC status codes."""
from __future__ import annotations

import logging

import grpc

from services.common.errors import error_details
from services.common.logs import redact

log = logging.getLogger("web")

# How a coordinator status code reads to an HTTP client.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 503,
    grpc.StatusCode.CANCELLED: 503,
}


class ApiError(Exception):
    """An error the client sees as {"error": message} with `status`; the message is safe to show."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def from_rpc_error(err: grpc.aio.AioRpcError, coordinator: str) -> ApiError:
    code = err.code()
    details = redact(err.details() or code.name)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        # The web server's own credentials are wrong: the operator of the web server must fix them.
        return ApiError(502, f"the coordinator at {coordinator} refused the web server: {details}; "
                             "give the web server the coordinator's token in DBMIGRATE_GRPC_TOKEN")
    if code == grpc.StatusCode.UNAVAILABLE and error_details(err)[0] is None:
        # The transport's own text ("failed to connect to all addresses; ipv4:...") helps nobody here.
        log.warning("coordinator at %s not reachable: %s", coordinator, details)
        return ApiError(503, f"the coordinator at {coordinator} is not reachable; "
                             "start it (python -m coordinator) or check DBMIGRATE_COORDINATOR_ADDR")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ApiError(503, f"the coordinator at {coordinator} did not answer in time; try again")
    return ApiError(HTTP_STATUS.get(code, 502), details)
