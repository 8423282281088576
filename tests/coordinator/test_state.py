"""The fold: pure, strict about unknown or out-of-order events, and equal live and replayed."""
from __future__ import annotations

import pytest

from coordinator.eventlog import EventLog
from coordinator.state import OutOfOrderEvent, UnknownEvent, apply, replay
from coordinator.workflow import next_action
from dbmigrate.v1 import agents_pb2, common_pb2, coordinator_pb2, events_pb2 as E


def ev(wid, version, **payload):
    e = E.WorkflowEvent(workflow_id=wid, version=version, seq=version, **payload)
    e.time.FromSeconds(1_700_000_000 + version)
    return e


def happy_path(wid="w1"):
    created = E.MigrationCreated(name="n", source=common_pb2.Connection(host="h", port=5432, dbname="a", user="u"),
                                 target=common_pb2.Connection(host="h", port=5432, dbname="b", user="u"))
    plan = common_pb2.MigrationPlan(tables=[common_pb2.PlannedTable(schema="public", name="t", rows=10, parts=2)])
    return [
        ev(wid, 1, migration_created=created),
        ev(wid, 2, migration_started=E.MigrationStarted()),
        ev(wid, 3, discovery_completed=E.DiscoveryCompleted(report=common_pb2.DiscoveryReport(summary="ok"))),
        ev(wid, 4, validation_completed=E.ValidationCompleted(report=common_pb2.ValidationReport(passed=True))),
        ev(wid, 5, plan_generated=E.PlanGenerated(report=common_pb2.GenerationReport(
            risk=common_pb2.RISK_LOW, recommendation=common_pb2.APPROVE, plan=plan))),
        ev(wid, 6, approval_requested=E.ApprovalRequested()),
        ev(wid, 7, approved=E.Approved(comment="go")),
        ev(wid, 8, target_baseline_recorded=E.TargetBaselineRecorded(baseline=common_pb2.TargetBaseline(empty=True))),
        ev(wid, 9, table_copied=agents_pb2.TableCopied(unit="public.t#1/2", table="public.t", rows=5, parts=2)),
        ev(wid, 10, table_copied=agents_pb2.TableCopied(unit="public.t#2/2", table="public.t", rows=5, parts=2)),
        ev(wid, 11, table_verified=agents_pb2.TableVerified(result=common_pb2.TableResult(
            table="public.t", source_rows=10, target_rows=10, verified=True))),
        ev(wid, 12, execution_finished=agents_pb2.ExecutionFinished(report=common_pb2.ExecutionReport(rows=10))),
        ev(wid, 13, verification_completed=E.VerificationCompleted(report=common_pb2.VerifyReport(equal=True))),
        ev(wid, 14, migration_completed=E.MigrationCompleted(report=common_pb2.ExecutionReport(rows=10))),
    ]


def test_happy_path_phases_and_next_actions():
    wf = None
    seen = []
    for e in happy_path():
        wf = apply(wf, e)
        seen.append((E.Phase.Name(wf.phase), next_action(wf)))
    assert seen[1] == ("DISCOVERING", "discover")
    assert seen[2] == ("VALIDATING", "validate")
    assert seen[5] == ("AWAITING_APPROVAL", None)
    assert seen[7] == ("EXECUTING", "execute")
    assert seen[11] == ("EXECUTING", "verify")
    assert seen[12] == ("EXECUTING", "complete")
    assert seen[13] == ("COMPLETED", None)
    t = wf.table("public.t")
    assert (t.status, t.parts_done, t.parts, t.rows) == ("verified", 2, 2, 10)
    assert set(wf.units_done) == {"public.t#1/2", "public.t#2/2"}


def test_a_small_tables_copy_proof_and_seal_in_one_event_count_as_all_three():
    events = happy_path()[:8]
    events.append(ev("w1", 9, table_verified=agents_pb2.TableVerified(
        result=common_pb2.TableResult(table="public.s", source_rows=3, target_rows=3, verified=True),
        copied=agents_pb2.TableCopied(unit="public.s", table="public.s", rows=3, bytes=120, parts=1),
        sealed=agents_pb2.StepCompleted(step="indexes:public.s", detail="1 indexes and keys"))))
    wf = replay(events)["w1"]
    t = wf.table("public.s")
    assert (t.status, t.rows, t.bytes, t.parts_done) == ("verified", 3, 120, 1)
    assert "public.s" in wf.units_done and "public.s" in wf.tables_verified and "indexes:public.s" in wf.steps_done
    from coordinator.state import checkpoint
    done = checkpoint(wf)  # what a resumed Execute is told: the table is not copied again
    assert "public.s" in done.units_done and "indexes:public.s" in done.steps_done


def test_blocked_plan_and_failed_validation_are_recorded_as_blockers():
    events = happy_path()[:6]
    events[3] = ev("w1", 4, validation_completed=E.ValidationCompleted(report=common_pb2.ValidationReport(passed=False)))
    wf = replay(events)["w1"]
    assert any("VALIDATION_FAILED" in b for b in wf.blockers)


def test_unknown_event_type_is_an_error_not_a_skip():
    events = happy_path()[:2]
    unknown = E.WorkflowEvent(workflow_id="w1", version=3, seq=3)  # no payload this version knows
    with pytest.raises(UnknownEvent, match="does not know"):
        replay([*events, unknown])


def test_out_of_order_event_is_refused():
    events = happy_path()
    with pytest.raises(OutOfOrderEvent):
        replay([events[0], events[2]])


def test_failure_after_touching_target_rolls_back_and_rollback_ends_the_right_way():
    events = happy_path()[:9]
    wf = replay(events)["w1"]
    wf = apply(wf, ev("w1", 10, migration_failed=E.MigrationFailed(error="boom", rollback_pending=True)))
    assert (E.Phase.Name(wf.phase), next_action(wf)) == ("FAILED", "rollback")
    wf = apply(wf, ev("w1", 11, rolled_back=E.RolledBack()))
    assert (E.Phase.Name(wf.phase), next_action(wf), wf.rollback_pending) == ("FAILED", None, False)


def test_replay_from_the_sqlite_log_equals_the_live_fold(tmp_path):
    log = EventLog(tmp_path / "events.db")
    live = None
    for e in happy_path("wf-a"):
        [stored] = log.append("wf-a", live.version if live else 0, [e])
        live = apply(live, stored)
    assert replay(log.iter_all())["wf-a"] == live


def test_settled_migrations_are_kept_compacted_and_replayed_whole_on_request(tmp_path):
    """A coordinator that runs for months holds every finished migration small: per-table state and
    reports leave memory when it settles (the FULL_KEPT newest stay whole), the list shows its summed
    progress, and a request for it, or a command such as a rollback, gets the whole state from the log."""
    import asyncio
    from coordinator import workflow
    from coordinator.secrets import SecretStore
    from coordinator.service import to_migration

    log = EventLog(tmp_path / "e.db")
    engine = workflow.Engine(log, SecretStore(tmp_path / "s.json"), agents=None)

    async def run():
        for wid in ("w1", "w2", "w3"):
            for e in happy_path(wid):
                e.ClearField("seq")
                engine.append(wid, e)
    asyncio.run(run())
    expected = replay(log.iter_all())
    w1 = engine.states["w1"]
    assert all(engine.states[w].compacted for w in ("w1", "w2", "w3")) and not w1.tables and not w1.execution
    assert list(engine._full) == ["w2", "w3"] and workflow.FULL_KEPT == 2  # the newest, whole
    assert engine.get("w1") == expected["w1"] and engine.get("w1").table("public.t").status == "verified"
    # ... for FULL_IDLE_SECONDS after their last use, then only compacted; a request replays them again
    assert engine.drop_idle() == [] and list(engine._full) == ["w3", "w1"]
    engine._full["w3"] = (engine._full["w3"][0], engine._full["w3"][1] - workflow.FULL_IDLE_SECONDS)
    assert engine.drop_idle() == ["w3"] and list(engine._full) == ["w1"]
    assert engine.get("w3") == expected["w3"] and list(engine._full) == ["w1", "w3"]
    listed = to_migration(w1, engine, coordinator_pb2.TABLES_NONE)
    assert listed == to_migration(expected["w1"], engine, coordinator_pb2.TABLES_NONE)
    assert listed.progress.tables_verified == 1 and listed.progress.percent == 100 and not listed.tables
    with pytest.raises(ValueError):
        to_migration(w1, engine)  # the whole migration only from Engine.get

    # After a restart the same: replayed whole, then compacted.
    again = workflow.Engine(log, SecretStore(tmp_path / "s.json"), agents=None)
    again.load()
    assert again.states["w1"].compacted and again.get("w1") == expected["w1"]

    async def rollback():
        engine.append("w1", E.WorkflowEvent(rollback_requested=E.RollbackRequested(reason="undo")))
    asyncio.run(rollback())
    w1 = engine.states["w1"]
    assert not w1.compacted and E.Phase.Name(w1.phase) == "ROLLING_BACK" and w1.table("public.t").rows == 10


def test_the_in_memory_tail_for_watchers_keeps_few_bytes_and_watchers_still_get_every_event(tmp_path):
    """Live watchers are fed from a tail of the newest events; a large report (a migration of 20,000
    tables: 3.7 MB each) leaves the tail soon, and a watcher then reads it from the log: it still gets
    every event once, in order."""
    import asyncio
    from coordinator import workflow
    from coordinator.secrets import SecretStore

    engine = workflow.Engine(EventLog(tmp_path / "e.db"), SecretStore(tmp_path / "s.json"), agents=None)
    big = common_pb2.ExecutionReport(summary="x" * (3 * workflow.RECENT_BYTES // 4))

    async def run():
        events = happy_path("w1")
        events[11] = ev("w1", 12, execution_finished=agents_pb2.ExecutionFinished(report=big))
        events[13] = ev("w1", 14, migration_completed=E.MigrationCompleted(report=big))
        for e in events:
            e.ClearField("seq")
            engine.append("w1", e)
        return [s.seq async for s in engine.watch("w1", 0, follow=False)]

    seqs = asyncio.run(run())
    assert seqs == list(range(1, 15))
    assert engine._recent_bytes == sum(len(s.data) for s in engine._recent) <= workflow.RECENT_BYTES
    assert [s.seq for s in engine._recent] == [13, 14]  # the newest; the first large report left
