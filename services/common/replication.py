"""Names of an online migration's replication objects, one place for every agent.

The slot and the publication live on the source, the subscription on the target; all three are
named after the workflow, so a retried step, a rollback or a later run finds exactly its own.
"""
from __future__ import annotations

PREFIX = "dbmigrate_"


def slot_name(workflow_id: str) -> str:
    return f"{PREFIX}{workflow_id}"


def publication_name(workflow_id: str) -> str:
    return f"{PREFIX}{workflow_id}"


def subscription_name(workflow_id: str) -> str:
    return f"{PREFIX}{workflow_id}"


def is_ours(name: str) -> bool:
    """A slot, publication or subscription made by some DBMigrate migration."""
    return name.startswith(PREFIX)
