"""Redis connections for the agent, from a Celery/kombu broker URL and transport options.

The options are Celery's `broker_transport_options` that change where things are on the
broker: `master_name` (Sentinel), `sentinel_kwargs` (the Sentinels' own auth/TLS) and
`global_keyprefix` (kombu prepends it to every key and pub/sub channel).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import redis
import redis.sentinel


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


TransportOptions = Mapping[str, Any]


def keyprefix(options: TransportOptions) -> str:
    return str(options.get("global_keyprefix") or "")


def _sentinel(broker_url: str, options: TransportOptions,
              socket_timeout: float | None) -> redis.Redis:
    """kombu's `sentinel://[:password@]host:port[/db][;sentinel://host:port...]`: the
    password and db are the master's; the Sentinels' own come in `sentinel_kwargs`."""
    master = options.get("master_name")
    if not master:
        raise ValueError("a sentinel:// broker needs the transport option master_name "
                         "(as Celery's broker_transport_options)")
    hosts, password, db = [], None, 0
    for part in broker_url.split(";"):
        url = urlsplit(part.strip())
        hosts.append((url.hostname or "127.0.0.1", url.port or 26379))
        password = password or (unquote(url.password) if url.password else None)
        db = int(url.path.strip("/") or db)
    sentinel_kw = {"socket_connect_timeout": 5.0, "socket_timeout": 5.0,
                   **dict(options.get("sentinel_kwargs") or {})}
    sentinels = redis.sentinel.Sentinel(hosts, sentinel_kwargs=sentinel_kw)
    client: redis.Redis = sentinels.master_for(
        str(master), redis_class=redis.Redis, db=db, password=password,
        socket_timeout=socket_timeout, **_CLIENT_KW, **_TCP_KW)
    return client


def connect(broker_url: str, *, socket_timeout: float | None = 10.0,
            options: TransportOptions | None = None) -> redis.Redis:
    """A client on the broker's Redis (its master, through Sentinel, for sentinel://);
    rediss:// takes kombu's TLS query parameters (ssl_cert_reqs, ssl_ca_certs...)."""
    if broker_url.startswith("sentinel://"):
        return _sentinel(broker_url, options or {}, socket_timeout)
    url = redis_url(broker_url)
    extra = {} if url.startswith("unix://") else _TCP_KW
    return redis.Redis.from_url(url, socket_timeout=socket_timeout, **_CLIENT_KW, **extra)


# redis-py < 6 requires the command's name; later ones deprecate passing it
_GET_PARAMS: Final = inspect.signature(redis.ConnectionPool.get_connection).parameters
_NAME_REQUIRED: Final = _GET_PARAMS["command_name"].default is inspect.Parameter.empty


def pool_connection(client: redis.Redis, command: str) -> Any:
    """A connection of the client's pool, connected (TLS, AUTH, SELECT done)."""
    pool = client.connection_pool
    return pool.get_connection(command) if _NAME_REQUIRED else pool.get_connection()


def db_of(client: redis.Redis) -> int:
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


def describe(broker_url: str) -> str:
    """The URL without its passwords, for logs (each of a sentinel:// list's parts)."""
    parts = []
    for part in broker_url.split(";"):
        scheme, sep, rest = part.partition("://")
        if "@" in rest:
            rest = "***@" + rest.split("@", 1)[1]
        parts.append(scheme + sep + rest)
    return ";".join(parts)
