"""Redis connections for the agent, from a Celery/kombu broker URL."""

from __future__ import annotations

from typing import Any, Final

import redis

# No CLIENT SETINFO on connect (lib_name/lib_version None): the agent issues only the
# commands its read-only ACL grants. Keepalive spots dead peers; timeouts bound each call.
_CLIENT_KW: Final[dict[str, Any]] = {
    "lib_name": None,
    "lib_version": None,
    "socket_connect_timeout": 5.0,
    "socket_keepalive": True,
}


def redis_url(broker_url: str) -> str:
    """kombu spells a unix socket `redis+socket://path`; redis-py spells it `unix://path`."""
    if broker_url.startswith("redis+socket://"):
        return "unix://" + broker_url[len("redis+socket://"):]
    if broker_url.startswith("socket://"):
        return "unix://" + broker_url[len("socket://"):]
    return broker_url


def connect(broker_url: str, *, socket_timeout: float | None = 10.0) -> redis.Redis:
    return redis.Redis.from_url(redis_url(broker_url), socket_timeout=socket_timeout,
                                **_CLIENT_KW)


def db_of(client: redis.Redis) -> int:
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


def describe(broker_url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = broker_url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest
