"""The schema edge-case corpus (tests/fixtures/corpus): each case migrates exactly, on the same major
version and from 15 to 18 where the 18 server supports what it needs, or is refused with a named blocker.

The cases that migrate are loaded together into one source database (each lives in its own schema),
migrated once per direction through the whole stack with every verification on, and then checked
one by one: no difference in the final verification names the case's schema, and every row of its
tables reads the same on both sides (an independent check: rows as text, not our checksums).
"""
from __future__ import annotations

import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbmigrate.v1 import common_pb2, coordinator_pb2 as C, events_pb2 as E
from services.common.catalog import version_stable
from tests.fixtures.pg import database_factory
from tests.fixtures.stack import Stack
from tests.migrations import create, drive
from tests.versions.test_cross_version import rows_as_text, wait_for_approval

CORPUS = Path(__file__).parents[1] / "fixtures" / "corpus"


@dataclass(frozen=True)
class Case:
    file: Path
    expect: str

    @property
    def name(self) -> str:
        return self.file.stem

    @property
    def schema(self) -> str:
        return "c_" + self.file.stem.split("_", 1)[1]

    @property
    def same_version(self) -> str | None:
        """None: migrates exactly on the same version; else the blocker code it is refused with."""
        m = re.fullmatch(r"blocker (\w+)", self.expect)
        return m.group(1) if m else None

    @property
    def finding(self) -> str | None:
        """A finding (not a blocker) the case must be named by before approval; it still migrates."""
        m = re.fullmatch(r"finding (\w+)", self.expect)
        return m.group(1) if m else None

    @property
    def to18(self) -> str | None:
        m = re.search(r"(?:^|; 18: )blocker (\w+)$", self.expect)
        return m.group(1) if m else None

    @property
    def schemas(self) -> set[str]:
        """The schemas the case creates (its own, and any helper schema beside it)."""
        return set(re.findall(r"^CREATE SCHEMA (?:IF NOT EXISTS )?(\w+)", self.file.read_text(), re.M))

    def mine(self, name: str) -> bool:
        """Whether an object or table name ("schema.x", "kind schema.x") belongs to this case."""
        bare = name.replace('"', "")
        return any(bare.startswith(s + ".") or f" {s}." in bare for s in self.schemas)


def _cases() -> list[Case]:
    out = []
    for f in sorted(CORPUS.glob("*.sql")):
        m = re.search(r"^-- expect: (.+)$", f.read_text(), re.M)
        assert m, f"{f.name} has no expect line"
        out.append(Case(f, m.group(1).strip()))
    return out


CASES = _cases()


def load(url: str, cases: list[Case]) -> None:
    for case in cases:
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(case.file)],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{case.name} does not load: {r.stderr[-500:]}"


@dataclass
class Run:
    source: str
    target: str
    migration: C.Migration
    report: C.Report
    source_rows: dict
    target_rows: dict


def _corpus_roles(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as c:
        return [r[0] for r in c.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'corpus\\_%'")]


def _drop_roles(admin_url: str, db_urls: list[str], roles: list[str]) -> None:
    for url in db_urls:
        try:
            with psycopg.connect(url, autocommit=True) as c:
                have = [r for r in roles if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (r,)).fetchone()]
                if have:
                    c.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(
                        sql.SQL(", ").join(sql.Identifier(r) for r in have)))
        except psycopg.OperationalError:
            pass
    with psycopg.connect(admin_url, autocommit=True) as c:
        for r in roles:
            try:
                c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(r)))
            except psycopg.errors.DependentObjectsStillExist:
                pass  # another run's databases still use it; the last one to end drops it


@pytest.fixture(scope="module")
def corpus_stack(tmp_path_factory, nats_url):
    stack = Stack(tmp_path_factory.mktemp("corpus-stack"), nats_url,
                  {"DBMIGRATE_DISCOVERY_SAMPLE_SECONDS": "0"}).start()
    try:
        yield stack
    finally:
        stack.stop()


def _migrate(stack: Stack, src_url: str, dst_url: str, **options) -> Run:
    ch, stub = stack.coordinator_stub()
    with ch:
        wid = create(stub, src_url, dst_url, **options)
        m = drive(stub, wid, timeout=600)
        report = stub.GetReport(C.GetReportRequest(id=wid), timeout=30)
    ok = E.Phase.Name(m.phase) == "COMPLETED"
    return Run(src_url, dst_url, m, report, rows_as_text(src_url) if ok else {}, rows_as_text(dst_url) if ok else {})


@pytest.fixture(scope="module")
def same_version_run(corpus_stack, pg_admin_url):
    make, cleanup = database_factory(pg_admin_url)
    src, dst = make("corpus15"), make("corpus15t")
    try:
        load(src.url, [c for c in CASES if c.same_version is None])
        yield _migrate(corpus_stack, src.url, dst.url)
    finally:
        _drop_roles(pg_admin_url, [src.url, dst.url], _corpus_roles(pg_admin_url))
        cleanup()


@pytest.fixture(scope="module")
def to18_run(corpus_stack, pg_admin_url, pg18):
    make15, cleanup15 = database_factory(pg_admin_url)
    make18, cleanup18 = database_factory(pg18.url)
    src, dst = make15("corpus1518"), make18("corpus18")
    try:
        load(src.url, [c for c in CASES if c.same_version is None and c.to18 is None])
        # The cases' application roles are on the 15 server only: made on the 18 one by the migration.
        yield _migrate(corpus_stack, src.url, dst.url, create_roles=True)
    finally:
        roles = _corpus_roles(pg18.url)
        _drop_roles(pg18.url, [dst.url], roles)
        _drop_roles(pg_admin_url, [src.url], _corpus_roles(pg_admin_url))
        cleanup18()
        cleanup15()


def check(case: Case, run: Run) -> None:
    assert E.Phase.Name(run.migration.phase) == "COMPLETED", run.migration.error
    v = run.report.verification
    if case.finding:
        named = [f for f in run.report.validation.findings if f.code == case.finding and case.mine(f.object)]
        assert named, f"{case.finding} does not name {case.schema}"
        assert [n for n in v.notes if case.mine(n.name)], "the final verification does not note it"
    mine = [f"{o.kind} {o.name}: {o.difference} {o.detail}" for o in v.objects if case.mine(o.name)]
    assert not mine, mine
    unequal = [t.table for t in v.tables if case.mine(t.table) and not t.equal]
    assert not unequal, unequal
    # each server's quote_ident names the tables: json is a keyword on 18, not on 15
    source = {version_stable(t): rows for t, rows in run.source_rows.items() if case.mine(t)}
    target = {version_stable(t): rows for t, rows in run.target_rows.items() if case.mine(t)}
    assert sorted(target) == sorted(source)
    for t in source:
        assert source[t] == target[t], f"rows of {t} differ"


@pytest.mark.parametrize("case", [c for c in CASES if c.same_version is None], ids=lambda c: c.name)
def test_case_migrates_exactly_on_the_same_version(case, same_version_run):
    check(case, same_version_run)


@pytest.mark.parametrize("case", [c for c in CASES if c.same_version is None and c.to18 is None], ids=lambda c: c.name)
def test_case_migrates_exactly_from_15_to_18(case, to18_run):
    check(case, to18_run)


def test_the_whole_corpus_verifies_equal(same_version_run, to18_run):
    for run in (same_version_run, to18_run):
        assert run.report.verification.equal, run.report.verification.summary


REFUSED = [(c, "15", c.same_version) for c in CASES if c.same_version] + \
          [(c, "18", c.same_version or c.to18) for c in CASES if c.same_version or c.to18]


@pytest.mark.parametrize("case,target,code", REFUSED, ids=lambda x: x.name if isinstance(x, Case) else str(x))
def test_case_is_refused_with_its_blocker(case, target, code, corpus_stack, new_database, new_database18):
    src = new_database("corpusref")
    dst = new_database18("corpusref") if target == "18" else new_database("corpusref")
    load(src.url, [case])
    ch, stub = corpus_stack.coordinator_stub()
    with ch:
        wid = create(stub, src.url, dst.url, create_roles=True)
        m = wait_for_approval(stub, wid)
        report = stub.GetReport(C.GetReportRequest(id=wid), timeout=30)
    assert E.Phase.Name(m.phase) == "AWAITING_APPROVAL", m.error
    assert m.recommendation == common_pb2.DENY
    codes = {f.code for f in report.generation.findings if f.severity == common_pb2.BLOCKER}
    assert code in codes, (codes, report.generation.summary)
    with psycopg.connect(dst.url, autocommit=True) as c:  # nothing was copied
        assert c.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (case.schema,)).fetchone()[0] == 0
