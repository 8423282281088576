"""The package's errors: one root, small subclasses, mapped to gRPC status codes at the edge."""
from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class DBMigrateError(Exception):
    """Root of every error DBMigrate raises on purpose. The message is safe to show a user."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class ConfigError(DBMigrateError):
    """A configuration value is missing or bad; the message names the variable."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidInput(DBMigrateError):
    """The request is malformed; the message says what to fix."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DBMigrateError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(DBMigrateError):
    """The request is valid but not in the current state (approve twice, non-empty target)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(DBMigrateError):
    """A server (PostgreSQL, an agent) cannot be reached; retrying later may help."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message, retryable=retryable)


class DatabaseError(DBMigrateError):
    """PostgreSQL refused something; retryable marks transient failures."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ConcurrencyConflict(DBMigrateError):
    """Two writers appended the same workflow version."""

    code = grpc.StatusCode.ABORTED

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


# The ErrorInfo domain of DBMigrate's own errors (services.common.server.status_for writes it).
ERROR_DOMAIN = "dbmigrate"


class Cancelled(DBMigrateError):
    code = grpc.StatusCode.CANCELLED


def error_details(err: grpc.RpcError) -> tuple[str | None, bool]:
    """(kind, retryable) from a failed call's typed status details (see server.status_for); kind is
    None when the status came from the transport, not from a DBMigrate service's own logic."""
    try:
        status = rpc_status.from_call(err) if hasattr(err, "trailing_metadata") else None
    except ValueError:  # details that contradict the call's own status: not ours
        return None, False
    kind, retryable = None, False
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                kind = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retryable = True
    return kind, retryable
