"""The CLI's connection to the coordinator: one blocking stub, gRPC failures turned into exit codes."""
from __future__ import annotations

import grpc

from dbmigrate.v1 import coordinator_pb2_grpc
from services.common.channels import sync_channel
from services.common.logs import redact
from services.common.errors import error_details

# Exit codes (also listed in `dbmigrate --help`).
EXIT_OK = 0
EXIT_FAILED = 1          # the operation failed: wrong state, migration failed/denied, coordinator unreachable
EXIT_USAGE = 2           # bad arguments or input: malformed URL, unknown migration id, INVALID_ARGUMENT
EXIT_NEEDS_APPROVAL = 3  # `migrate` stopped at AWAITING_APPROVAL without an automatic approval
EXIT_SOURCE_MOVED = 4    # completed and equal to the snapshot, but the source changed after it (offline)
EXIT_SYNCING = 5         # `migrate --online`: copied, verified per table, streaming; waits for `cutover`

# Status codes that mean "what you typed is wrong", as opposed to "it did not work".
_INPUT_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE}

# Seconds a unary call may take; Verify compares whole databases and may take long.
CALL_TIMEOUT = 60.0
VERIFY_TIMEOUT = 3600.0


class CliError(Exception):
    """A failure to show as one line on stderr, with the exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.message = redact(message)
        self.code = code


def _is_domain_error(err: grpc.RpcError) -> bool:
    try:
        return error_details(err)[0] is not None
    except Exception:  # noqa: BLE001 - a call that never reached the server has no metadata
        return False


class Coordinator:
    """Calls the coordinator at `address`; every failure surfaces as a CliError."""

    def __init__(self, address: str):
        self.address = address
        self._channel = sync_channel(address)
        self.stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def call(self, method: str, request, timeout: float = CALL_TIMEOUT):
        try:
            return getattr(self.stub, method)(request, timeout=timeout)
        except grpc.RpcError as err:
            raise self.translate(err) from None

    def stream(self, method: str, request):
        """A server stream; iterate it inside `with translated(...)` or call translate on errors."""
        return getattr(self.stub, method)(request)

    def translate(self, err: grpc.RpcError) -> CliError:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = (err.details() if hasattr(err, "details") else "") or code.name
        if code == grpc.StatusCode.UNAVAILABLE and not _is_domain_error(err):
            return CliError(f"cannot reach the coordinator at {self.address}; is it running? (make run)")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and not _is_domain_error(err):
            return CliError(f"the coordinator at {self.address} did not answer in time; is it overloaded or stuck?")
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return CliError(f"{details} (set DBMIGRATE_GRPC_TOKEN to the coordinator's token)")
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return CliError(f"the service at {self.address} does not implement this call: {details}")
        return CliError(details, EXIT_USAGE if code in _INPUT_CODES else EXIT_FAILED)
