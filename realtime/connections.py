"""Clients of Redis and MongoDB, one per event loop (asyncio clients are bound to their loop).

Redis Cluster: `PMS_REDIS_URL=redis+cluster://[user:password@]host:port[,host:port...]` names
seed nodes of a cluster (any subset of its nodes; the topology is read from them). Then
`get_redis`/`get_sync_redis` hand out redis-py's `RedisCluster`, typed as the plain client:
it answers the same commands, routed by key slot. The code paths that differ check
`is_cluster(client)`: raw pipelined round trips (`realtime.pipelined`), pub/sub (SPUBLISH and
SSUBSCRIBE per shard, `realtime.broker.ShardedBroker`), SCAN (every master), and multi-key
commands, which only ever name keys of one hash slot (`realtime.keys`).
"""

import asyncio
import threading
import weakref
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aredis
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.retry
from pymongo import AsyncMongoClient
from redis._parsers import AsyncCommandsParser
from redis.backoff import ExponentialBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError

from realtime.config import RealtimeSettings

_settings = RealtimeSettings()
_async_redis: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis]" = weakref.WeakKeyDictionary()
_mongo: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncMongoClient[Any]]" = weakref.WeakKeyDictionary()
_sync_redis: redis.Redis | None = None
_lock = threading.Lock()
# Given once: without it each new pooled connection reads the installed package's metadata
# (`importlib.metadata`, ~5 ms) for CLIENT SETINFO, which a connect burst pays 100+ times.
DRIVER_INFO = DriverInfo(lib_version=redis.__version__)
# Pooled connections outlive a Redis restart as dead sockets; without a retry each one failed
# its next command once, and a pool of 200 cycled through them for a minute (issue #15). A
# command that meets a dead connection reconnects it and runs again, at most twice, within
# 0.05 + 0.1 s, only on connection errors (a timeout is not retried: it already took its time).
# A retried script may have run once already: every pooled write is idempotent or at least once.
_RETRIES = 2
_RETRY_ON = [RedisConnectionError]


CLUSTER_SCHEME = "redis+cluster"


class ClusterAddress:
    """The seed nodes and credentials of a `redis+cluster://` URL."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != CLUSTER_SCHEME:
            raise ValueError(f"not a {CLUSTER_SCHEME}:// URL")
        credentials, _, hosts = parts.netloc.rpartition("@")
        user, _, password = credentials.partition(":")
        self.username = unquote(user) or None
        self.password = unquote(password) or None
        self.nodes: list[tuple[str, int]] = []
        for host in hosts.split(","):
            name, _, port = host.strip().rpartition(":")
            if not name or not port.isdigit():
                raise ValueError(f"{CLUSTER_SCHEME}:// URL: expected host:port, got {host!r}")
            self.nodes.append((name.strip("[]"), int(port)))


def cluster_url(url: str) -> bool:
    """True when `url` names a Redis Cluster (`redis+cluster://host:port,...`)."""
    return url.startswith(CLUSTER_SCHEME + "://")


_CLUSTER_CLIENTS = (redis.asyncio.cluster.RedisCluster, redis.cluster.RedisCluster)
# Client class -> is it a cluster client. redis-py's clients derive from `typing.Protocol`
# classes, so an `isinstance` against them that fails takes `_ProtocolMeta.__instancecheck__`'s
# slow path every time: 16,986 calls (every cache epoch read and fill names its guard) cost 3 %
# of a cold connect burst's loop CPU under cProfile, against 0.2 % for the lookup here.
_cluster_classes: dict[type, bool] = {}


def is_cluster(client: object) -> bool:
    """True for a Redis Cluster client (asyncio or blocking) handed out here."""
    kind = type(client)
    known = _cluster_classes.get(kind)
    if known is None:
        known = _cluster_classes[kind] = issubclass(kind, _CLUSTER_CLIENTS)
    return known


def publish_command(client: object) -> str:
    """The publish command for `client`: SPUBLISH on a cluster (the sharded channel the brokers
    listen on, delivered by the shard owning its slot only), else PUBLISH. Same channel names."""
    return "SPUBLISH" if is_cluster(client) else "PUBLISH"


# The COMMAND table each asyncio cluster client reads when it starts (redis-py finds a
# command's keys with it), per cluster and response decoding (its nested values come back as
# bytes or str): the first such client of a process reads it, later ones reuse it. Reading it is
# a round trip and a parse of some 240 entries into thousands of objects: a client's start took
# 11 to 14 ms reading it, 4 ms reusing it (local cluster). Paid by every new loop's clients (the broker's,
# the loop's, `new_async_redis` in short-lived loops) inside the work that needed them, often
# the first socket open of the loop. Read only; a client that meets a command missing from it
# reads the table again (redis-py), which replaces it here.
_TableKey = tuple[tuple[tuple[str, int], ...], str, str, bool]
_command_tables: dict[_TableKey, dict[str, Any]] = {}


class _SharedCommandsParser(AsyncCommandsParser):
    """redis-py's key parser, seeded from the process's COMMAND table of the same cluster."""

    def __init__(self, key: _TableKey) -> None:
        super().__init__()
        self._key = key

    async def initialize(self, node: redis.asyncio.cluster.ClusterNode | None = None) -> None:
        if node:
            self.node = node
        table = _command_tables.get(self._key)
        if table is not None and not self.commands:  # this client's start: reuse
            self.commands = table
            return
        await super().initialize(node)  # the first client, or a refresh asked by redis-py
        _command_tables[self._key] = self.commands


def async_cluster_client(url: str, **options: Any) -> aredis.Redis:
    """An asyncio `RedisCluster` for a `redis+cluster://` URL, typed as the plain client it stands in for.

    redis-py's own cluster retries apply (a command that meets a failed master refreshes the
    slot map and runs again, with backoff, while a replica is promoted). The COMMAND table is
    read once per process and cluster (`_command_tables`), not once per client.
    """
    address = ClusterAddress(url)
    client = redis.asyncio.cluster.RedisCluster(
        startup_nodes=[redis.asyncio.cluster.ClusterNode(host, port) for host, port in address.nodes],
        username=address.username,
        password=address.password,
        require_full_coverage=False,
        driver_info=DRIVER_INFO,
        **options,
    )
    encoder = client.encoder
    key = (tuple(address.nodes), encoder.encoding, encoder.encoding_errors, encoder.decode_responses)
    client.commands_parser = _SharedCommandsParser(key)
    return cast(aredis.Redis, client)


def new_async_redis(url: str, **options: Any) -> aredis.Redis:
    """A new asyncio client of its own for `url` (a cluster client for `redis+cluster://`); the
    caller closes it. For short-lived loops that must not share the loop's client."""
    if cluster_url(url):
        return async_cluster_client(url, **options)
    return aredis.Redis.from_url(url, **options)


def _backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=0.5, base=0.05)


def configure(settings: RealtimeSettings) -> None:
    """Install the settings; drops clients built from the previous ones."""
    global _settings, _sync_redis
    with _lock:
        _settings = settings
        _async_redis.clear()
        _mongo.clear()
        _sync_redis = None


def current_settings() -> RealtimeSettings:
    return _settings


def get_redis() -> aredis.Redis:
    """The asyncio Redis client of the running loop (decoded str responses)."""
    loop = asyncio.get_running_loop()
    client = _async_redis.get(loop)
    if client is None and cluster_url(_settings.redis_url):
        client = async_cluster_client(
            _settings.redis_url,
            decode_responses=True,
            max_connections=_settings.redis_max_connections,
            socket_timeout=_settings.redis_socket_timeout,
            socket_connect_timeout=_settings.redis_socket_timeout,
        )
        _async_redis[loop] = client
    if client is None:
        pool = aredis.BlockingConnectionPool.from_url(
            _settings.redis_url,
            decode_responses=True,
            max_connections=_settings.redis_max_connections,
            timeout=_settings.redis_socket_timeout,
            socket_timeout=_settings.redis_socket_timeout,
            socket_connect_timeout=_settings.redis_socket_timeout,
            retry=redis.asyncio.retry.Retry(_backoff(), _RETRIES),
            retry_on_error=_RETRY_ON,
            driver_info=DRIVER_INFO,
        )
        client = aredis.Redis(connection_pool=pool)
        _async_redis[loop] = client
    return client


def get_sync_redis() -> redis.Redis:
    """A thread-safe blocking Redis client for sync code (admin, signals, commands)."""
    global _sync_redis
    with _lock:
        if _sync_redis is None and cluster_url(_settings.redis_url):
            address = ClusterAddress(_settings.redis_url)
            _sync_redis = cast(
                redis.Redis,
                redis.cluster.RedisCluster(
                    startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in address.nodes],
                    username=address.username,
                    password=address.password,
                    require_full_coverage=False,
                    decode_responses=True,
                    socket_timeout=_settings.redis_socket_timeout,
                    socket_connect_timeout=_settings.redis_socket_timeout,
                    driver_info=DRIVER_INFO,
                ),
            )
        if _sync_redis is None:
            _sync_redis = redis.Redis.from_url(
                _settings.redis_url,
                decode_responses=True,
                socket_timeout=_settings.redis_socket_timeout,
                socket_connect_timeout=_settings.redis_socket_timeout,
                retry=redis.retry.Retry(_backoff(), _RETRIES),
                retry_on_error=_RETRY_ON,
                driver_info=DRIVER_INFO,
            )
        return _sync_redis


def get_mongo() -> "AsyncMongoClient[Any]":
    """The PyMongo async client of the running loop (same code path for mongod and the stand-in)."""
    loop = asyncio.get_running_loop()
    client = _mongo.get(loop)
    if client is None:
        concern = _settings.mongo_write_concern
        client = AsyncMongoClient(
            _settings.mongo_url,
            serverSelectionTimeoutMS=_settings.mongo_timeout_ms,
            connectTimeoutMS=_settings.mongo_timeout_ms,
            socketTimeoutMS=_settings.mongo_socket_timeout_ms,
            heartbeatFrequencyMS=_settings.mongo_heartbeat_ms,
            retryWrites=_settings.mongo_retry_writes,
            w=int(concern) if concern.isdigit() else concern,
            tz_aware=True,
        )
        _mongo[loop] = client
    return client


async def aclose_loop_clients() -> None:
    """Close the running loop's Redis and MongoDB clients (shutdown, end of a test)."""
    loop = asyncio.get_running_loop()
    redis_client = _async_redis.pop(loop, None)
    mongo_client = _mongo.pop(loop, None)
    if redis_client is not None:
        await redis_client.aclose()
    if mongo_client is not None:
        await mongo_client.close()
