#!/usr/bin/env python3
"""Side-by-side table of two benchmark result files (labdeck first, the peer second), with
the ratio in labdeck's favour for each figure: higher-is-better figures divide labdeck by
the peer, lower-is-better ones (latencies, seconds, memory) the peer by labdeck."""

from __future__ import annotations

import json
import sys

TRACKING = [
    ("a log-metric sequential, calls/s", "a_single_log_metric.calls_per_s", True),
    ("a log-metric p50, ms", "a_single_log_metric.p50_ms", False),
    ("b log-batch x1000, metrics/s", "b_log_batch.metrics_per_s", True),
    ("c 16 threads log-metric, calls/s", "c_concurrent_log_metric.calls_per_s", True),
    ("c 16 threads p99, ms", "c_concurrent_log_metric.p99_ms", False),
    ("d populate 5000 runs, s", "d_populate_and_search.populate_s", False),
    ("d search filter+order max 100, p50 ms", "d_populate_and_search.search_filter.p50_ms", False),
    ("d search no filter max 1000, p50 ms", "d_populate_and_search.search_nofilter_1000.p50_ms", False),
    ("d page through 5000 runs, s", "d_populate_and_search.search_paging_all.total_s", False),
    ("e get-history 100k points, p50 s", "e_metric_history.get_history_p50_s", False),
    ("f artifact upload, MiB/s", "f_artifact_roundtrip.upload_mib_per_s", True),
    ("f artifact download, MiB/s", "f_artifact_roundtrip.download_mib_per_s", True),
    ("server RSS after the run, MiB", "f_artifact_roundtrip.server_rss_mib_after", False),
]
REGISTRY = [
    ("populate models (x versions), models/s", "populate.models_per_s", True),
    ("search by tag, p50 ms", "search_by_tag.p50_ms", False),
    ("search by tag, p99 ms", "search_by_tag.p99_ms", False),
    ("search by name prefix, p50 ms", "search_by_name_prefix.p50_ms", False),
    ("versions search, p50 ms", "versions_search.p50_ms", False),
    ("resolve models:/x@alias, p50 ms", "resolve_alias.p50_ms", False),
]


def pick(data: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def main() -> None:
    ours, peer = (json.load(open(path)) for path in sys.argv[1:3])
    rows = TRACKING if "a_single_log_metric" in ours.get("results", {}) else REGISTRY
    print("| figure | labdeck | peer | labdeck advantage |")
    print("|---|---:|---:|---:|")
    for label, key, higher_better in rows:
        a, b = pick(ours["results"], key), pick(peer["results"], key)
        if a is None or b is None:
            ratio = "n/a"
        else:
            ratio = f"{(a / b if higher_better else b / a):.1f}x" if min(a, b) > 0 else "n/a"
        print(f"| {label} | {a} | {b} | {ratio} |")


if __name__ == "__main__":
    main()
