"""The CLI without a working coordinator: usage errors, malformed input, an unreachable coordinator."""
from __future__ import annotations

import json

import pytest

from tests.cli.helpers import dbmigrate

PW = "Sup3r-secret-pw"
SRC = f"postgresql://app:{PW}@127.0.0.1:5432/shop"
DST = f"postgresql://app:{PW}@127.0.0.1:5432/shop_copy"


def test_help_lists_every_command_and_documents_the_exit_codes():
    r = dbmigrate("--help")
    assert r.code == 0
    for command in ("create", "start", "approve", "deny", "cancel", "rollback", "status", "list", "report",
                    "watch", "migrate", "verify"):
        assert command in r.out
    assert "exit codes:" in r.out and "2  usage or input error" in r.out
    assert "DBMIGRATE_H2OGPTE_API_KEY" in r.out


def test_create_help_shows_the_operator_options():
    r = dbmigrate("create", "--help")
    assert r.code == 0
    for option in ("--source", "--target", "--advisor", "--jobs", "--include", "--exclude", "--name",
                   "--split-threshold", "--replace-target", "--advisor-address", "--advisor-model",
                   "--keep-target-on-failure", "--create-roles", "--no-owner", "--no-privileges"):
        assert option in r.out
    assert "--api-key" not in r.out  # the key is never a flag


@pytest.mark.parametrize("args", [
    ("status", "abc"), ("list",), ("list", "--json"), ("create", "--source", SRC, "--target", DST),
    ("verify", SRC, DST)])
def test_unreachable_coordinator_says_so_in_one_line(args):
    r = dbmigrate(*args, coordinator="127.0.0.1:1")
    expected = 2 if args[0] == "verify" else 1  # verify: 2 = could not compare
    r.assert_clean_error(expected, "cannot reach the coordinator at 127.0.0.1:1; is it running? (make run)")
    assert PW not in r.out + r.err
    assert r.err.count("\n") == 1


def test_the_coordinator_flag_wins_over_the_environment_and_a_bad_address_is_a_usage_error():
    r = dbmigrate("--coordinator", "127.0.0.1:2", "list", coordinator="127.0.0.1:1")
    r.assert_clean_error(1, "127.0.0.1:2")
    r = dbmigrate("list", "--coordinator", "127.0.0.1:3")
    r.assert_clean_error(1, "127.0.0.1:3")
    r = dbmigrate("list", coordinator="no-port-here")
    r.assert_clean_error(2, "'no-port-here' is not HOST:PORT")


@pytest.mark.parametrize("bad, message", [
    (f"mysql://app:{PW}@h/db", "must start with postgresql://"),
    (f"postgresql://app:{PW}@h:notaport/db", "port"),
    ("postgresql://h:5432/db", "user is missing"),
    (f"postgresql://app:{PW}@h:5432/db?sslmode=sometimes", "sslmode"),
])
def test_a_malformed_url_is_an_input_error_that_never_echoes_the_password(bad, message):
    r = dbmigrate("create", "--source", bad, "--target", DST)
    r.assert_clean_error(2, "--source URL", message)
    assert PW not in r.out + r.err


def test_a_stray_url_argument_is_a_usage_error_without_the_password():
    r = dbmigrate("status", "abc", SRC)
    r.assert_clean_error(2, "unrecognized arguments")
    assert PW not in r.out + r.err


def test_deny_without_a_reason_is_refused_before_anything_is_sent():
    r = dbmigrate("deny", "abc")
    r.assert_clean_error(2, "--reason")


@pytest.mark.parametrize("args, message", [
    (("--jobs", "many"), "'many' is not a whole number"),
    (("--jobs", "500"), "out of range"),
    (("--split-threshold", "big"), "is not a size"),
    (("--advisor", "oracle"), "invalid choice"),
])
def test_bad_option_values_are_usage_errors(args, message):
    r = dbmigrate("create", "--source", SRC, "--target", DST, *args)
    r.assert_clean_error(2, message)


def test_h2ogpte_needs_the_key_from_the_environment_not_a_flag():
    r = dbmigrate("create", "--source", SRC, "--target", DST, "--advisor", "h2ogpte",
                  "--advisor-address", "https://h2o.example")
    r.assert_clean_error(2, "DBMIGRATE_H2OGPTE_API_KEY")


def test_report_accepts_only_the_five_agents():
    r = dbmigrate("report", "abc", "planner")
    r.assert_clean_error(2, "invalid choice")


def test_the_whole_migration_prints_as_the_same_json_one_table_at_a_time():
    """--json prints a migration of 20,000 tables converting one table at a time: the text is the
    same as converting it whole."""
    import io

    from cli import render
    from dbmigrate.v1 import coordinator_pb2

    m = coordinator_pb2.Migration(id="abc", name='odd "name"', progress=coordinator_pb2.Progress(tables=3))
    out = io.StringIO()
    render.write_json(m, out)
    assert out.getvalue() == render.to_json(m) + "\n"  # no table
    for i in range(3):
        m.tables.add(table=f'public."t {i}"', rows=i, status="verified", error="ü\n\"")
    out = io.StringIO()
    render.write_json(m, out)
    assert out.getvalue() == render.to_json(m) + "\n"
    assert json.loads(out.getvalue())["tables"][2]["table"] == 'public."t 2"'
