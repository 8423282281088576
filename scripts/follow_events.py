"""Follows DBMigrate's events on NATS JetStream: `python -m scripts.follow_events [MIGRATION_ID] [--new]`."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys

import nats
from google.protobuf import json_format
from nats.js.api import DeliverPolicy

from dbmigrate.v1 import events_pb2
from services.common.config import env_str


async def follow(url: str, stream: str, workflow: str, new_only: bool, as_json: bool, limit: int) -> int:
    async def quiet(err):  # the client's default prints a traceback per failed attempt
        print(f"follow_events: NATS: {err or type(err).__name__}", file=sys.stderr)

    nc = await nats.connect(url, name="dbmigrate-follow-events", max_reconnect_attempts=3, reconnect_time_wait=0.5,
                            connect_timeout=2, error_cb=quiet)
    try:
        js = nc.jetstream()
        subject = f"dbmigrate.events.{workflow or '*'}.>"
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True,
                                 deliver_policy=DeliverPolicy.NEW if new_only else DeliverPolicy.ALL)
        count = 0
        async for msg in sub.messages:
            ev = events_pb2.WorkflowEvent.FromString(msg.data)
            if as_json:
                print(json.dumps(json_format.MessageToDict(ev, preserving_proto_field_name=True)), flush=True)
            else:
                print(f"{ev.time.ToDatetime():%H:%M:%S}  {msg.subject}  seq={ev.seq} version={ev.version}", flush=True)
            count += 1
            if limit and count >= limit:
                return 0
    finally:
        await nc.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.follow_events",
                                description="Print DBMigrate events from NATS JetStream as they are published "
                                            "(subjects dbmigrate.events.<migration id>.<event type>).")
    p.add_argument("workflow", nargs="?", default="", metavar="MIGRATION_ID", help="only this migration")
    p.add_argument("--new", action="store_true", help="only events published from now on (default: from the start)")
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    p.add_argument("--limit", type=int, default=0, help="stop after this many events")
    p.add_argument("--nats", default=env_str("DBMIGRATE_NATS_URL", "nats://127.0.0.1:4222"),
                   help="NATS URL (env DBMIGRATE_NATS_URL)")
    p.add_argument("--stream", default=env_str("DBMIGRATE_NATS_STREAM", "DBMIGRATE_EVENTS"),
                   help="JetStream stream (env DBMIGRATE_NATS_STREAM)")
    args = p.parse_args(argv)
    try:
        return asyncio.run(follow(args.nats, args.stream, args.workflow, args.new, args.json, args.limit))
    except KeyboardInterrupt:
        return 0
    except (nats.errors.Error, OSError) as err:
        print(f"follow_events: cannot follow {args.stream} on {args.nats}: {err or type(err).__name__}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
