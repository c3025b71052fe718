"""The serving benchmark's table: reads bench/results/serving/<server>.txt (written by
bench/serving_side_by_side.sh) and prints req/s, p50 and p99 per scenario for each server,
with labdeck's ratio to MLServer.

    python3 bench/serving_table.py bench/results/serving
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SWEEP = re.compile(r"^(\S+)/(\S+)/(\S+)\s+(\d+)\s+([\d.]+)\s+([\d.NA]+)\s+([\d.NA]+)\s+(\d+)\s+(\d+)")
GRPC = re.compile(r"^grpc (\S+) rows=\d+ conc=(\d+) .*req/s=([\d.]+) p50_ms=([\d.]+) p99_ms=([\d.]+) errors=(\d+)")
TOTAL = re.compile(r"TOTAL rss ([\d.]+) MiB, pss ([\d.]+) MiB \((\d+) processes\)")
PEER = "mlserver"


def read(folder: Path) -> tuple[dict[tuple[str, str], tuple[float, float, float, int]], dict[str, str]]:
    """{(server, scenario): (req/s, p50 ms, p99 ms, failed)} and {server: memory line}."""
    figures: dict[tuple[str, str], tuple[float, float, float, int]] = {}
    memory: dict[str, str] = {}
    for path in sorted(folder.glob("*.txt")):
        server = path.stem
        for line in path.read_text().splitlines():
            if m := SWEEP.match(line):
                scenario = f"{m[2]} {m[3]} c{m[4]}"
                figures[(m[1], scenario)] = (float(m[5]), _ms(m[6]), _ms(m[7]), int(m[8]) + int(m[9]))
            elif m := GRPC.match(line):
                figures[(server, f"{m[1]} grpc c{m[2]}")] = (float(m[3]), float(m[4]), float(m[5]), int(m[6]))
            elif m := TOTAL.search(line):
                memory[server] = f"{float(m[1]):.0f} MiB RSS, {float(m[2]):.0f} MiB PSS, {m[3]} process(es)"
    return figures, memory


def _ms(value: str) -> float:
    return float("nan") if value == "NA" else float(value)


def main(folder: Path) -> None:
    figures, memory = read(folder)
    servers = sorted({s for s, _ in figures}, key=lambda s: (s != PEER, s))
    scenarios = sorted({sc for _, sc in figures}, key=lambda sc: (sc.split()[0], sc.split()[1], int(sc.split()[2][1:])))
    print("| scenario | " + " | ".join(f"{s} req/s (p50 / p99 ms)" for s in servers) + " | " + " | ".join(f"{s} / {PEER}" for s in servers if s != PEER) + " |")
    print("|---" * (1 + len(servers) + len(servers) - 1) + "|")
    for scenario in scenarios:
        cells, ratios = [], []
        peer = figures.get((PEER, scenario))
        for server in servers:
            found = figures.get((server, scenario))
            if found is None:
                cells.append("")
            else:
                rps, p50, p99, failed = found
                cells.append(f"{rps:,.0f} ({p50:.2f} / {p99:.2f})" + (f" {failed} failed" if failed else ""))
            if server != PEER:
                ratios.append(f"{found[0] / peer[0]:.1f}x" if found and peer else "")
        print(f"| {scenario} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    print()
    for server in servers:
        if server in memory:
            print(f"- memory, {server}: {memory[server]}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/serving"))
