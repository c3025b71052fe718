"""Wall-clock time in MLflow's unit (milliseconds since the epoch), from one place."""

import time


def now_ms() -> int:
    return int(time.time() * 1000)
