"""The `dbmigrate` command: a gRPC client of the coordinator for operators and scripts."""
from __future__ import annotations

import argparse
import os
import re
import sys

from cli import render
from cli.client import (EXIT_FAILED, EXIT_NEEDS_APPROVAL, EXIT_OK, EXIT_SOURCE_MOVED, EXIT_SYNCING, EXIT_USAGE,
                        VERIFY_TIMEOUT, CliError, Coordinator)
from cli.watch import EventPrinter, follow
from dbmigrate.v1 import common_pb2, coordinator_pb2 as C, events_pb2
from services.common.config import MAX_JOBS
from services.common.errors import InvalidInput
from services.common.logs import redact, register_secret
from services.common.pg import parse_url

DEFAULT_COORDINATOR = "localhost:50050"
AGENTS = ("discovery", "validation", "generation", "execution", "verification")

EPILOG = """\
exit codes:
  0  success (verify: the databases are equal)
  1  the operation failed: wrong state for the command, the migration failed, was denied or cancelled,
     the coordinator cannot be reached (verify: the databases differ)
  2  usage or input error: bad arguments, malformed URL, unknown migration id (verify: could not compare)
  3  migrate stopped at AWAITING_APPROVAL without approving (no --approve, or the recommendation is DENY)
  4  migrate/watch: COMPLETED, the target equals the source's snapshot, but the source moved on after it
     (the writes since are not on the target: use --online, or roll back)
  5  migrate --online: copied and verified per table, now SYNCING; run `dbmigrate cutover ID`

environment:
  DBMIGRATE_COORDINATOR      coordinator address HOST:PORT (default localhost:50050; --coordinator wins)
  DBMIGRATE_GRPC_TOKEN       token sent as 'authorization: Bearer ...' when the coordinator requires one
  DBMIGRATE_TLS_CA           CA file: talk TLS to the coordinator
  DBMIGRATE_H2OGPTE_API_KEY  API key for --advisor h2ogpte (never a flag: it would land in shell history)
  DBMIGRATE_H2OGPTE_ADDRESS  default for --advisor-address

URLs are libpq URLs: postgresql://user:password@host:port/dbname?sslmode=require. The coordinator keeps
the passwords in its secret store; dbmigrate never prints them back.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that never echoes a password from a mistyped URL in its usage errors."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"dbmigrate: {redact(message)}\n")


def _size(text: str) -> int:
    """Bytes from 1048576, 64MB, 1.5GiB, 512k."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?[bB])?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (for example 268435456, 256MB or 1GiB)")
    factor = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}[m.group(2).lower()]
    return int(float(m.group(1)) * factor)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def _jobs(text: str) -> int:
    value = _count(text)
    if value > MAX_JOBS:
        raise argparse.ArgumentTypeError(f"{value} is out of range (0 = number of cores, at most {MAX_JOBS})")
    return value


def _migration_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("--source", required=True, metavar="URL", help="source database (libpq URL)")
    c.add_argument("--target", required=True, metavar="URL", help="target database (libpq URL)")
    c.add_argument("--name", default="", help="a name for people (default: source -> target)")
    c.add_argument("--advisor", choices=("rules", "h2ogpte"), default="rules",
                   help="who analyses the risk: the embedded rules (default) or h2oGPTe")
    c.add_argument("--advisor-address", default=os.environ.get("DBMIGRATE_H2OGPTE_ADDRESS", ""),
                   metavar="URL", help="h2oGPTe base URL without /api (env DBMIGRATE_H2OGPTE_ADDRESS); "
                   "the API key comes only from env DBMIGRATE_H2OGPTE_API_KEY")
    c.add_argument("--advisor-model", default="", metavar="LLM", help="h2oGPTe model (default auto)")
    c.add_argument("--advisor-timeout", type=_count, default=0, metavar="SECONDS",
                   help="h2oGPTe timeout per question (default: the generation agent's)")
    c.add_argument("--jobs", type=_jobs, default=0, metavar="N", help="parallel copy workers (0 = cores)")
    c.add_argument("--include", action="append", default=[], metavar="PATTERN",
                   help="copy only matching tables (and views, materialized views, foreign tables), "
                        "'schema.table' glob (* and ?); repeatable")
    c.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="skip matching tables (and views, materialized views, foreign tables), "
                        "'schema.table' glob; repeatable")
    c.add_argument("--split-threshold", type=_size, default=0, metavar="SIZE",
                   help="copy tables larger than this in parts (e.g. 256MB; default 1GiB)")
    c.add_argument("--sample-rows", type=_count, default=0, metavar="N",
                   help="rows per table in the validation sample (default: the agent's)")
    c.add_argument("--replace-target", action="store_true",
                   help="empty and refill target tables that already hold rows (default: refuse)")
    c.add_argument("--keep-target-on-failure", action="store_true",
                   help="leave what was copied in place when the migration fails (default: roll back)")
    c.add_argument("--skip-final-verify", action="store_true",
                   help="skip the whole-database comparison after the copy (tables are still verified)")
    c.add_argument("--create-roles", action="store_true",
                   help="create the roles the database needs (owners, grantees, policy roles) that the target lacks")
    c.add_argument("--no-owner", action="store_true",
                   help="objects belong to the target user instead of their owners (recorded as a finding)")
    c.add_argument("--no-privileges", action="store_true",
                   help="leave GRANT/REVOKE and default privileges out (recorded as a finding)")
    c.add_argument("--online", action="store_true",
                   help="keep the source writable: copy from a replication slot's snapshot, stream the changes "
                        "(SYNCING), then `dbmigrate cutover ID` verifies and completes")

def _table_filter(c: argparse.ArgumentParser) -> None:
    c.add_argument("--tables", metavar="PATTERN", default=None,
                   help="print the lines of the tables matching this 'schema.table' glob (with more than "
                        "50 tables the others are summed up in a line now and then); failures always show")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS lets the option stand before or after the command without one position erasing the other.
    common.add_argument("--coordinator", metavar="HOST:PORT", default=argparse.SUPPRESS,
                        help="coordinator address (env DBMIGRATE_COORDINATOR, default localhost:50050)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print machine-readable JSON (protobuf JSON, proto field names)")

    p = _Parser(prog="dbmigrate", description="Migrate a whole PostgreSQL database through the DBMigrate "
                "coordinator: discover, validate a sample, plan, wait for approval, copy, verify.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                   help="coordinator address (env DBMIGRATE_COORDINATOR, default localhost:50050)")
    p.add_argument("--json", action="store_true", default=False, help="print machine-readable JSON")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common], epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    c = command("create", "create a migration and print its id")
    _migration_options(c)
    c.add_argument("--start", action="store_true", help="start it right away")

    for name, text in (("start", "start a created migration"), ("status", "show a migration"),
                       ("watch", "follow a migration's events until it ends or waits for approval")):
        c = command(name, text)
        c.add_argument("id", metavar="ID")
        if name == "watch":
            _table_filter(c)
    c = command("approve", "approve a migration that waits for approval")
    c.add_argument("id", metavar="ID")
    c.add_argument("--comment", default="", help="why, for the record")
    c = command("deny", "deny a migration that waits for approval")
    c.add_argument("id", metavar="ID")
    c.add_argument("--reason", required=True, help="why (required)")
    c = command("cancel", "cancel a migration (a running copy is stopped and the target rolled back)")
    c.add_argument("id", metavar="ID")
    c.add_argument("--reason", default="", help="why, for the record")
    c = command("rollback", "drop what a COMPLETED, FAILED or CANCELLED migration created in the target")
    c.add_argument("id", metavar="ID")
    c.add_argument("--reason", default="", help="why, for the record")
    c = command("cutover", "online: once the application's writes are stopped, wait for the target to apply the "
                "last change, set the sequences, verify everything and complete (exit 0 only then)")
    c.add_argument("id", metavar="ID")
    c = command("list", "list migrations, newest first")
    c.add_argument("--limit", type=_count, default=0, help="at most this many (0 = all)")
    c = command("report", "show the agents' reports of a migration")
    c.add_argument("id", metavar="ID")
    c.add_argument("agent", nargs="?", choices=AGENTS, metavar="AGENT",
                   help=f"only this report: {', '.join(AGENTS)}")
    c = command("migrate", "create, start and follow a migration to its end; approves only with --approve "
                "and only when the recommendation is APPROVE")
    _migration_options(c)
    c.add_argument("--approve", action="store_true",
                   help="approve automatically if (and only if) the recommendation is APPROVE")
    c.add_argument("--comment", default="", help="approval comment (with --approve)")
    _table_filter(c)
    c = command("supply-secrets", "give a coordinator that lost its secret store a migration's passwords again")
    c.add_argument("id", metavar="ID")
    c.add_argument("--source", metavar="URL", default="", help="source URL with the password")
    c.add_argument("--target", metavar="URL", default="", help="target URL with the password")
    c.add_argument("--advisor-key-from-env", action="store_true",
                   help="also send the h2oGPTe API key from DBMIGRATE_H2OGPTE_API_KEY")
    c = command("verify", "compare two whole databases (exit 0 equal, 1 differ, 2 could not compare)")
    c.add_argument("source", metavar="SOURCE_URL")
    c.add_argument("target", metavar="TARGET_URL")
    c.add_argument("--include", action="append", default=[], metavar="PATTERN", help="compare only these tables")
    c.add_argument("--exclude", action="append", default=[], metavar="PATTERN", help="skip these tables")
    c.add_argument("--max-rows-reported", type=_count, default=0, metavar="N",
                   help="differing rows listed per table (default: the agent's)")
    return p


# ---- helpers ----

def _check_url(url: str, what: str) -> str:
    try:
        conn = parse_url(url, what)
    except InvalidInput as err:
        raise CliError(str(err), EXIT_USAGE) from None
    register_secret(conn.password)
    return url.strip()


def _print_json(message) -> None:
    print(render.to_json(message))


def _print_whole(coord: Coordinator, wid: str) -> None:
    """The migration with every table, for --json (a followed migration is asked without them)."""
    render.write_json(coord.call("GetMigration", C.MigrationRef(id=wid, tables=C.TABLES_ALL)), sys.stdout)


def _create_request(args, start: bool) -> C.CreateMigrationRequest:
    source = _check_url(args.source, "--source URL")
    target = _check_url(args.target, "--target URL")
    options = common_pb2.MigrationOptions(
        jobs=args.jobs, include=args.include, exclude=args.exclude, split_threshold_bytes=args.split_threshold,
        sample_rows=args.sample_rows, keep_target_on_failure=args.keep_target_on_failure,
        skip_final_verify=args.skip_final_verify, create_roles=args.create_roles, no_owner=args.no_owner,
        no_privileges=args.no_privileges, online=args.online,
        on_target_not_empty=common_pb2.REPLACE if args.replace_target else common_pb2.REFUSE)
    advisor = common_pb2.AdvisorConfig(kind=common_pb2.RULES, timeout_seconds=args.advisor_timeout)
    if args.advisor == "h2ogpte":
        key = os.environ.get("DBMIGRATE_H2OGPTE_API_KEY", "")
        if not key:
            raise CliError("--advisor h2ogpte needs the API key in the environment variable "
                           "DBMIGRATE_H2OGPTE_API_KEY (never on the command line)", EXIT_USAGE)
        if not args.advisor_address:
            raise CliError("--advisor h2ogpte needs --advisor-address https://HOST (or DBMIGRATE_H2OGPTE_ADDRESS)",
                           EXIT_USAGE)
        register_secret(key)
        advisor = common_pb2.AdvisorConfig(kind=common_pb2.H2OGPTE, address=args.advisor_address,
                                           model=args.advisor_model, api_key=key,
                                           timeout_seconds=args.advisor_timeout)
    return C.CreateMigrationRequest(source_url=source, target_url=target, options=options, advisor=advisor,
                                    name=args.name, start=start)


def _report(coord: Coordinator, wid: str, agent: str = "") -> C.Report:
    return coord.call("GetReport", C.GetReportRequest(id=wid, agent=agent))


def _completed_and_verified(coord: Coordinator, m: C.Migration, *, report: bool = True
                            ) -> tuple[bool, C.Report | None]:
    """Whether the coordinator says the migration COMPLETED proven, and (with `report`) the report to
    print: the final verification's, or the execution's when it was skipped."""
    if m.phase != events_pb2.COMPLETED:
        return False, None
    if not report:
        return m.verified, None
    # Only the report it prints: all of them are 1.7 MB for 2,000 tables (the discovery's 0.7 MB).
    shown = _report(coord, m.id, "verification")
    if not shown.HasField("verification"):
        shown = _report(coord, m.id, "execution")
    return m.verified, shown


# ---- commands ----

def cmd_create(coord: Coordinator, args) -> int:
    m = coord.call("CreateMigration", _create_request(args, start=args.start))
    if args.json:
        _print_json(m)
    else:
        print(m.id)
    return EXIT_OK


def _simple(method: str, make_request):
    def run(coord: Coordinator, args) -> int:
        m = coord.call(method, make_request(args))
        if args.json:
            _print_json(m)
        else:
            print(f"migration {m.id}: {render.phase(m.phase)}")
            hint = render.next_step(m)
            if hint:
                print(hint)
        return EXIT_OK
    return run


cmd_start = _simple("StartMigration", lambda a: C.MigrationRef(id=a.id))
cmd_approve = _simple("Approve", lambda a: C.ApproveRequest(id=a.id, comment=a.comment))
cmd_deny = _simple("Deny", lambda a: C.DenyRequest(id=a.id, reason=a.reason))
cmd_cancel = _simple("Cancel", lambda a: C.CancelRequest(id=a.id, reason=a.reason))
cmd_rollback = _simple("Rollback", lambda a: C.RollbackMigrationRequest(id=a.id, reason=a.reason))


def cmd_status(coord: Coordinator, args) -> int:
    if args.json:  # the whole migration, every table included; the text shows the summary
        _print_whole(coord, args.id)
    else:
        print(render.migration(coord.call("GetMigration", C.MigrationRef(id=args.id, tables=C.TABLES_NONE))))
    return EXIT_OK


def cmd_list(coord: Coordinator, args) -> int:
    r = coord.call("ListMigrations", C.ListMigrationsRequest(limit=args.limit))
    if args.json:
        _print_json(r)
    else:
        print(render.migration_list(r.migrations))
    return EXIT_OK


def cmd_report(coord: Coordinator, args) -> int:
    r = _report(coord, args.id, args.agent or "")
    if args.json:
        _print_json(r)
    else:
        print(render.report(r, args.agent or ""))
    return EXIT_OK


def _outcome(m: C.Migration) -> int:
    """The exit code of a followed migration, from what the coordinator says of it."""
    if m.phase == events_pb2.COMPLETED:
        return EXIT_SOURCE_MOVED if m.source_moved else EXIT_OK
    if m.phase == events_pb2.SYNCING:
        return EXIT_SYNCING
    return EXIT_OK if m.phase == events_pb2.AWAITING_APPROVAL else EXIT_FAILED


def cmd_cutover(coord: Coordinator, args) -> int:
    m = coord.call("Cutover", C.CutoverRequest(id=args.id))
    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    say(f"migration {m.id}: cutover requested")
    printer = EventPrinter(sys.stderr if args.json else sys.stdout)
    from_seq = m.last_seq - 1
    m = follow(coord, m.id, printer, from_seq=from_seq, stop_at_approval=False)
    if args.json:
        _print_whole(coord, m.id)
    ok, _ = _completed_and_verified(coord, m, report=False)
    if ok:
        say(f"migration {m.id} COMPLETED: cut over and verified ({m.cutover})")
        return EXIT_OK
    print(f"dbmigrate: migration {m.id} is {render.phase(m.phase)}: " + (m.cutover or m.error or "not completed"),
          file=sys.stderr)
    return EXIT_FAILED


def cmd_watch(coord: Coordinator, args) -> int:
    printer = EventPrinter(sys.stdout, as_json=args.json, tables=args.tables)
    m = follow(coord, args.id, printer)
    if not args.json:
        print(f"migration {m.id}: {render.phase(m.phase)}" + (f": {m.error}" if m.error else ""))
        hint = render.next_step(m)
        if hint:
            print(hint)
    return _outcome(m)


def cmd_migrate(coord: Coordinator, args) -> int:
    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    m = coord.call("CreateMigration", _create_request(args, start=True))
    args.id = m.id  # named in the message if the operator interrupts the wait
    say(f"migration {m.id} created and started ({m.source_url} -> {m.target_url})")
    # With --json, stdout carries only the final JSON; the progress goes to stderr.
    printer = EventPrinter(sys.stderr if args.json else sys.stdout, tables=args.tables)
    m = follow(coord, m.id, printer, stop_at_approval=True)
    if m.phase == events_pb2.AWAITING_APPROVAL:
        rec = render.recommendation(m.recommendation)
        if args.approve and m.recommendation == common_pb2.APPROVE:
            comment = args.comment or "approved by `dbmigrate migrate --approve` (recommendation APPROVE)"
            m = coord.call("Approve", C.ApproveRequest(id=m.id, comment=comment))
            say(f"approved automatically: --approve was given and the recommendation is APPROVE "
                f"(risk {render.risk(m.risk)})")
            m = follow(coord, m.id, printer, from_seq=m.last_seq, stop_at_approval=False)
        else:
            if args.json:
                _print_whole(coord, m.id)
            why = ("the recommendation is " + rec) if args.approve else "--approve was not given"
            print(f"dbmigrate: migration {m.id} waits for approval (recommendation {rec}, risk "
                  f"{render.risk(m.risk)}); not approved automatically because {why}. Read `dbmigrate report "
                  f"{m.id}`, then `dbmigrate approve {m.id}` or `dbmigrate deny {m.id} --reason TEXT`",
                  file=sys.stderr)
            return EXIT_NEEDS_APPROVAL
    ok, report = _completed_and_verified(coord, m, report=not args.json)
    if args.json:  # the whole migration, every table included
        _print_whole(coord, m.id)
    elif report is not None:
        print()
        print(render.verification(report.verification) if report.HasField("verification")
              else render.execution(report.execution))
        if m.timings:
            print()
            print(render.timings(m.timings))
    if ok and m.source_moved:
        print(f"dbmigrate: migration {m.id} COMPLETED: the target equals the source's snapshot, but the source moved "
              f"on after it: {'; '.join(m.source_moved[:5])}" + (f"; and {len(m.source_moved) - 5} more"
                                                                 if len(m.source_moved) > 5 else "")
              + f". Those writes are not on the target: migrate again with --online to carry them, or `dbmigrate "
              f"rollback {m.id}`", file=sys.stderr)
        return EXIT_SOURCE_MOVED
    if ok:
        say(f"migration {m.id} COMPLETED and verified")
        return EXIT_OK
    if m.phase == events_pb2.SYNCING:
        say(f"migration {m.id} SYNCING: copied and verified table by table; the source's writes stream to the "
            f"target. Stop the application's writes, then run `dbmigrate cutover {m.id}`")
        return EXIT_SYNCING
    if m.phase == events_pb2.COMPLETED:
        print(f"dbmigrate: migration {m.id} completed but the final verification did not prove the target equal; "
              f"see `dbmigrate report {m.id} verification`", file=sys.stderr)
    else:
        print(f"dbmigrate: migration {m.id} ended {render.phase(m.phase)}" + (f": {m.error}" if m.error else "")
              + (f" ({m.deny_reason})" if m.deny_reason else ""), file=sys.stderr)
    return EXIT_FAILED


def cmd_supply_secrets(coord: Coordinator, args) -> int:
    passwords = {}
    for role, url in (("source", args.source), ("target", args.target)):
        if url:
            _check_url(url, f"--{role} URL")
            passwords[f"{role}_password"] = parse_url(url).password
    key = os.environ.get("DBMIGRATE_H2OGPTE_API_KEY", "") if args.advisor_key_from_env else ""
    if args.advisor_key_from_env and not key:
        raise CliError("--advisor-key-from-env: DBMIGRATE_H2OGPTE_API_KEY is not set", EXIT_USAGE)
    if not any(passwords.values()) and not key:
        raise CliError("nothing to supply: give --source/--target URLs that carry passwords, or "
                       "--advisor-key-from-env", EXIT_USAGE)
    register_secret(key)
    m = coord.call("SupplySecrets", C.SupplySecretsRequest(id=args.id, advisor_api_key=key, **passwords))
    if args.json:
        _print_json(m)
    else:
        print(f"migration {m.id}: {render.phase(m.phase)}; secrets "
              + ("still missing (supply the rest)" if m.secrets_missing else "complete"))
    return EXIT_OK


def cmd_verify(coord: Coordinator, args) -> int:
    try:
        source = _check_url(args.source, "SOURCE_URL")
        target = _check_url(args.target, "TARGET_URL")
        r = coord.call("VerifyDatabases", C.VerifyDatabasesRequest(
            source_url=source, target_url=target, max_rows_reported=args.max_rows_reported,
            options=common_pb2.MigrationOptions(include=args.include, exclude=args.exclude)), timeout=VERIFY_TIMEOUT)
    except CliError as err:
        err.code = EXIT_USAGE  # verify's contract: 2 = could not compare, whatever the reason
        raise
    if args.json:
        _print_json(r)
    else:
        print(render.verification(r))
    return EXIT_OK if r.equal else EXIT_FAILED


COMMANDS = {
    "create": cmd_create, "start": cmd_start, "approve": cmd_approve, "deny": cmd_deny, "cancel": cmd_cancel,
    "rollback": cmd_rollback, "status": cmd_status, "list": cmd_list, "report": cmd_report, "watch": cmd_watch,
    "migrate": cmd_migrate, "cutover": cmd_cutover, "verify": cmd_verify, "supply-secrets": cmd_supply_secrets,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.json = bool(getattr(args, "json", False))
    address = (args.coordinator or os.environ.get("DBMIGRATE_COORDINATOR") or DEFAULT_COORDINATOR).strip()
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        print(f"dbmigrate: coordinator address {address!r} is not HOST:PORT (for example localhost:50050); "
              "check --coordinator or DBMIGRATE_COORDINATOR", file=sys.stderr)
        return EXIT_USAGE
    try:
        coord = Coordinator(address)
    except (OSError, ValueError) as err:
        print(f"dbmigrate: cannot use the coordinator address {address!r}: {redact(str(err))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](coord, args)
    except CliError as err:
        print(f"dbmigrate: {err.message}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        wid = getattr(args, "id", "")
        print("\ndbmigrate: interrupted" + (f"; migration {wid} goes on in the coordinator "
                                            f"(`dbmigrate watch {wid}`)" if wid else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as err:  # noqa: BLE001 - a bug must not show the user a traceback
        print(f"dbmigrate: internal error ({type(err).__name__}: {redact(str(err))[:300]}); the migration itself, "
              "if any, goes on in the coordinator. Please report this with the command you ran", file=sys.stderr)
        return EXIT_FAILED
    finally:
        coord.close()


if __name__ == "__main__":
    sys.exit(main())
