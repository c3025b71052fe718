"""What every compute backend does: converge a workload to its spec, say what runs, stop
it, and show its logs. The controller calls ``apply`` for every desired workload on each
tick; a backend keeps no state that it cannot rebuild from what really runs (and, for
local processes, from the database)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from labdeck.compute.workload import Workload, WorkloadStatus


class ComputeBackend(ABC):
    name: str

    async def start(self) -> None:
        """Find what already runs (a restarted server adopts its workloads)."""

    @abstractmethod
    async def apply(self, workload: Workload) -> WorkloadStatus:
        """Take one step towards ``workload`` (idempotent) and report where it stands."""

    @abstractmethod
    async def delete(self, name: str) -> None:
        """Stop every replica of the workload and forget it."""

    @abstractmethod
    async def names(self) -> list[str]:
        """Every workload this backend runs, desired or not (to find orphans)."""

    @abstractmethod
    async def logs(self, name: str, tail: int) -> dict[str, list[str]]:
        """The last ``tail`` lines of each replica's output, by replica id."""

    async def close(self) -> None:
        """Let go of the backend; what runs keeps running."""
