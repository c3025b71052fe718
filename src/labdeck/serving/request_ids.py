"""Ids for requests that come without one: a random prefix per process and a counter.
Unique like a UUID4 per request, without reading the kernel's random source on every one
(``--workers`` processes are forked: each picks its own prefix after the fork)."""

from __future__ import annotations

import itertools
import os
import uuid


def _restart() -> None:
    global _prefix, _counter
    _prefix = uuid.uuid4().hex[:16]
    _counter = itertools.count(1)


_prefix: str
_counter: itertools.count[int]
_restart()
os.register_at_fork(after_in_child=_restart)


def new_request_id() -> str:
    return f"{_prefix}-{next(_counter)}"
