"""Runs storage work on threads so the event loop never waits on the database.

``Database.read(fn)`` runs ``fn(connection)`` inside a read transaction on a pool thread.
``Database.write(fn)`` runs it inside a write transaction, and how depends on the backend:

- SQLite allows one writer at a time, so every write goes through one writer thread that
  drains its queue and commits everything it found in a single transaction (group commit),
  each operation inside its own SAVEPOINT so that one failing operation rolls back alone.
  Sixteen concurrent clients therefore never see "database is locked", and a burst of small
  writes costs one commit instead of sixteen.
- PostgreSQL handles concurrent writers itself: each write runs in its own transaction on
  a pool thread.

SQLite's WAL is checkpointed by a background thread, not by whichever commit happens to
cross the threshold, so no request ever waits for a checkpoint's fsync.

``fn`` must only touch the database through the connection it is given; it may run again
only if it raised, never twice on success.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Connection

from labdeck.db.engine import BEGIN_IMMEDIATE, make_engine

T = TypeVar("T")
Work = Callable[[Connection], T]

log = logging.getLogger(__name__)


class Database:
    """The engine plus the threads that use it. ``close()`` stops them."""

    def __init__(self, url: str, *, pool_size: int = 8, group_commit_max: int = 256):
        self.url = url
        self.engine = make_engine(url, pool_size)
        self.dialect = self.engine.dialect.name
        self._readers = ThreadPoolExecutor(pool_size, thread_name_prefix="labdeck-db")
        self._group_commit_max = group_commit_max
        self._writer: _GroupCommitWriter | None = None
        self._checkpointer: _Checkpointer | None = None

    def start(self) -> None:
        """Start the SQLite writer and checkpointer threads (PostgreSQL needs none). Idempotent."""
        if self.dialect == "sqlite" and self._writer is None:
            self._writer = _GroupCommitWriter(self, self._group_commit_max)
            self._checkpointer = _Checkpointer(self)

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        from labdeck.db.migrate import upgrade

        upgrade(self.engine)

    async def read(self, fn: Work[T]) -> T:
        return await asyncio.wrap_future(self._readers.submit(self.read_now, fn))

    async def write(self, fn: Work[T], *, small: bool = False) -> T:
        """Run ``fn`` in a write transaction. ``small`` promises it takes well under a
        millisecond: on SQLite it then runs right here when the writer is idle, saving two
        thread hand-offs, instead of blocking the event loop for anything longer."""
        if small and self._writer is not None:
            result = self._writer.run_if_idle(fn)
            if result is not _BUSY:
                return result
        return await asyncio.wrap_future(self.submit_write(fn))

    def read_now(self, fn: Work[T]) -> T:
        """Run ``fn`` in a read transaction on the calling thread."""
        with self.engine.connect() as conn, conn.begin():
            return fn(conn)

    def write_now(self, fn: Work[T]) -> T:
        """Run ``fn`` in a write transaction and wait for it, from any thread but the loop's."""
        return self.submit_write(fn).result()

    def submit_write(self, fn: Work[T]) -> Future[T]:
        if self._writer is not None:
            return self._writer.submit(fn)
        if self.dialect == "sqlite":
            raise RuntimeError("Database.start() must be called before writing to SQLite")
        return self._readers.submit(self._write_in_own_transaction, fn)

    def _write_in_own_transaction(self, fn: Work[T]) -> T:
        with self.engine.begin() as conn:
            return fn(conn)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self._readers.shutdown(wait=True)
        self.engine.dispose()


_BUSY = object()


class _GroupCommitWriter:
    """The single SQLite writer: one thread, one connection, one commit per drained batch."""

    _STOP = object()

    def __init__(self, database: Database, batch_max: int):
        self._database = database
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._conn = database.engine.connect().execution_options(**{BEGIN_IMMEDIATE: True})
        self._thread = threading.Thread(target=self._run, name="labdeck-db-writer", daemon=True)
        self._thread.start()  # started by Database.start(), never by Database()

    def submit(self, fn: Work[T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future

    def run_if_idle(self, fn: Work[T]) -> T | object:
        """``fn``'s result, committed on the calling thread, if nothing else is writing or
        queued; else ``_BUSY`` and nothing was done."""
        if not self._lock.acquire(blocking=False):
            return _BUSY
        try:
            if not self._queue.empty():
                return _BUSY
            with self._conn.begin():
                return fn(self._conn)
        finally:
            self._lock.release()

    def stop(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while True:
            batch, stopping = self._next_batch()
            if batch:
                with self._lock:
                    self._conn = self._commit(self._conn, batch)
            if stopping:
                return

    def _next_batch(self) -> tuple[list, bool]:
        first = self._queue.get()
        if first is self._STOP:
            return [], True
        batch = [first]
        while len(batch) < self._batch_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is self._STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit(self, conn: Connection, batch: list) -> Connection:
        # a caller that gave up while its write was queued (a cancelled task) gets nothing
        # done; the others' futures can no longer be cancelled once marked running
        batch = [(fn, future) for fn, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return conn
        outcomes: list[tuple[Future, bool, object]] = []
        try:
            with conn.begin():
                if len(batch) == 1:
                    fn, future = batch[0]
                    outcomes.append((future, True, fn(conn)))
                else:
                    for fn, future in batch:
                        outcomes.append(_in_savepoint(conn, fn, future))
        except BaseException as exc:  # the transaction is gone: every caller in it failed
            if len(batch) == 1 and not outcomes:
                batch[0][1].set_exception(exc)
                return conn
            log.exception("group commit failed; %d writes rolled back", len(batch))
            for _fn, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return _reconnect(conn)
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)  # type: ignore[arg-type]
        return conn


class _Checkpointer:
    """Copies SQLite's WAL back into the database file every second, PASSIVE (never
    blocking the writer) while the WAL is small, RESTART once it has grown past
    ``restart_bytes`` so that it cannot grow without bound under constant writing."""

    def __init__(self, database: Database, interval: float = 1.0, restart_bytes: int = 64 << 20):
        self._database = database
        self._interval = interval
        self._restart_bytes = restart_bytes
        self._wal = f"{database.engine.url.database}-wal"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labdeck-db-checkpoint", daemon=True)
        self._thread.start()  # started by Database.start(), never by Database()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._checkpoint("TRUNCATE")

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                size = os.path.getsize(self._wal)
            except OSError:
                continue
            if size:
                self._checkpoint("RESTART" if size > self._restart_bytes else "PASSIVE")

    def _checkpoint(self, mode: str) -> None:
        try:
            with self._database.engine.connect() as conn:
                conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")
        except Exception:
            log.exception("WAL checkpoint (%s) failed; it will be retried", mode)


def _in_savepoint(conn: Connection, fn: Work, future: Future) -> tuple[Future, bool, object]:
    savepoint = conn.begin_nested()
    try:
        value = fn(conn)
    except Exception as exc:
        savepoint.rollback()
        return future, False, exc
    savepoint.commit()
    return future, True, value


def _reconnect(conn: Connection) -> Connection:
    engine = conn.engine
    options = conn.get_execution_options()
    try:
        conn.close()
    except Exception:
        log.exception("closing the failed writer connection")
    return engine.connect().execution_options(**options)
