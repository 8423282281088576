"""Finishing a copied table: its index builds, its check, ANALYZE, early foreign keys and the seal.

An explicit state machine, apart from the databases (the runner runs the items it hands out, and
tells it when each is done):

- every index build is an item of its own (a build takes a SHARE lock, so it runs beside the
  table's other builds and its check);
- the check (rows and checksum against the source) reads the table: it runs first, beside the
  builds; for a table copied in key-ordered parts it waits for the builds (it reads along the key's
  index);
- ANALYZE, once the builds are done (expression indexes have statistics of their own), beside the
  check; a small table is analyzed with others at the end instead (`analyzed` from the start);
- a foreign key between two tables of the run is validated as soon as both are built and
  analyzed, and before either table is sealed (its exclusive lock would wait behind the
  validation). It is added NOT VALID, then validated (services.execution.tables): the validation
  locks the referenced table only in ROW SHARE mode, so keys to one table are validated side by
  side; two keys on one referencing table would wait for each other's lock, so those run one at a
  time;
- except a key whose referenced table is ready when its referencing table's copy ends: it needs
  no index of the referencing table, so it is validated first, beside that table's check, and
  the table's builds wait for it (a build's SHARE lock and the validation's SHARE UPDATE EXCLUSIVE
  exclude each other). The builds then keep both cores busy where the key's scan ran alone after
  them: pgbench -s 40, the key on pgbench_accounts (4,000,000 rows, 0.9-1.4 s) beside the check
  instead of after the primary key's build;
- a key to a table whose own keys its seal makes (a small table's primary key is made by ALTER
  TABLE at the seal, not built beside its check) waits for that seal instead; such a table's seal
  waits for no key to it (the runner leaves keys on such a table to post-data, so no two seals
  wait for each other). Keys to small lookup tables are validated in the data phase, beside the
  other tables' copies, not one after another in post-data;
- the seal (keys attached to their indexes, the constraints that lock the table, the table's step
  recorded) comes last, once the table is checked, analyzed and its keys are in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable

# What the runner is asked to run: (kind, argument).
#   ("check", table)  ("build", (table, index))  ("analyze", table)  ("fk", key)  ("seal", table)
Item = tuple[str, object]


@dataclass
class TableState:
    builds: int                  # index builds not done yet
    check: str                   # waiting (for the builds), queued, done
    analyzed: bool
    analyze_queued: bool
    fks: int                     # early foreign keys on or to the table not done yet
    seal_queued: bool = False
    sealed: bool = False
    held_builds: int = 0         # builds handed out once the keys validated before them are done
    keys_first: set = field(default_factory=set)  # those keys


@dataclass
class Finishing:
    """`keys`: key -> (referencing table, referenced table), the foreign keys between tables of the
    run that are validated early."""
    keys: dict[Hashable, tuple[str, str]] = field(default_factory=dict)
    made_at_seal: set = field(default_factory=set)  # referenced tables whose keys their seal makes
    tables: dict[str, TableState] = field(default_factory=dict)
    _queued_keys: set = field(default_factory=set)
    _waiting_keys: list = field(default_factory=list)
    _keys_running_on: set = field(default_factory=set)  # referencing tables of the keys being validated

    def keys_of(self, table: str) -> list[Hashable]:
        return [k for k, pair in self.keys.items() if table in pair]

    def _holds_seal(self, table: str, key: Hashable) -> bool:
        """The key must be in before the table's seal: on it, or to it unless its seal makes the key's
        referenced key (then the key waits for that seal instead)."""
        a, b = self.keys[key]
        return table == a or (table == b and b not in self.made_at_seal)

    # ---- what the runner reports ----

    def copied(self, table: str, builds: int, *, check_first: bool, analyzed: bool) -> list[Item]:
        """The table's last unit is in: its builds (indexes 0..builds-1) and what they allow."""
        t = self.tables[table] = TableState(builds=builds, check="queued" if check_first else "waiting",
                                            analyzed=analyzed, analyze_queued=analyzed,
                                            fks=sum(self._holds_seal(table, k) for k in self.keys_of(table)))
        items: list[Item] = [("check", table)] if check_first else []  # the longest item first
        first = [k for k in self.keys_of(table) if builds and self.keys[k][0] == table != self.keys[k][1]
                 and self._referenced_ready(self.keys[k][1])]
        if first:  # keys on this table to tables that are ready: before its builds (see the module)
            t.held_builds, t.keys_first = builds, set(first)
            for key in first:
                self._queued_keys.add(key)
                items += self._start_key(key)
            return items
        items += [("build", (table, i)) for i in range(builds)]
        return items + self._next(table)

    def built(self, table: str) -> list[Item]:
        self.tables[table].builds -= 1
        return self._next(table)

    def checked(self, table: str) -> list[Item]:
        self.tables[table].check = "done"
        return self._next(table)

    def analyzed(self, table: str) -> list[Item]:
        self.tables[table].analyzed = True
        return self._next(table)

    def key_done(self, key: Hashable) -> list[Item]:
        items: list[Item] = []
        for table in set(self.keys[key]):
            if self._holds_seal(table, key):
                self.tables[table].fks -= 1
        self._keys_running_on.discard(self.keys[key][0])
        waiting, self._waiting_keys = self._waiting_keys, []
        for k in waiting:
            items += self._start_key(k)
        referencing = self.tables[self.keys[key][0]]
        referencing.keys_first.discard(key)
        if referencing.held_builds and not referencing.keys_first:
            items += [("build", (self.keys[key][0], i)) for i in range(referencing.held_builds)]
            referencing.held_builds = 0
        for table in set(self.keys[key]):
            items += self._next(table)
        return items

    def _start_key(self, key: Hashable) -> list[Item]:
        """The key now, unless another key on its referencing table is being validated."""
        referencing = self.keys[key][0]
        if referencing in self._keys_running_on:
            self._waiting_keys.append(key)
            return []
        self._keys_running_on.add(referencing)
        return [("fk", key)]

    # ---- the rules ----

    def sealed(self, table: str) -> list[Item]:
        """The table's seal ran (its keys exist now): the keys to it that waited for them."""
        self.tables[table].sealed = True
        return self._keys_ready(table)

    def _ready_for_keys(self, table: str) -> bool:
        t = self.tables.get(table)
        return t is not None and t.builds == 0 and t.analyzed

    def _referenced_ready(self, table: str) -> bool:
        if table in self.made_at_seal:
            t = self.tables.get(table)
            return t is not None and t.sealed
        return self._ready_for_keys(table)

    def _keys_ready(self, table: str) -> list[Item]:
        items: list[Item] = []
        for key in self.keys_of(table):
            a, b = self.keys[key]
            if key in self._queued_keys or not (self._ready_for_keys(a) and self._referenced_ready(b)):
                continue
            self._queued_keys.add(key)
            items += self._start_key(key)
        return items

    def _next(self, table: str) -> list[Item]:
        t = self.tables[table]
        items: list[Item] = []
        if t.builds > 0:
            return items
        if t.check == "waiting":  # key-ordered parts: read along the key's index, now built
            t.check = "queued"
            items.append(("check", table))
        if not t.analyze_queued:
            t.analyze_queued = True
            items.append(("analyze", table))
        items += self._keys_ready(table)
        if t.check == "done" and t.analyzed and t.fks == 0 and not t.seal_queued:
            t.seal_queued = True
            items.append(("seal", table))
        return items
