"""The ingress's pipelining Redis client against real Redis servers: replies in order under concurrency,
transactions, errors as redis-py's classes, a lost server, a silent one, AUTH and SELECT."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from redis import Redis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from automateos_common.fastredis import CommandList, LeanRedis, PipelinedRedis, RedisPyCommands
from automateos_devstack.servers import RedisServer, free_port

pytestmark = pytest.mark.integration


def _db15(redis_client: Redis) -> str:
    kw = redis_client.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw['db']}"


def test_commands_and_a_transaction(redis_client):
    async def go() -> None:
        r = PipelinedRedis.from_url(_db15(redis_client))
        assert await r.execute("SET", "a", "1") == b"OK"
        assert await r.execute("MGET", "a", "missing") == [b"1", None]
        assert await r.transaction([("INCR", "a"), ("HSET", "h", "f", b"v", "n", 3), ("RPUSH", "l", "x")]) == [2, 2, 1]
        await r.aclose()

    asyncio.run(go())
    assert redis_client.hgetall("h") == {b"f": b"v", b"n": b"3"}  # SELECTed database 15, as the URL says


def test_many_coroutines_at_once_each_get_their_own_replies(redis_client):
    async def worker(r: PipelinedRedis, i: int) -> None:
        for j in range(20):
            key = f"k{i}:{j}"
            await r.transaction([("SET", key, key), ("APPEND", key, "!")])
            assert await r.execute("GET", key) == f"{key}!".encode()

    async def go() -> None:
        r = PipelinedRedis.from_url(_db15(redis_client), size=2)
        await asyncio.gather(*(worker(r, i) for i in range(200)))
        await r.aclose()

    asyncio.run(go())
    assert redis_client.dbsize() == 200 * 20


def test_errors_are_redis_py_errors_and_the_connection_stays_usable(redis_client):
    async def go() -> None:
        r = PipelinedRedis.from_url(_db15(redis_client))
        await r.execute("SET", "s", "text")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await r.execute("LPUSH", "s", "x")
        # Fails while executing: Redis has no rollback, the other command ran.
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await r.transaction([("LPUSH", "s", "x"), ("SET", "after", "1")])
        # Refused while queueing: nothing ran.
        with pytest.raises(ResponseError, match="refused"):
            await r.transaction([("SET", "never", "1"), ("NOSUCHCOMMAND",)])
        assert await r.execute("GET", "after") == b"1"
        assert await r.execute("EXISTS", "never") == 0
        await r.aclose()

    asyncio.run(go())


def test_a_lost_server_is_a_connection_error_then_the_client_reconnects():
    server = RedisServer(appendonly=False).start()
    try:
        async def go() -> None:
            r = PipelinedRedis.from_url(server.url, timeout=2, connect_timeout=1)
            assert await r.execute("PING") == b"PONG"
            server.stop()
            with pytest.raises(ConnectionError):
                await r.execute("PING")
            with pytest.raises(ConnectionError):  # still down: connecting fails fast
                await r.execute("PING")
            server.start()
            assert await r.execute("PING") == b"PONG"
            await r.aclose()

        asyncio.run(go())
    finally:
        server.stop()


def test_a_server_that_never_answers_is_a_timeout():
    async def go() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        port = free_port()
        srv = await asyncio.start_server(silent, "127.0.0.1", port)
        r = PipelinedRedis("127.0.0.1", port, timeout=0.3)
        with pytest.raises(TimeoutError):
            await r.execute("PING")
        assert accepted  # it connected; the answer never came
        await r.aclose()
        srv.close()
        for w in accepted:
            w.close()
        with contextlib.suppress(Exception):
            await srv.wait_closed()

    asyncio.run(go())


def test_password_and_database_from_the_url():
    server = RedisServer(appendonly=False).start()
    try:
        Redis(port=server.port).config_set("requirepass", "s3cret")

        async def go() -> None:
            good = PipelinedRedis.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/3")
            assert await good.transaction([("SET", "x", "1")]) == [b"OK"]
            await good.aclose()
            bad = PipelinedRedis.from_url(f"redis://:wrong@127.0.0.1:{server.port}/0")
            with pytest.raises(ResponseError):
                await bad.execute("PING")
            await bad.aclose()

        asyncio.run(go())
        assert Redis(port=server.port, password="s3cret", db=3).get("x") == b"1"
    finally:
        server.stop()


def test_only_plain_redis_urls():
    with pytest.raises(ValueError, match="redis://"):
        PipelinedRedis.from_url("rediss://example.com:6380/0")


# ---- LeanRedis: the engine's blocking client ---------------------------------------------------------

def test_lean_client_batches_transactions_and_errors(redis_client):
    lean = LeanRedis.for_client(redis_client)
    assert isinstance(lean, LeanRedis) and lean.db == 15
    assert lean.pipeline([("SET", "a", "1"), ("INCR", "a"), ("HSET", "h", "f", b"v")]) == [b"OK", 2, 1]
    assert lean.pipeline([("HGETALL", "h")]) == [[b"f", b"v"]]  # raw RESP2: a hash is a flat list
    assert lean.pipeline([("INCR", "a"), ("RPUSH", "l", "x")], transaction=True) == [3, 1]
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        lean.pipeline([("LPUSH", "a", "x"), ("SET", "after", "1")])
    with pytest.raises(ResponseError, match="refused"):
        lean.pipeline([("SET", "never", "1"), ("NOSUCHCOMMAND",)], transaction=True)
    assert redis_client.get("after") == b"1" and not redis_client.exists("never")
    assert lean.pipeline([]) == []
    lean.close()


def test_lean_client_reconnects_after_the_server_comes_back_and_times_out_on_a_silent_one():
    server = RedisServer(appendonly=False).start()
    try:
        lean = LeanRedis(port=server.port, timeout=2, connect_timeout=1)
        assert lean.pipeline([("PING",)]) == [b"PONG"]
        server.stop()
        with pytest.raises(ConnectionError):
            lean.pipeline([("PING",)])
        server.start()
        assert lean.pipeline([("PING",)]) == [b"PONG"]
        lean.close()
    finally:
        server.stop()
    import socket as socket_module

    listener = socket_module.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        silent = LeanRedis(port=listener.getsockname()[1], timeout=0.3)
        with pytest.raises(TimeoutError):
            silent.pipeline([("PING",)])
        silent.close()
    finally:
        listener.close()


def test_lean_client_authenticates_and_selects_from_the_client_it_is_made_for():
    server = RedisServer(appendonly=False).start()
    try:
        Redis(port=server.port).config_set("requirepass", "s3cret")
        client = Redis(port=server.port, password="s3cret", db=4)
        lean = LeanRedis.for_client(client)
        assert lean.pipeline([("SET", "x", "1")], transaction=True) == [b"OK"]
        assert client.get("x") == b"1"
        with pytest.raises(ResponseError):
            LeanRedis(port=server.port, password="wrong").pipeline([("PING",)])
        lean.close()
    finally:
        server.stop()


def test_a_unix_socket_client_gets_the_redis_py_fallback(tmp_path):
    client = Redis(unix_socket_path=str(tmp_path / "redis.sock"))
    assert isinstance(LeanRedis.for_client(client), RedisPyCommands)


def test_command_list_records_what_redis_py_sends(redis_client):
    def record(target):
        target.hset("k", mapping={"a": b"1", "b": "2"})
        target.hset("k", "c", 3)
        target.hget("k", "a")
        target.hdel("k", "a", "b")
        target.hexists("k", "c")
        target.hincrby("k", "n", 2)
        target.hincrbyfloat("k", "f", 0.25)
        target.xadd("s", {"run": "r1"})
        target.lrem("l", 1, "x")
        target.expire("k", 10)
        target.delete("k", "l")
        target.eval("return 1", 1, "k", "arg")

    pipe = redis_client.pipeline(transaction=False)
    record(pipe)
    ours = CommandList()
    record(ours)
    assert [tuple(str(a) for a in c) for c in ours.commands] == \
        [tuple(str(a) for a in args) for args, _ in pipe.command_stack]
    pipe.reset()
