"""Redis connections for the agent, from a Celery/kombu broker URL."""

from __future__ import annotations

import inspect
from typing import Any, Final

import redis


def _no_setinfo() -> dict[str, Any]:
    """No CLIENT SETINFO on connect: the agent issues only the commands its read-only ACL
    grants. redis-py >= 7 spells it driver_info=None, older ones lib_name/lib_version."""
    params = inspect.signature(redis.connection.AbstractConnection.__init__).parameters
    if "driver_info" in params:
        return {"driver_info": None}
    return {"lib_name": None, "lib_version": None}


_CLIENT_KW: Final[dict[str, Any]] = {
    "protocol": 2,  # RESP2: no HELLO, and the raw pub/sub reader expects it
    "socket_connect_timeout": 5.0,  # and socket_timeout per use: every call is bounded
    **_no_setinfo(),
}
_TCP_KW: Final[dict[str, Any]] = {"socket_keepalive": True}  # spots dead peers; TCP only


def redis_url(broker_url: str) -> str:
    """kombu spells a unix socket `redis+socket://path`; redis-py spells it `unix://path`."""
    if broker_url.startswith("redis+socket://"):
        return "unix://" + broker_url[len("redis+socket://"):]
    if broker_url.startswith("socket://"):
        return "unix://" + broker_url[len("socket://"):]
    return broker_url


def connect(broker_url: str, *, socket_timeout: float | None = 10.0) -> redis.Redis:
    url = redis_url(broker_url)
    extra = {} if url.startswith("unix://") else _TCP_KW
    return redis.Redis.from_url(url, socket_timeout=socket_timeout, **_CLIENT_KW, **extra)


def db_of(client: redis.Redis) -> int:
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


def describe(broker_url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = broker_url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest
