"""Untrusted files are decoded in a few worker processes, never in a request's thread.

A file a few kilobytes long can cost a decoder minutes of CPU or gigabytes of memory (uploads.py bounds
what it knows of; this bounds the rest). Each worker is a process of its own, with hard limits the kernel
keeps whatever the decoder does:

- address space (RLIMIT_AS, CHAT_UPLOAD_WORKER_MEMORY_MB): an allocation past it fails (MemoryError);
- CPU per file (RLIMIT_CPU, CHAT_UPLOAD_WORKER_CPU_SECONDS, counted from the file's start): past it the
  kernel kills the worker;
- wall-clock per file (CHAT_UPLOAD_WORKER_WALL_SECONDS): past it pebble kills the worker.

A killed worker is replaced, and so is one after CHAT_UPLOAD_WORKER_TASKS files. The pool holds
CHAT_UPLOAD_WORKERS workers and no queue: an upload waits at most CHAT_UPLOAD_WAIT_SECONDS for a free one,
then gets 503 `attachments_busy`, so at most workers × memory is ever spent decoding, whatever arrives.

Workers start at the first upload, from a fork server started clean (no Django settings, database
connections or sockets of the server's are inherited), so the pool works the same under Daphne,
runserver and the tests. The request's database connection is given back before it waits: decoding never
holds one.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import multiprocessing.util
import os
import resource
import threading
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing import forkserver

import pebble
from django.conf import settings
from django.db import connection

from ..exceptions import AttachmentsBusy, AttachmentUnreadable
from .uploads import Checked, DecodeLimits, upload_check

TOO_COSTLY = "That file takes more memory or time to read than a file may."
BUSY_RETRY_AFTER = 5  # seconds: a file takes about that long to read at most, usually far less
RESULT_GRACE_SECONDS = 10  # for a worker to be started, and one past its time to be killed
# The module a worker's fork server imports once, so each worker starts with the decoders loaded.
WORKER_PRELOAD = ["conversations.attachments.uploads"]

_lock = threading.Lock()
_pool: pebble.ProcessPool | None = None
_slots: threading.BoundedSemaphore | None = None
_pool_pid = 0


def checked_in_worker(data: bytes) -> Checked:
    """What upload_check makes of `data`, decoded in a worker. Raise what it raises,
    AttachmentUnreadable when the worker ran out of memory, CPU or time, and AttachmentsBusy when no
    worker was free within CHAT_UPLOAD_WAIT_SECONDS."""
    database_connection_release()
    pool, slots = _pool_running()
    if not slots.acquire(timeout=settings.CHAT_UPLOAD_WAIT_SECONDS):
        raise AttachmentsBusy(retry_after=BUSY_RETRY_AFTER)
    try:
        future = pool.schedule(
            _worker_check,
            args=(data, DecodeLimits.from_settings(), settings.CHAT_UPLOAD_WORKER_CPU_SECONDS),
            timeout=settings.CHAT_UPLOAD_WORKER_WALL_SECONDS,
        )
        try:  # pebble kills the worker at the timeout; the wait has its own bound all the same
            return future.result(timeout=settings.CHAT_UPLOAD_WORKER_WALL_SECONDS + RESULT_GRACE_SECONDS)
        except FutureTimeout as exc:
            future.cancel()  # stops the worker if it still runs
            raise AttachmentUnreadable("That file takes too long to read.") from exc
        except (pebble.ProcessExpired, MemoryError) as exc:  # killed past its CPU, or out of memory
            raise AttachmentUnreadable(TOO_COSTLY) from exc
        except (CancelledError, OSError, RuntimeError) as exc:  # the pool stopped under it (at exit)
            raise AttachmentsBusy(retry_after=BUSY_RETRY_AFTER) from exc
    finally:
        slots.release()


def database_connection_release() -> None:
    """Give back the request's database connection (to the pool, or closed) before a wait that needs
    none; the next query takes one again. Not inside a transaction, whose connection it is."""
    if not connection.in_atomic_block:
        connection.close()


def pool_stop() -> None:
    """Stop the workers (at exit; tests that change the pool's settings start a new one)."""
    global _pool, _slots
    with _lock:
        pool, _pool, _slots = _pool, None, None
    if pool is not None:
        pool.stop()
        pool.join(timeout=5)


def _pool_running() -> tuple[pebble.ProcessPool, threading.BoundedSemaphore]:
    global _pool, _slots, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid() or not _pool.active:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(WORKER_PRELOAD)
            _pool = pebble.ProcessPool(
                max_workers=settings.CHAT_UPLOAD_WORKERS,
                max_tasks=settings.CHAT_UPLOAD_WORKER_TASKS,
                initializer=_worker_start,
                initargs=(settings.CHAT_UPLOAD_WORKER_MEMORY_MB * 1024 * 1024,),
                context=context,
            )
            _slots = threading.BoundedSemaphore(settings.CHAT_UPLOAD_WORKERS)
            _pool_pid = os.getpid()
            # Stopped at exit before multiprocessing joins this process's children (its workers among
            # them): in a multiprocessing child, where atexit does not run, the exit would wait forever.
            multiprocessing.util.Finalize(None, pool_stop, exitpriority=10)
        assert _slots is not None
        return _pool, _slots


def _worker_start(memory_bytes: int) -> None:
    """In each new worker: its address space bounded, and no core file when the kernel kills it."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _worker_check(data: bytes, limits: DecodeLimits, cpu_seconds: int) -> Checked:
    """In a worker: one file, with `cpu_seconds` more CPU than the worker spent so far (RLIMIT_CPU counts
    a process's whole life; its soft limit may be raised again for the next file, up to the hard one)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    spent = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(spent) + cpu_seconds
    resource.setrlimit(
        resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard)
    )
    return upload_check(data, limits)


def _forked_child_forgets_the_parents_workers() -> None:
    """In a process forked from this one (a test's live server, a server forking its workers): the pool
    and the fork server are the parent's children, not this process's (waiting on them fails with
    ECHILD, and the upload with a broken pool), so it forgets both and starts its own at its first upload.
    The locks are new too: a thread of the parent may have held one at the fork."""
    global _lock, _pool, _slots
    _lock, _pool, _slots = threading.Lock(), None, None
    server = forkserver._forkserver  # the stdlib keeps one per process; 3.11 has no reset of its own
    if server._forkserver_alive_fd is not None:
        os.close(server._forkserver_alive_fd)  # the parent's end stays open in the parent
    server._forkserver_address = server._forkserver_alive_fd = server._forkserver_pid = None
    server._lock = threading.Lock()


os.register_at_fork(after_in_child=_forked_child_forgets_the_parents_workers)
atexit.register(pool_stop)
