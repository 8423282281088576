"""The finishing state machine on its own: which items a table's finishing hands out, in what order."""
from __future__ import annotations

from services.execution.finishing import Finishing


def run_all(f: Finishing, items: list, order: list) -> None:
    """Runs items breadth first, as idle workers would take them, recording the order."""
    while items:
        kind, arg = items.pop(0)
        order.append((kind, arg))
        if kind == "check":
            items += f.checked(arg)
        elif kind == "build":
            items += f.built(arg[0])
        elif kind == "analyze":
            items += f.analyzed(arg)
        elif kind == "fk":
            items += f.key_done(arg)


def test_a_table_is_checked_beside_its_builds_then_analyzed_then_sealed():
    f = Finishing()
    items = f.copied("t", 2, check_first=True, analyzed=False)
    assert items == [("check", "t"), ("build", ("t", 0)), ("build", ("t", 1))]
    assert f.built("t") == []                      # one build left: nothing new
    assert f.built("t") == [("analyze", "t")]      # builds done: ANALYZE, beside the check
    assert f.analyzed("t") == []                   # still checking
    assert f.checked("t") == [("seal", "t")]       # checked and analyzed: sealed, once
    assert f.checked("t") == []


def test_key_ordered_parts_are_checked_after_their_builds():
    f = Finishing()
    assert f.copied("p", 1, check_first=False, analyzed=False) == [("build", ("p", 0))]
    assert f.built("p") == [("check", "p"), ("analyze", "p")]


def test_a_small_table_without_builds_goes_straight_to_its_seal_once_checked():
    f = Finishing()
    assert f.copied("s", 0, check_first=True, analyzed=True) == [("check", "s")]
    assert f.checked("s") == [("seal", "s")]


def test_foreign_keys_wait_for_both_tables_run_side_by_side_and_before_the_seals():
    f = Finishing(keys={"fk1": ("child", "parent"), "fk2": ("other", "parent")})
    order: list = []
    items = f.copied("parent", 1, check_first=True, analyzed=False)
    run_all(f, items, order)
    assert ("seal", "parent") not in order        # its keys are not in yet
    assert not [i for i in order if i[0] == "fk"]  # the referencing tables are not copied yet
    items = f.copied("child", 0, check_first=True, analyzed=False) + f.copied("other", 0, check_first=True,
                                                                              analyzed=False)
    run_all(f, items, order)
    fks = [i for i, x in enumerate(order) if x[0] == "fk"]
    assert [order[i][1] for i in fks] == ["fk1", "fk2"]
    assert all(order.index(("seal", t)) > fks[-1] for t in ("parent", "child", "other"))
    assert sorted(x[1] for x in order if x[0] == "seal") == ["child", "other", "parent"]  # each sealed once


def test_keys_to_one_table_run_together_keys_on_one_table_one_at_a_time():
    f = Finishing(keys={"a": ("child", "parent"), "b": ("other", "parent"), "c": ("child", "other")})
    handed = [i for t in ("parent", "child", "other") for i in f.copied(t, 0, check_first=True, analyzed=True)]
    keys = [arg for kind, arg in handed if kind == "fk"]
    assert keys == ["a", "b"]         # both keys to parent at once; c waits: child's key a runs
    after_a = f.key_done("a")
    assert ("fk", "c") in after_a     # child is free again
    assert ("seal", "child") not in after_a and ("seal", "parent") not in after_a  # b and c still run
    for t in ("parent", "child", "other"):
        f.checked(t)
    assert ("seal", "parent") in f.key_done("b")
    last = f.key_done("c")
    assert ("seal", "child") in last and ("seal", "other") in last


def test_a_key_to_a_ready_table_is_validated_beside_the_check_and_before_the_builds():
    """pgbench: branches is in and built when accounts' copy ends; accounts' key to it needs no index
    of accounts, so it runs beside accounts' check and accounts' builds wait for it (their locks
    exclude each other). history's key to accounts still waits for accounts' primary key."""
    f = Finishing(keys={"acc_branch": ("accounts", "branches"), "acc_teller": ("accounts", "tellers"),
                        "hist_acc": ("history", "accounts")})
    order: list = []
    for small in ("branches", "tellers", "history"):
        run_all(f, f.copied(small, 1 if small != "history" else 0, check_first=True, analyzed=True), order)
    assert not [i for i in order if i[0] == "fk"]
    items = f.copied("accounts", 2, check_first=True, analyzed=False)
    assert items == [("check", "accounts"), ("fk", "acc_branch")]  # one key at a time on accounts, no build yet
    assert f.checked("accounts") == []
    # the builds still wait for the second key; branches, its key in, is sealed
    assert f.key_done("acc_branch") == [("fk", "acc_teller"), ("seal", "branches")]
    after = f.key_done("acc_teller")
    assert ("build", ("accounts", 0)) in after and ("build", ("accounts", 1)) in after
    assert ("seal", "tellers") in after
    assert f.built("accounts") == []
    assert f.built("accounts") == [("analyze", "accounts")]
    assert f.analyzed("accounts") == [("fk", "hist_acc")]        # to accounts: after its key is built
    last = f.key_done("hist_acc")
    assert ("seal", "accounts") in last and ("seal", "history") in last


def test_a_table_without_builds_or_with_keys_to_tables_not_ready_keeps_the_order():
    f = Finishing(keys={"k": ("child", "parent")})
    assert f.copied("child", 1, check_first=True, analyzed=False) == [("check", "child"), ("build", ("child", 0))]
    assert f.built("child") == [("analyze", "child")]
    f2 = Finishing(keys={"self": ("tree", "tree")})
    assert f2.copied("tree", 1, check_first=True, analyzed=False) == [("check", "tree"), ("build", ("tree", 0))]


def test_a_key_to_a_table_whose_seal_makes_its_key_waits_for_that_seal_and_holds_no_seal():
    """A small lookup table's primary key is made by its seal: a key to it waits for the seal, and the
    seal does not wait for the key."""
    f = Finishing(keys={"acc_branch": ("accounts", "branches")}, made_at_seal={"branches"})
    assert f.copied("branches", 0, check_first=True, analyzed=True) == [("check", "branches")]
    assert f.checked("branches") == [("seal", "branches")]   # not held by the key to it
    assert f.sealed("branches") == []                        # accounts is not in yet
    assert f.copied("accounts", 1, check_first=True, analyzed=False) == [("check", "accounts"), ("fk", "acc_branch")]
    assert f.key_done("acc_branch") == [("build", ("accounts", 0))]

    late = Finishing(keys={"acc_branch": ("accounts", "branches")}, made_at_seal={"branches"})
    assert late.copied("accounts", 1, check_first=True, analyzed=False) == [("check", "accounts"),
                                                                             ("build", ("accounts", 0))]
    late.copied("branches", 0, check_first=True, analyzed=True)
    late.checked("branches")
    assert late.sealed("branches") == []                     # accounts is not built yet
    assert late.built("accounts") == [("analyze", "accounts")]
    assert late.analyzed("accounts") == [("fk", "acc_branch")]
    late.checked("accounts")
    assert late.key_done("acc_branch") == [("seal", "accounts")]
