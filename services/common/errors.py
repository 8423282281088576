"""The package's errors: one root, small subclasses, mapped to gRPC status codes at the edge."""
from __future__ import annotations

import grpc


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


class Cancelled(DBMigrateError):
    code = grpc.StatusCode.CANCELLED


def from_rpc_error(err: grpc.RpcError, what: str) -> DBMigrateError:
    """Turns a failed call to another service into the package's error, keeping its message."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else "") or str(code)
    transient = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                 grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
                 grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
    by_code = {
        grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
        grpc.StatusCode.NOT_FOUND: NotFound,
        grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
        grpc.StatusCode.UNAVAILABLE: Unavailable,
    }
    cls = by_code.get(code, DBMigrateError)
    e = cls(f"{what}: {details}")
    e.retryable = code in transient
    return e
