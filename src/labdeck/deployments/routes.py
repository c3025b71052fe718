"""The routing table the gateway reads: for each deployment, its predictors' traffic
weights, whether they are shadows, and the HTTP endpoints of their ready replicas.

The controller rebuilds it from the predictors' observed status after every reconcile
(the same rows any server replica can read from the database). Choosing a predictor is a
smooth weighted round-robin (nginx's): over any 100 requests an 80/20 split sends exactly
80 and 20, interleaved; choosing a replica within a predictor is round-robin.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PredictorRoute:
    name: str
    weight: int
    shadow: bool
    endpoints: list[str]  # "host:port" of ready replicas
    grpc_endpoints: list[str] = field(default_factory=list)
    _next: int = 0
    _current: int = 0  # the weighted round-robin's running score

    def endpoint(self) -> str | None:
        if not self.endpoints:
            return None
        self._next = (self._next + 1) % len(self.endpoints)
        return self.endpoints[self._next]


@dataclass
class DeploymentRoute:
    name: str
    namespace: str
    predictors: list[PredictorRoute]

    def choose(self) -> PredictorRoute | None:
        """The next non-shadow predictor with ready replicas, by weight."""
        live = [p for p in self.predictors if not p.shadow and p.weight > 0 and p.endpoints]
        if not live:
            return None
        total = sum(p.weight for p in live)
        for p in live:
            p._current += p.weight
        best = max(live, key=lambda p: p._current)
        best._current -= total
        return best

    def shadows(self) -> list[PredictorRoute]:
        return [p for p in self.predictors if p.shadow and p.endpoints]


class RoutingTable:
    def __init__(self) -> None:
        self._by_name: dict[str, DeploymentRoute] = {}
        self._by_seldon_path: dict[tuple[str, str], DeploymentRoute] = {}

    def get(self, name: str) -> DeploymentRoute | None:
        return self._by_name.get(name)

    def by_namespace(self, namespace: str, name: str) -> DeploymentRoute | None:
        return self._by_seldon_path.get((namespace, name))

    def update(self, routes: list[DeploymentRoute]) -> None:
        """Replace the table, keeping each predictor's round-robin position."""
        for route in routes:
            old = self._by_name.get(route.name)
            if old is None:
                continue
            previous = {p.name: p for p in old.predictors}
            for p in route.predictors:
                if p.name in previous:
                    p._next, p._current = previous[p.name]._next, previous[p.name]._current
        self._by_name = {r.name: r for r in routes}
        self._by_seldon_path = {(r.namespace, r.name): r for r in routes}

    def mark_down(self, name: str, endpoint: str) -> None:
        """A replica refused a connection: stop choosing it until the next update."""
        route = self._by_name.get(name)
        if route is None:
            return
        for p in route.predictors:
            if endpoint in p.endpoints:
                p.endpoints = [e for e in p.endpoints if e != endpoint]
