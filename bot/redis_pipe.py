"""Automatic pipelining of the bot's small Redis commands.

Every callback makes a few tiny Redis calls (the replay guard, the de-duplication claim, the cached reply).
On a busy bot dozens of callbacks make them in the same event-loop iteration; sent one by one, each is a
system call and a wake-up of Redis, which costs more than the command itself. `AutoPipeline` wraps the
client: `get`, `set`, `delete`, `exists` and `eval` calls made in one loop iteration are queued and sent together
in one pipeline (not a transaction: each command keeps its own meaning and its own result or error), at
the end of that iteration. Everything else is passed straight to the wrapped client.

`eval` goes as EVALSHA (the SHA-1 of each script is computed once here): the script's text is neither
encoded nor sent nor hashed by Redis on every call. A NOSCRIPT answer (a restarted or flushed Redis) sends
those calls again as EVAL, which loads the script for the next ones (they then run after the other commands
of their round trip; callers never depend on the order of concurrent callbacks' commands).

redis-py's asyncio connections pack commands in Python (its synchronous ones use hiredis when installed);
`AutoPipeline` makes the wrapped client's new connections pack with hiredis too (`HiredisPackingConnection`:
the same bytes, a few times cheaper), which every user of the client (arq's enqueue too) shares.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from redis.asyncio.connection import Connection
from redis.exceptions import NoScriptError

try:
    import hiredis
    from redis.connection import HiredisRespSerializer
    _PACKER: Any = HiredisRespSerializer() if hasattr(hiredis, "pack_command") else None
except ImportError:  # no hiredis: redis-py's own packing
    _PACKER = None

_PIPELINED = frozenset({"get", "set", "delete", "exists", "eval"})


class HiredisPackingConnection(Connection):
    """A TCP connection of redis-py's asyncio client whose commands are packed by hiredis."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return list(_PACKER.pack(*args))


def pack_with_hiredis(client: Any) -> bool:
    """Make `client`'s pool open HiredisPackingConnections from now on, and its idle connections (arq's
    create_pool leaves one) pack so too (plain TCP pools only, hiredis installed); True when it does."""
    pool = getattr(client, "connection_pool", None)
    if _PACKER is None or pool is None or pool.connection_class is not Connection:
        return pool is not None and pool.connection_class is HiredisPackingConnection
    pool.connection_class = HiredisPackingConnection
    for idle in getattr(pool, "_available_connections", ()):
        if type(idle) is Connection:
            idle.__class__ = HiredisPackingConnection  # a subclass with no state of its own: one method
    return True


class AutoPipeline:
    def __init__(self, client: Any):
        self.client = client
        pack_with_hiredis(client)
        self._queue: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._shas: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        if name in _PIPELINED:
            def call(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
                return self._call(name, args, kwargs)
            return call
        return getattr(self.client, name)

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> asyncio.Future[Any]:
        if name == "eval":
            script = args[0]
            sha = self._shas.get(script)
            if sha is None:
                sha = self._shas[script] = hashlib.sha1(script.encode()).hexdigest()
            name, args = "evalsha", (sha, *args[1:])
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._send_queued)
        self._queue.append((name, args, kwargs, future))
        return future

    def _send_queued(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            task = asyncio.ensure_future(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._execute(batch)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:  # Redis lost its scripts (restart, SCRIPT FLUSH): EVAL loads them again
                scripts = {sha: script for script, sha in self._shas.items()}
                again = [("eval", (scripts[batch[i][1][0]], *batch[i][1][1:]), batch[i][2], batch[i][3])
                         for i in missing]
                for i, result in zip(missing, await self._execute(again), strict=True):
                    results[i] = result
        except BaseException as err:  # connection lost, cancelled: every caller sees it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(err if isinstance(err, Exception) else ConnectionError(str(err)))
            if not isinstance(err, Exception):
                raise
            return
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, batch: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]
                       ) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        try:
            for name, args, kwargs, _ in batch:
                getattr(pipe, name)(*args, **kwargs)
            return list(await pipe.execute(raise_on_error=False))
        finally:
            # Shielded: a flush cancelled while redis-py gives its connection back (an app stopping with
            # callbacks in flight) would otherwise keep the connection, and warn when collected.
            await asyncio.shield(pipe.reset())
