"""The throw-away Redis and PostgreSQL of the Celery live test: they answer with their password only, and stop clean."""

from __future__ import annotations

import psycopg2
import pytest
import redis

from tests.integration.live.services import PostgresCluster, RedisServer

pytestmark = [pytest.mark.airflow_live, pytest.mark.slow, pytest.mark.timeout(120)]


def test_redis_answers_with_its_password_only_and_stops_clean():
    server = RedisServer()
    with server:
        assert server.url == f"redis://:{server.password}@127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url)
        assert client.set("k", "v") and client.get("k") == b"v"
        client.close()
        stranger = redis.Redis(host="127.0.0.1", port=server.port)
        with pytest.raises(redis.AuthenticationError):
            stranger.get("k")
        stranger.close()
        assert server.processes()

    assert server.leftover_processes() == []
    assert not server.dir.exists()


def test_postgres_cluster_holds_the_airflow_database_and_stops_clean():
    cluster = PostgresCluster()
    with cluster:
        assert cluster.url.startswith(f"postgresql+psycopg2://airflow:{cluster.password}@127.0.0.1:{cluster.port}/")
        connection = psycopg2.connect(
            host="127.0.0.1", port=cluster.port, user="airflow", password=cluster.password, dbname="airflow"
        )
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT current_database(), current_setting('listen_addresses')")
            assert cursor.fetchone() == ("airflow", "127.0.0.1")
        connection.close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host="127.0.0.1", port=cluster.port, user="airflow", password="wrong", dbname="airflow")
        assert len(cluster.processes()) > 1  # the postmaster and its children, each in a session of its own

    assert cluster.leftover_processes() == []
    assert not cluster.dir.exists()
