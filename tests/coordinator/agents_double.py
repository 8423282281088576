"""Stand-in agents the coordinator tests control: real gRPC servers with scripted, idempotent answers.

Run as `python -m tests.coordinator.agents_double`; it serves all four agent services, each on its
DBMIGRATE_<AGENT>_ADDR. Behaviour comes from environment variables:
  DOUBLE_UNITS (20), DOUBLE_UNIT_SECONDS (0.05), DOUBLE_RECOMMENDATION (APPROVE|DENY),
  DOUBLE_BLOCKER (a finding code that makes the plan blocked), DOUBLE_JOURNAL (file: one line per unit copied),
  DOUBLE_DISCOVER_ERROR (a message: Discover fails with INVALID_ARGUMENT),
  DOUBLE_SERVE (which agents to stand in for, comma-separated; default all four),
  DOUBLE_VALIDATE_SECONDS (0: how long Validate takes before it answers, without sending anything),
  DOUBLE_DISCOVER_SECONDS (0: how long Discover takes), DOUBLE_DISCOVER_BLOCKER (a finding code Discover
  reports as a BLOCKER), DOUBLE_CALLS (file: a line per Discover and Validate call as it starts and ends).
"""
from __future__ import annotations

import asyncio
import os
import time

from dbmigrate.v1 import agents_pb2, agents_pb2_grpc, common_pb2
from services.common.config import listen_address
from services.common.errors import InvalidInput
from services.common.server import Service, create_server, service_errors

UNITS = int(os.environ.get("DOUBLE_UNITS", "20"))
UNIT_SECONDS = float(os.environ.get("DOUBLE_UNIT_SECONDS", "0.05"))


def _called(what: str) -> None:
    calls = os.environ.get("DOUBLE_CALLS")
    if calls:
        with open(calls, "a") as f:
            f.write(f"{time.monotonic():.3f} {what}\n")


@service_errors(agents_pb2_grpc.DiscoveryServicer)
class Discovery(agents_pb2_grpc.DiscoveryServicer):
    async def Discover(self, request, context):
        _called("discover started")
        await asyncio.sleep(float(os.environ.get("DOUBLE_DISCOVER_SECONDS", "0")))
        if os.environ.get("DOUBLE_DISCOVER_ERROR"):
            raise InvalidInput(os.environ["DOUBLE_DISCOVER_ERROR"])
        findings = [common_pb2.Finding(code=os.environ["DOUBLE_DISCOVER_BLOCKER"], severity=common_pb2.BLOCKER,
                                       message="blocked for the test")] if os.environ.get("DOUBLE_DISCOVER_BLOCKER") \
            else []
        _called("discover ended")
        return common_pb2.DiscoveryReport(summary=f"{UNITS} tables", advisor="rules", findings=findings,
                                          tables=[common_pb2.TableInfo(schema="public", name=f"t{i}", row_estimate=10)
                                                  for i in range(UNITS)])


@service_errors(agents_pb2_grpc.ValidationServicer)
class Validation(agents_pb2_grpc.ValidationServicer):
    async def Validate(self, request, context):
        how = "beside discovery" if request.beside_discovery else f"with {len(request.discovery.findings)} findings"
        _called(f"validate started {how}")
        try:
            await asyncio.sleep(float(os.environ.get("DOUBLE_VALIDATE_SECONDS", "0")))
        except asyncio.CancelledError:
            _called(f"validate cancelled {how}")
            raise
        _called(f"validate ended {how}")
        if any(f.severity == common_pb2.BLOCKER for f in request.discovery.findings):
            return common_pb2.ValidationReport(passed=False, skipped=True, summary="not run: blocked")
        return common_pb2.ValidationReport(passed=True, summary="sample exact", rows_per_second=1000)

    async def Verify(self, request, context):
        return common_pb2.VerifyReport(equal=True, summary="equal")


@service_errors(agents_pb2_grpc.GenerationServicer)
class Generation(agents_pb2_grpc.GenerationServicer):
    async def Generate(self, request, context):
        rec = common_pb2.Recommendation.Value(os.environ.get("DOUBLE_RECOMMENDATION", "APPROVE"))
        findings = []
        if os.environ.get("DOUBLE_BLOCKER"):
            findings.append(common_pb2.Finding(code=os.environ["DOUBLE_BLOCKER"], severity=common_pb2.BLOCKER,
                                               message="blocked for the test"))
        plan = common_pb2.MigrationPlan(jobs=2, tables=[common_pb2.PlannedTable(schema="public", name=f"t{i}", rows=10,
                                                                                parts=1, order=i) for i in range(UNITS)])
        return common_pb2.GenerationReport(risk=common_pb2.RISK_LOW, recommendation=rec, findings=findings, plan=plan,
                                           summary="plan", advisor="rules")


@service_errors(agents_pb2_grpc.ExecutionServicer)
class Execution(agents_pb2_grpc.ExecutionServicer):
    async def Prepare(self, request, context):
        return agents_pb2.PrepareReply(baseline=common_pb2.TargetBaseline(empty=True), pg_dump_version="15")

    async def Execute(self, request, context):
        done = set(request.done.units_done)
        journal = os.environ.get("DOUBLE_JOURNAL")
        if "pre-data" not in request.done.steps_done:
            yield agents_pb2.ExecutionEvent(step_completed=agents_pb2.StepCompleted(step="pre-data"))
        for i in range(UNITS):
            unit = f"public.t{i}"
            if unit in done:
                continue
            await asyncio.sleep(UNIT_SECONDS)
            if journal:
                with open(journal, "a") as f:
                    f.write(f"{request.attempt} {unit}\n")
            yield agents_pb2.ExecutionEvent(table_progress=agents_pb2.TableProgress(table=unit, unit=unit, rows=5,
                                                                                   total_rows=10))
            yield agents_pb2.ExecutionEvent(table_copied=agents_pb2.TableCopied(unit=unit, table=unit, rows=10, parts=1))
            yield agents_pb2.ExecutionEvent(table_verified=agents_pb2.TableVerified(
                result=common_pb2.TableResult(table=unit, source_rows=10, target_rows=10, verified=True)))
        yield agents_pb2.ExecutionEvent(finished=agents_pb2.ExecutionFinished(
            report=common_pb2.ExecutionReport(rows=10 * UNITS, verified=True, summary="all tables verified")))

    async def Rollback(self, request, context):
        return common_pb2.RollbackReport(summary="dropped what the migration created")


async def main() -> None:
    servers = []
    serve = set(os.environ.get("DOUBLE_SERVE", "discovery,validation,generation,execution").split(","))
    for name, servicer, add in (
            ("discovery", Discovery(), agents_pb2_grpc.add_DiscoveryServicer_to_server),
            ("validation", Validation(), agents_pb2_grpc.add_ValidationServicer_to_server),
            ("generation", Generation(), agents_pb2_grpc.add_GenerationServicer_to_server),
            ("execution", Execution(), agents_pb2_grpc.add_ExecutionServicer_to_server)):
        if name not in serve:
            continue
        full = agents_pb2.DESCRIPTOR.services_by_name[name.capitalize()].full_name
        servers.append(await create_server(listen_address(name), [Service(add, servicer, full)]))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
