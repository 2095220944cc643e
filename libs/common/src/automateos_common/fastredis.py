"""Lean Redis clients for the hot paths: hiredis packs and parses, nothing else.

`PipelinedRedis` (asyncio) is the ingress's; `LeanRedis` (blocking) carries the engine's own
round trips for a run; `CommandList` records commands for either, with the redis-py method names
the rest of the code writes them with (RunStore, Leases, RQ's worker statistics).

redis-py's asyncio client spends several hundred microseconds of Python per command (packing
in Python, a pool checkout, a timeout context and a parser call per reply): more than the rest
of a webhook's work together. The ingress sends two things per webhook, a lookup and one
MULTI/EXEC, so it talks to Redis through this instead; every other caller keeps redis-py.

How it works: a few connections (`size`), each an asyncio Protocol with a FIFO of waiting
requests. A request is written with the ones other coroutines made in the same event-loop
iteration (one send for many webhooks under load) and its replies are taken off the stream in
order, parsed by hiredis in C. A MULTI ... EXEC block is written whole, so it never interleaves
with another coroutine's commands. Errors are redis-py's classes (`RedisError` and subclasses):
a reply error raises `ResponseError`, a lost or unreachable server `ConnectionError`, no answer
within `timeout` `TimeoutError` (and the connection is dropped, since its replies could no longer
be matched to requests). A dropped connection is opened again on the next request.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import socket
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis import Redis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

Args = Sequence[Any]
_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


class CommandList:
    """Commands recorded as argument tuples, with redis-py's method names and argument order, for a
    lean client to send (the ones redis-py would send for the same calls; test_async_submit and
    test_fastredis compare them)."""

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []

    def _add(self, *args: Any) -> CommandList:
        self.commands.append(args)
        return self

    def hset(self, name: str, key: str | None = None, value: Any = None, *,
             mapping: Mapping[str, Any] | None = None) -> CommandList:
        pairs = [] if key is None else [key, value]
        pairs += [x for item in (mapping or {}).items() for x in item]
        return self._add("HSET", name, *pairs)

    def hget(self, name: str, key: str) -> CommandList:
        return self._add("HGET", name, key)

    def hdel(self, name: str, *keys: str) -> CommandList:
        return self._add("HDEL", name, *keys)

    def hexists(self, name: str, key: str) -> CommandList:
        return self._add("HEXISTS", name, key)

    def hincrby(self, name: str, key: str, amount: int = 1) -> CommandList:
        return self._add("HINCRBY", name, key, amount)

    def hincrbyfloat(self, name: str, key: str, amount: float = 1.0) -> CommandList:
        return self._add("HINCRBYFLOAT", name, key, repr(float(amount)))

    def xadd(self, name: str, fields: Mapping[str, Any]) -> CommandList:
        return self._add("XADD", name, "*", *(x for item in fields.items() for x in item))

    def lrem(self, name: str, count: int, value: str) -> CommandList:
        return self._add("LREM", name, count, value)

    def expire(self, name: str, seconds: int) -> CommandList:
        return self._add("EXPIRE", name, seconds)

    def delete(self, *names: str) -> CommandList:
        return self._add("DEL", *names)

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> CommandList:
        return self._add("EVAL", script, numkeys, *keys_and_args)

    def publish(self, channel: str, message: str) -> CommandList:
        return self._add("PUBLISH", channel, message)


def _hello(username: str | None, password: str | None, db: int) -> tuple[bytes, int]:
    """What a new connection sends first (AUTH, SELECT), packed, and how many replies that makes."""
    commands: list[tuple[Any, ...]] = []
    if password is not None:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if db:
        commands.append(("SELECT", db))
    return b"".join(hiredis.pack_command(c) for c in commands), len(commands)


def _first_error(replies: Sequence[Any]) -> None:
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply


class _Request:
    __slots__ = ("deadline", "future", "replies", "wanted")

    def __init__(self, future: asyncio.Future[list[Any]], wanted: int, deadline: float) -> None:
        self.future = future
        self.wanted = wanted
        self.deadline = deadline
        self.replies: list[Any] = []


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.watchdog: asyncio.TimerHandle | None = None  # one timer for the oldest request, not one each
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiting: deque[_Request] = deque()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.closed = False
        self.gone: asyncio.Future[None] = loop.create_future()  # done when the transport has let go

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(ConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self._fail(ConnectionError("unexpected reply from Redis"))
                return
            request = waiting[0]
            request.replies.append(reply)
            if len(request.replies) == request.wanted:
                waiting.popleft()
                if not request.future.done():
                    request.future.set_result(request.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"Connection to Redis lost: {exc}" if exc else "Connection to Redis closed"))
        if not self.gone.done():
            self.gone.set_result(None)

    # -- ours
    def send(self, payload: bytes, wanted: int) -> asyncio.Future[list[Any]]:
        if self.closed or self.transport is None:
            raise ConnectionError("Connection to Redis closed")
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        self.waiting.append(_Request(future, wanted, self.loop.time() + self.timeout))
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout, self._check_deadline)
        self.out.append(payload)
        if not self.flush_scheduled:  # everything asked in this loop iteration goes in one write
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)
        return future

    def _check_deadline(self) -> None:
        """Requests are answered in order, so only the oldest can be overdue first."""
        self.watchdog = None
        if not self.waiting or self.closed:
            return
        overdue_in = self.waiting[0].deadline - self.loop.time()
        if overdue_in <= 0:  # replies that came later could not be matched to their requests: drop it all
            self._fail(TimeoutError(f"No answer from Redis within {self.timeout:g} s"))
            return
        self.watchdog = self.loop.call_later(overdue_in, self._check_deadline)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None and not self.closed:
            data, self.out = b"".join(self.out), []
            self.transport.write(data)

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiting:
            request = self.waiting.popleft()
            if not request.future.done():
                request.future.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self._fail(ConnectionError("Connection to Redis closed"))


class PipelinedRedis:
    def __init__(self, host: str = "127.0.0.1", port: int = 6379, *, db: int = 0, username: str | None = None,
                 password: str | None = None, size: int = 2, timeout: float = 5.0,
                 connect_timeout: float = 2.0) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._slots: list[_Connection | None] = [None] * max(1, size)
        self._connecting: list[asyncio.Lock] = [asyncio.Lock() for _ in self._slots]
        self._next = 0

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PipelinedRedis:
        """redis://[[user]:password@]host[:port][/db] (the form REDIS_URL takes); no TLS."""
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"PipelinedRedis supports redis:// URLs only, not {parts.scheme}://")
        db = int(parts.path.lstrip("/") or 0)
        return cls(parts.hostname or "127.0.0.1", parts.port or 6379, db=db,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None, **kwargs)

    async def _connection(self) -> _Connection:
        i = self._next = (self._next + 1) % len(self._slots)
        conn = self._slots[i]
        if conn is not None and not conn.closed:
            return conn
        async with self._connecting[i]:
            conn = self._slots[i]
            if conn is not None and not conn.closed:
                return conn
            loop = asyncio.get_running_loop()
            try:
                _, new = await asyncio.wait_for(
                    loop.create_connection(lambda: _Connection(loop, self.timeout), self.host, self.port),
                    self.connect_timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                raise ConnectionError(f"Cannot connect to Redis at {self.host}:{self.port}: {exc!r}") from None
            hello, replies = _hello(self.username, self.password, self.db)
            if replies:
                try:
                    await self._wait(new.send(hello, replies))
                except BaseException:
                    new.close()  # refused (a wrong password): never handed out
                    raise
            self._slots[i] = new
            return new

    @staticmethod
    async def _wait(future: asyncio.Future[list[Any]]) -> list[Any]:
        replies = await future  # the connection's watchdog fails it with TimeoutError when overdue
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def execute(self, *args: Any) -> Any:
        """One command; its reply."""
        conn = await self._connection()
        return (await self._wait(conn.send(hiredis.pack_command(args), 1)))[0]

    async def transaction(self, commands: Sequence[Args]) -> list[Any]:
        """MULTI, the commands, EXEC, written as one block; the replies of the commands (EXEC's array).

        A command Redis refuses at queueing time aborts the whole transaction (EXECABORT); one that
        fails while executing is raised as its ResponseError after the others have run (Redis has no
        rollback)."""
        payload = b"".join([b"*1\r\n$5\r\nMULTI\r\n", *(hiredis.pack_command(tuple(c)) for c in commands),
                            b"*1\r\n$4\r\nEXEC\r\n"])
        conn = await self._connection()
        try:
            replies = await self._wait(conn.send(payload, len(commands) + 2))
        except ResponseError as exc:
            raise ResponseError(f"Transaction refused: {exc}") from None
        result = replies[-1]
        if result is None:
            raise ResponseError("Transaction aborted")
        for reply in result:
            if isinstance(reply, ResponseError):
                raise reply
        return list(result)

    async def aclose(self) -> None:
        for i, conn in enumerate(self._slots):
            self._slots[i] = None
            if conn is not None:
                conn.close()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(conn.gone), 1.0)


class LeanRedis:
    """A blocking client for one thread at a time (a lock keeps it so): a batch of commands is packed
    by hiredis into one write, its replies parsed by hiredis off one socket. About half the CPU of
    redis-py's Pipeline a round trip, which the engine makes four times a run.

    Errors are redis-py's: a refused command `ResponseError`; a dead or unreachable server
    `ConnectionError`; no answer within `timeout` `TimeoutError`. After a connection or timeout error
    the socket is dropped (its replies could no longer be matched) and the next call connects again.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, *, db: int = 0, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0, connect_timeout: float = 5.0) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._sock: socket.socket | None = None
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._lock = threading.Lock()

    @classmethod
    def for_client(cls, redis: Redis) -> LeanRedis | RedisPyCommands:
        """The lean client for the server `redis` talks to, when it is plain TCP; else one that sends
        the same batches through `redis` itself (a Unix socket, TLS)."""
        kw = redis.connection_pool.connection_kwargs
        plain = "path" not in kw and not kw.get("ssl") and "Unix" not in type(redis.connection_pool).__name__ \
            and getattr(redis.connection_pool, "connection_class", None).__name__ == "Connection"  # type: ignore[union-attr]
        if not plain:
            return RedisPyCommands(redis)
        return cls(kw.get("host", "127.0.0.1"), int(kw.get("port", 6379)), db=int(kw.get("db", 0) or 0),
                   username=kw.get("username"), password=kw.get("password"),
                   timeout=float(kw.get("socket_timeout") or 10.0),
                   connect_timeout=float(kw.get("socket_connect_timeout") or 5.0))

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise ConnectionError(f"Cannot connect to Redis at {self.host}:{self.port}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        self._sock, self._reader = sock, hiredis.Reader(replyError=ResponseError)
        hello, replies = _hello(self.username, self.password, self.db)
        if replies:
            try:
                _first_error(self._roundtrip(hello, replies))
            except BaseException:
                self.close()
                raise
        return sock

    def _roundtrip(self, payload: bytes, wanted: int) -> list[Any]:
        sock = self._sock
        assert sock is not None
        try:
            sock.sendall(payload)
            replies: list[Any] = []
            while len(replies) < wanted:
                reply = self._reader.gets()
                if reply is False:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("Connection to Redis closed")
                    self._reader.feed(data)
                    continue
                replies.append(reply)
            return replies
        except ConnectionError:  # redis-py's: the server closed the connection
            self.close()
            raise
        except builtins.TimeoutError:  # the socket's (redis-py's TimeoutError is the one imported here)
            self.close()
            raise TimeoutError(f"No answer from Redis within {self.timeout:g} s") from None
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise ConnectionError(f"Connection to Redis lost: {exc}") from None

    def pipeline(self, commands: Sequence[Args], *, transaction: bool = False) -> list[Any]:
        """Send the commands in one write and read their replies (raw RESP2: a hash is a flat list).
        `transaction`: in MULTI ... EXEC, answering the commands' replies (EXEC's array). A refused
        command raises its ResponseError, as redis-py's pipelines do."""
        if not commands:
            return []
        packed = [hiredis.pack_command(tuple(c)) for c in commands]
        with self._lock:
            if self._sock is None:
                self._connect()
            if not transaction:
                replies = self._roundtrip(b"".join(packed), len(packed))
                _first_error(replies)
                return replies
            replies = self._roundtrip(b"".join([_MULTI, *packed, _EXEC]), len(packed) + 2)
        try:
            _first_error(replies)
        except ResponseError as exc:
            raise ResponseError(f"Transaction refused: {exc}") from None
        if replies[-1] is None:
            raise ResponseError("Transaction aborted")
        _first_error(replies[-1])
        return list(replies[-1])

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None

    def __del__(self) -> None:  # a runtime dropped without close() (tests build many) leaves no open socket
        self.close()


class RedisPyCommands:
    """`LeanRedis.pipeline` through a redis-py client: for servers the lean client does not speak to."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def pipeline(self, commands: Sequence[Args], *, transaction: bool = False) -> list[Any]:
        if not commands:
            return []
        with self.redis.pipeline(transaction=transaction) as pipe:
            for c in commands:
                pipe.execute_command(*c)  # type: ignore[no-untyped-call]
            return list(pipe.execute())

    def close(self) -> None:
        pass
