"""What most services import, loaded once in the launcher's fork server (services.common.launcher).

Each service forked from that server shares these modules' memory with it and with the others
until it writes to a page: at rest, six services took 196 MB (PSS, summed) started one by one as
`python -m ...`, and 117 MB forked from this (grpc, psycopg, protobuf and the generated code are
about 20 MB of private heap in each process otherwise). gc.freeze() moves everything loaded here
out of the collector's reach, so a collection in a service does not write to (and so copy) every
page of it. Importing has no side effect beyond that: no thread, no gRPC channel or server (gRPC
must not be initialised before a fork), no setting read from the environment (each service reads
its own after the fork).
"""
from __future__ import annotations

import gc

import asyncio  # noqa: F401
import concurrent.futures  # noqa: F401

import grpc  # noqa: F401
import grpc.aio  # noqa: F401
import psycopg  # noqa: F401
import psycopg_pool  # noqa: F401
import xxhash  # noqa: F401
from google.protobuf import json_format  # noqa: F401

from dbmigrate.v1 import agents_pb2_grpc, common_pb2, coordinator_pb2_grpc, events_pb2  # noqa: F401
from services.common import catalog, channels, errors, pg, server  # noqa: F401

gc.collect()
gc.freeze()
