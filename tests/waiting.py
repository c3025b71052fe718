"""Waiting for something a test caused to become true: polled, with a generous deadline,
never asserted as a duration."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

WAIT_S = 120.0  # how long a scenario waits for a state before it says what it saw instead


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT_S, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something true, and return that; else fail saying
    ``what`` was never seen, and what ``check`` last returned."""
    deadline = time.monotonic() + timeout
    while True:
        seen = check()
        if seen:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what} within {timeout:g} s (last: {seen!r})")
        time.sleep(interval)
