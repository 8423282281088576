"""The shared catalog reader sees what a copy needs, whatever the names."""
from services.common.catalog import list_tables, matches


def test_list_tables_handles_awkward_names_generated_and_dropped_columns(new_database):
    db = new_database("cat")
    db.execute('''
        CREATE SCHEMA "My Schema";
        CREATE TABLE "My Schema"."select" (id bigint PRIMARY KEY, "quote""d" text, gone int,
                                           twice int GENERATED ALWAYS AS (id * 2) STORED);
        ALTER TABLE "My Schema"."select" DROP COLUMN gone;
        CREATE TYPE mood AS ENUM ('ok', 'sad');
        CREATE TABLE public.nokey (m mood, v int);
        INSERT INTO "My Schema"."select" (id, "quote""d") VALUES (1, 'a');
    ''')
    with db.connect() as c:
        tables = {(t.schema, t.name): t for t in list_tables(c)}
    sel = tables[("My Schema", "select")]
    assert sel.primary_key == ("id",) and sel.int_key == "id"
    assert sel.all_columns == ["id", 'quote"d', "twice"]
    assert sel.copy_columns == ["id", 'quote"d']
    assert sel.binary_ok
    assert sel.qualified == '"My Schema"."select"'
    nokey = tables[("public", "nokey")]
    assert nokey.primary_key == () and nokey.int_key is None and not nokey.binary_ok


def test_patterns():
    assert matches("sales", "orders", ["sales"], [])
    assert matches("sales", "orders", ["sales.*"], ["sales.tmp_*"])
    assert not matches("sales", "tmp_x", ["sales.*"], ["sales.tmp_*"])
    assert not matches("hr", "people", ["sales"], [])
