"""Search against an oracle of MLflow's semantics, on SQLite and PostgreSQL.

A few hundred runs are logged over REST with random metrics (NaN, negatives, ties,
missing keys), params, tags, start times (with ties), datasets and deleted runs. The
oracle below restates MLflow's rules in plain Python: clauses are ANDed; a clause on a
missing key never matches, except ``IS NULL``; a NaN metric satisfies only ``!=``; LIKE is
case-sensitive and ILIKE is not; each order_by key puts missing values last in both
directions (a NaN metric after numbers and before missing), then ``start_time DESC``
unless ordered explicitly, then ``run_id``. Results are compared through raw REST (also
paged), ``MlflowClient.search_runs`` and ``mlflow.search_runs`` (pandas).

Experiments search and logged-model search get the same treatment on smaller data.
"""

from __future__ import annotations

import base64
import itertools
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import mlflow
import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

NAN = float("nan")
METRIC_POOL = [-250.0, -1.5, -1.0, 0.0, 0.001, 0.5, 0.5, 1.0, 2.0, 3.25, 10.0, 1000.0, NAN]
P0_POOL = ["a", "A", "ab", "Ab", "aB", "b", "a_b", "a%b", "axb", "x"]  # case and wildcard traps
P1_POOL = ["alpha", "beta", "gamma", "delta", "beta"]  # lowercase: sorts the same in any collation
T0_POOL = ["red", "green", "blue", "red"]
USERS = ["alice", "bob", "carol"]
STATUSES = ["RUNNING", "FINISHED", "FAILED", "KILLED"]
START_TIMES = [1_700_000_000_000 + 1000 * i for i in range(40)]  # ~300 runs on 40 instants: ties


# ---------------------------------------------------------------------------- the runs


@dataclass
class RunModel:
    run_id: str
    experiment_id: str
    name: str
    user_id: str
    start_time: int
    status: str = "RUNNING"
    end_time: int | None = None
    deleted: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[tuple[str, str, str | None]] = field(default_factory=list)  # name, digest, context


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def wire_value(value: float) -> Any:
    return "NaN" if math.isnan(value) else value


def create_runs(api: httpx.Client, count: int, seed: int) -> tuple[list[str], list[RunModel]]:
    """``count`` runs over two experiments, logged through the REST API."""
    rng = random.Random(seed)
    experiments = [ok(api.post("/experiments/create", json={"name": f"search-{seed}-{i}"}))["experiment_id"] for i in range(2)]
    runs: list[RunModel] = []
    for i in range(count):
        model = RunModel(
            run_id="",
            experiment_id=experiments[i % 2],
            name=f"r{i:03d}",
            user_id=rng.choice(USERS),
            start_time=rng.choice(START_TIMES),
        )
        created = ok(
            api.post(
                "/runs/create",
                json={
                    "experiment_id": model.experiment_id,
                    "run_name": model.name,
                    "user_id": model.user_id,
                    "start_time": model.start_time,
                },
            )
        )
        model.run_id = created["run"]["info"]["run_id"]
        model.tags["mlflow.runName"] = model.name

        metrics = []
        for key, presence in (("m0", 0.9), ("m1", 0.8), ("m2", 0.3)):
            if rng.random() < presence:
                # an older point at a lower step first: only the latest may count
                history = [(0, rng.choice(METRIC_POOL))] if rng.random() < 0.3 else []
                history.append((5, rng.choice(METRIC_POOL)))
                for step, value in history:
                    metrics.append({"key": key, "value": wire_value(value), "timestamp": 1000 + step, "step": step})
                model.metrics[key] = history[-1][1]
        if rng.random() < 0.85:
            model.params["p0"] = rng.choice(P0_POOL)
        if rng.random() < 0.7:
            model.params["p1"] = rng.choice(P1_POOL)
        if rng.random() < 0.75:
            model.tags["t0"] = rng.choice(T0_POOL)
        if rng.random() < 0.2:
            model.tags["t1"] = rng.choice(["Yes", "yes", "YES"])
        ok(
            api.post(
                "/runs/log-batch",
                json={
                    "run_id": model.run_id,
                    "metrics": metrics,
                    "params": [{"key": k, "value": v} for k, v in model.params.items()],
                    "tags": [{"key": k, "value": v} for k, v in model.tags.items() if k != "mlflow.runName"],
                },
            )
        )
        if rng.random() < 0.25:
            for _ in range(rng.choice([1, 2])):
                name, digest = rng.choice([("ds1", "d1"), ("ds1", "d2"), ("ds2", "d3"), ("Ds3", "d4")])
                context = rng.choice(["train", "eval", None])
                if any(d[:2] == (name, digest) for d in model.datasets):
                    continue
                tags = [{"key": "mlflow.data.context", "value": context}] if context else []
                ok(
                    api.post(
                        "/runs/log-inputs",
                        json={
                            "run_id": model.run_id,
                            "datasets": [
                                {
                                    "dataset": {"name": name, "digest": digest, "source_type": "local", "source": "/d"},
                                    "tags": tags,
                                }
                            ],
                        },
                    )
                )
                model.datasets.append((name, digest, context))
        if rng.random() < 0.6:
            model.status = rng.choice(STATUSES[1:])
            model.end_time = model.start_time + rng.choice([10, 20, 20, 30])
            ok(api.post("/runs/update", json={"run_id": model.run_id, "status": model.status, "end_time": model.end_time}))
        if rng.random() < 0.1:
            ok(api.post("/runs/delete", json={"run_id": model.run_id}))
            model.deleted = True
        runs.append(model)
    return experiments, runs


# ---------------------------------------------------------------------------- the oracle


def like(value: str, pattern: str, *, case_sensitive: bool) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE | re.DOTALL) is not None


def compare(lhs: Any, op: str, rhs: Any) -> bool:
    if op == "=":
        return lhs == rhs
    if op == "!=":
        return lhs != rhs
    if op == ">":
        return lhs > rhs
    if op == ">=":
        return lhs >= rhs
    if op == "<":
        return lhs < rhs
    if op == "<=":
        return lhs <= rhs
    if op == "LIKE":
        return like(lhs, rhs, case_sensitive=True)
    if op == "ILIKE":
        return like(lhs, rhs, case_sensitive=False)
    if op == "IN":
        return lhs in rhs
    if op == "NOT IN":
        return lhs not in rhs
    raise AssertionError(op)


@dataclass(frozen=True)
class Cond:
    """One clause: its filter text and the oracle's predicate."""

    text: str
    kind: str
    key: str
    op: str
    value: Any

    def matches(self, run: RunModel) -> bool:
        if self.kind in ("metric", "param", "tag"):
            lhs = {"metric": run.metrics, "param": run.params, "tag": run.tags}[self.kind].get(self.key)
            if self.op == "IS NULL":
                return lhs is None
            if self.op == "IS NOT NULL":
                return lhs is not None
            # a missing key never matches; NaN compares as Python's NaN: only != holds
            return lhs is not None and compare(lhs, self.op, self.value)
        if self.kind == "dataset":
            index = {"name": 0, "digest": 1, "context": 2}[self.key]
            return any(d[index] is not None and compare(d[index], self.op, self.value) for d in run.datasets)
        lhs = getattr(run, self.key)
        return lhs is not None and compare(lhs, self.op, self.value)


def sort_key_value(run: RunModel, kind: str, key: str) -> tuple[int, Any]:
    """(rank, value): rank 0 for a value, 1 for NaN, 2 for missing; MLflow keeps NaN as 0."""
    if kind == "attribute":
        value = getattr(run, key)
        return (0, value) if value is not None else (2, 0)
    value = {"metric": run.metrics, "param": run.params, "tag": run.tags}[kind].get(key)
    if value is None:
        return 2, (0.0 if kind == "metric" else "")
    if kind == "metric" and math.isnan(value):
        return 1, 0.0
    return 0, value


@dataclass(frozen=True)
class Order:
    text: str
    kind: str
    key: str
    ascending: bool


def oracle(
    runs: list[RunModel], experiment_ids: list[str], view: str, conds: list[Cond], orders: list[Order]
) -> list[str]:
    wanted = {"ACTIVE_ONLY": (False,), "DELETED_ONLY": (True,), "ALL": (False, True)}[view]
    found = [
        r for r in runs if r.experiment_id in experiment_ids and r.deleted in wanted and all(c.matches(r) for c in conds)
    ]
    # Stable sorts from the last key to the first: run_id, start_time DESC, then each order.
    found.sort(key=lambda r: r.run_id)
    if not any(o.kind == "attribute" and o.key == "start_time" for o in orders):
        found.sort(key=lambda r: r.start_time, reverse=True)
    for order in reversed(orders):
        found.sort(key=lambda r, o=order: sort_key_value(r, o.kind, o.key)[1], reverse=not order.ascending)
        found.sort(key=lambda r, o=order: sort_key_value(r, o.kind, o.key)[0])
    return [r.run_id for r in found]


# ---------------------------------------------------------------------------- random filters


def random_cond(rng: random.Random, runs: list[RunModel]) -> Cond:
    roll = rng.randrange(9)
    if roll <= 2:
        key = rng.choice(["m0", "m1", "m2"])
        op = rng.choice(["=", "!=", ">", ">=", "<", "<="])
        value = rng.choice([v for v in METRIC_POOL if not math.isnan(v)] + [0.75, -3.0])
        literal = rng.choice([repr(value), f"{value:e}"]) if value else "0"
        return Cond(f"{rng.choice(['metrics', 'metric'])}.{key} {op} {literal}", "metric", key, op, value)
    if roll <= 4:
        kind, key, pool = rng.choice([("param", "p0", P0_POOL), ("param", "p1", P1_POOL), ("tag", "t0", T0_POOL), ("tag", "t1", ["yes"])])
        word = rng.choice(["params", "param", "parameters"] if kind == "param" else ["tags", "tag"])
        op = rng.choice(["=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"])
        if op.startswith("IS"):
            return Cond(f"{word}.{key} {op}", kind, key, op, None)
        value = rng.choice(pool) if op in ("=", "!=") else rng.choice(["a%", "A%", "%b", "a_b", "%E%", "Y%", "%e%", "b%"])
        return Cond(f"{word}.`{key}` {op} '{value}'", kind, key, op, value)
    if roll <= 6:
        choice = rng.randrange(8)
        if choice == 0:
            op = rng.choice(["=", "!="])
            value = rng.choice(STATUSES)
            return Cond(f"attributes.status {op} '{value}'", "attribute", "status", op, value)
        if choice == 1:
            op, value = rng.choice([("LIKE", "r0%"), ("ILIKE", "R1%"), ("LIKE", "R1%"), ("=", "r007"), ("LIKE", "%5")])
            name = rng.choice(["run_name", "`Run name`", '"Run Name"', "attributes.run_name"])
            return Cond(f"{name} {op} '{value}'", "attribute", "name", op, value)
        if choice == 2:
            op = rng.choice(["=", "!="])
            value = rng.choice(USERS)
            return Cond(f"user_id {op} \"{value}\"", "attribute", "user_id", op, value)
        if choice in (3, 4):
            op = rng.choice([">", ">=", "<", "<=", "=", "!="])
            value = rng.choice(START_TIMES)
            if choice == 3:
                name = rng.choice(["start_time", "created", "attributes.Created"])
                return Cond(f"{name} {op} {value}", "attribute", "start_time", op, value)
            return Cond(f"end_time {op} {value + 20}", "attribute", "end_time", op, value + 20)
        ids = tuple(r.run_id for r in rng.sample(runs, 40))
        op = rng.choice(["IN", "NOT IN"])
        listed = ", ".join(f"'{i}'" for i in ids)
        return Cond(f"run_id {op} ({listed})", "attribute", "run_id", op, ids)
    key = rng.choice(["name", "digest", "context"])
    word = rng.choice(["dataset", "datasets"])
    pool = {"name": ["ds1", "ds2", "Ds3"], "digest": ["d1", "d2", "d3"], "context": ["train", "eval"]}[key]
    op = rng.choice(["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"])
    if op in ("IN", "NOT IN"):
        items = tuple(rng.sample(pool, 2))
        return Cond(f"{word}.{key} {op} ({', '.join(repr(i) for i in items)})", "dataset", key, op, items)
    value = rng.choice(pool) if op in ("=", "!=") else rng.choice(["ds%", "DS%", "%1", "d_", "tr%", "%A%"])
    return Cond(f"{word}.{key} {op} '{value}'", "dataset", key, op, value)


ORDERABLE = [
    ("metrics.m0", "metric", "m0"),
    ("metrics.m1", "metric", "m1"),
    ("metric.`m2`", "metric", "m2"),
    ("params.p1", "param", "p1"),
    ("tags.t0", "tag", "t0"),
    ("start_time", "attribute", "start_time"),
    ("created", "attribute", "start_time"),
    ("end_time", "attribute", "end_time"),
    ("attributes.run_name", "attribute", "name"),
    ("status", "attribute", "status"),
    ("user_id", "attribute", "user_id"),
]


def random_orders(rng: random.Random) -> list[Order]:
    orders: list[Order] = []
    for text, kind, key in rng.sample(ORDERABLE, rng.choice([0, 1, 1, 2, 2, 3])):
        if any((o.kind, o.key) == (kind, key) for o in orders):
            continue
        direction = rng.choice(["", " ASC", " DESC", " desc"])
        orders.append(Order(text + direction, kind, key, "DESC" not in direction.upper()))
    return orders


@dataclass
class Case:
    experiments: list[str]
    view: str
    conds: list[Cond]
    orders: list[Order]

    @property
    def filter(self) -> str:
        return " AND ".join(c.text for c in self.conds)

    @property
    def order_by(self) -> list[str]:
        return [o.text for o in self.orders]


def cases(experiments: list[str], runs: list[RunModel]) -> list[Case]:
    both = experiments
    chosen = [
        # the rules one at a time, then random combinations
        Case(both, "ACTIVE_ONLY", [], []),
        Case(both, "ALL", [], [Order("metrics.m0 DESC", "metric", "m0", False)]),
        Case(both, "ALL", [], [Order("metrics.m0", "metric", "m0", True)]),
        Case(both, "ACTIVE_ONLY", [Cond("metrics.m0 != 0.5", "metric", "m0", "!=", 0.5)], []),
        Case(both, "ACTIVE_ONLY", [Cond("metrics.m0 != 0", "metric", "m0", "!=", 0.0)], []),
        Case(both, "ACTIVE_ONLY", [Cond("metrics.m0 = 0", "metric", "m0", "=", 0.0)], []),
        Case(both, "ACTIVE_ONLY", [Cond("metrics.m2 <= 0", "metric", "m2", "<=", 0.0)], []),
        Case(both, "ALL", [Cond("params.p0 LIKE 'a%'", "param", "p0", "LIKE", "a%")], [Order("params.p1 DESC", "param", "p1", False)]),
        Case(both, "ALL", [Cond("params.p0 ILIKE 'a%'", "param", "p0", "ILIKE", "a%")], [Order("tags.t0", "tag", "t0", True)]),
        Case(both, "ALL", [Cond("params.p0 LIKE 'a_b'", "param", "p0", "LIKE", "a_b")], []),
        Case(both, "ALL", [Cond("params.p1 IS NULL", "param", "p1", "IS NULL", None)], []),
        Case(both, "ALL", [Cond("tags.t0 IS NOT NULL", "tag", "t0", "IS NOT NULL", None)], []),
        Case(both, "ALL", [Cond("tags.t1 != 'yes'", "tag", "t1", "!=", "yes")], []),
        Case(both, "DELETED_ONLY", [], [Order("end_time DESC", "attribute", "end_time", False)]),
        Case(both, "ACTIVE_ONLY", [], [Order("end_time", "attribute", "end_time", True)]),
        Case(both, "ACTIVE_ONLY", [], [Order("start_time ASC", "attribute", "start_time", True)]),
        Case(both, "ALL", [Cond("dataset.name = 'ds1'", "dataset", "name", "=", "ds1")], []),
        Case(both, "ALL", [Cond("dataset.context != 'train'", "dataset", "context", "!=", "train")], []),
        Case(
            both,
            "ACTIVE_ONLY",
            [
                Cond("metrics.m0 > 0.5", "metric", "m0", ">", 0.5),
                Cond("params.p1 = 'beta'", "param", "p1", "=", "beta"),
            ],
            [Order("metrics.m1 DESC", "metric", "m1", False)],
        ),
        Case(
            [experiments[1]],
            "ALL",
            [Cond("`Run name` ILIKE 'R0%'", "attribute", "name", "ILIKE", "R0%")],
            [Order("metrics.m2 DESC", "metric", "m2", False), Order("params.p1", "param", "p1", True)],
        ),
    ]
    rng = random.Random(7)
    while len(chosen) < 44:
        conds = [random_cond(rng, runs) for _ in range(rng.choice([1, 1, 2, 2, 3]))]
        exps = rng.choice([both, both, [experiments[0]], [experiments[1]]])
        chosen.append(Case(exps, rng.choice(["ACTIVE_ONLY", "ACTIVE_ONLY", "ALL", "DELETED_ONLY"]), conds, random_orders(rng)))
    return chosen


# ---------------------------------------------------------------------------- searching


def rest_search(api: httpx.Client, case: Case, max_results: int | None = None, page_token: str | None = None) -> dict:
    body: dict[str, Any] = {
        "experiment_ids": case.experiments,
        "filter": case.filter,
        "run_view_type": case.view,
        "order_by": case.order_by,
    }
    if max_results is not None:
        body["max_results"] = max_results
    if page_token is not None:
        body["page_token"] = page_token
    return ok(api.post("/runs/search", json=body))


def rest_ids(api: httpx.Client, case: Case) -> list[str]:
    response = rest_search(api, case)
    assert "next_page_token" not in response
    return [r["info"]["run_id"] for r in response.get("runs", [])]


def paged_ids(fetch: Callable[[str | None], tuple[list[str], str | None]]) -> list[str]:
    """Every page until there is no token; a page with a token is never short or empty."""
    ids: list[str] = []
    token: str | None = None
    for _ in range(1000):
        page, token = fetch(token)
        ids.extend(page)
        if not token:
            return ids
        assert page, "a page that promises more must not be empty"
    raise AssertionError("paging did not end")


def rest_pages(api: httpx.Client, case: Case, size: int) -> list[str]:
    def fetch(token: str | None) -> tuple[list[str], str | None]:
        response = rest_search(api, case, size, token)
        page = [r["info"]["run_id"] for r in response.get("runs", [])]
        assert len(page) == size or "next_page_token" not in response
        return page, response.get("next_page_token")

    return paged_ids(fetch)


VIEW = {"ACTIVE_ONLY": ViewType.ACTIVE_ONLY, "DELETED_ONLY": ViewType.DELETED_ONLY, "ALL": ViewType.ALL}


def test_search_runs_matches_the_oracle(server, api, mlflow_at):
    experiments, runs = create_runs(api, 300, seed=1)
    client = mlflow_at(server)

    # the data has what the rules are about
    assert len({r.start_time for r in runs}) < len(runs)  # start_time ties
    assert any(math.isnan(r.metrics.get("m0", 0)) for r in runs)
    assert sum(r.metrics.get("m0") == 0.5 for r in runs) > 2  # metric ties
    assert any("m2" not in r.metrics for r in runs) and any(r.deleted for r in runs) and any(r.datasets for r in runs)

    all_cases = cases(experiments, runs)
    sizes = []
    for number, case in enumerate(all_cases):
        expected = oracle(runs, case.experiments, case.view, case.conds, case.orders)
        sizes.append(len(expected))
        where = f"case {number}: filter={case.filter!r} order_by={case.order_by} view={case.view}"

        assert rest_ids(api, case) == expected, where
        assert rest_pages(api, case, 50) == expected, where

        found = client.search_runs(case.experiments, case.filter, VIEW[case.view], 1000, case.order_by)
        assert [r.info.run_id for r in found] == expected, where
        assert found.token is None

        if number % 4 == 0:
            frame = mlflow.search_runs(
                experiment_ids=case.experiments,
                filter_string=case.filter,
                run_view_type=VIEW[case.view],
                order_by=case.order_by,
            )
            assert (frame["run_id"].tolist() if len(frame) else []) == expected, where
        if number % 8 == 0:
            assert rest_pages(api, case, 7) == expected, where

            def client_page(token: str | None, case: Case = case) -> tuple[list[str], str | None]:
                page = client.search_runs(case.experiments, case.filter, VIEW[case.view], 13, case.order_by, token)
                return [r.info.run_id for r in page], page.token

            assert paged_ids(client_page) == expected, where

    # the cases are not degenerate: most match something, some span several pages
    assert sum(1 for s in sizes if s) >= 0.75 * len(sizes)
    assert sum(1 for s in sizes if s > 50) >= 5
    assert sum(1 for s in sizes if 0 < s < 300) >= 20


def test_search_runs_returns_what_was_logged(server, api, mlflow_at):
    experiments, runs = create_runs(api, 40, seed=2)
    client = mlflow_at(server)
    by_id = {r.run_id: r for r in runs}
    found = client.search_runs(experiments, "", ViewType.ALL, 1000, ["metrics.m0 DESC"])
    assert {r.info.run_id for r in found} == set(by_id)
    for run in found:
        model = by_id[run.info.run_id]
        assert run.info.run_name == model.name
        assert run.info.start_time == model.start_time
        assert run.info.end_time == model.end_time
        assert run.info.status == model.status
        assert run.info.lifecycle_stage == ("deleted" if model.deleted else "active")
        assert run.data.params == model.params
        assert {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.runName"} == model.tags
        assert set(run.data.metrics) == set(model.metrics)
        for key, value in model.metrics.items():
            got = run.data.metrics[key]
            assert (math.isnan(got) and math.isnan(value)) or got == value
        assert sorted((d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs) == sorted(
            d[:2] for d in model.datasets
        )


def test_paging_limits_and_tokens(server, api):
    experiments, runs = create_runs(api, 60, seed=3)
    case = Case(experiments, "ALL", [], [Order("metrics.m1 DESC", "metric", "m1", False)])
    expected = oracle(runs, experiments, "ALL", [], case.orders)
    assert len(expected) == 60

    for size in (1, 7, 59, 60):
        assert rest_pages(api, case, size) == expected
    assert [r["info"]["run_id"] for r in rest_search(api, case, 61)["runs"]] == expected
    assert "next_page_token" not in rest_search(api, case, 60)
    assert [r["info"]["run_id"] for r in rest_search(api, case, 50000)["runs"]] == expected
    assert [r["info"]["run_id"] for r in rest_search(api, case)["runs"]] == expected  # default 1000

    def error(body: dict[str, Any]) -> dict[str, Any]:
        response = api.post("/runs/search", json={"experiment_ids": experiments, **body})
        assert response.status_code == 400, response.text
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        return response.json()

    for bad in (50001, 0, -1):
        error({"max_results": bad})

    first = rest_search(api, case, 10)
    token = first["next_page_token"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token), "tokens are URL-safe"
    second = rest_search(api, case, 10, token)
    assert [r["info"]["run_id"] for r in second["runs"]] == expected[10:20]
    # a token may be reused, and the page size may change between pages
    assert [r["info"]["run_id"] for r in rest_search(api, case, 25, token)["runs"]] == expected[10:35]

    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    edited = base64.urlsafe_b64encode(raw.replace(b'"offset":10', b'"offset":3')).decode().rstrip("=")
    assert edited != token
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for tampered in ("garbage", "%%%", token[:-3], flipped, edited, base64.b64encode(b'{"offset": 10}').decode()):
        message = error({"run_view_type": "ALL", "order_by": case.order_by, "max_results": 10, "page_token": tampered})
        assert "page token" in message["message"].lower()
    # a token is bound to its search: another filter, order or view refuses it
    for other in ({"filter": "metrics.m1 > 0"}, {"order_by": ["metrics.m1 ASC"]}, {"run_view_type": "ACTIVE_ONLY"}):
        body = {"run_view_type": "ALL", "order_by": case.order_by, "max_results": 10, "page_token": token, **other}
        error(body)


def test_bad_filters_are_invalid_parameter_value(server, api, mlflow_at):
    experiments, _ = create_runs(api, 3, seed=4)
    client = mlflow_at(server)
    for text, message in [
        ("metrics.m0 > 1 OR metrics.m1 > 1", "Invalid clause(s) in filter string: 'OR'"),
        ("params.p0 = a", "Parameter value is either not quoted"),
        ("metrics.m0 > '1'", "Expected numeric value type for metric. Found '1'"),
        ("status IN ('FINISHED')", "Only ['run_id'] attributes support comparison with a list"),
        ("lifecycle_stage = 'deleted'", "Invalid attribute key 'lifecycle_stage' specified"),
        ("nope.x = 'a'", "Invalid entity type 'nope'"),
    ]:
        response = api.post("/runs/search", json={"experiment_ids": experiments, "filter": text})
        assert response.status_code == 400
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert message in response.json()["message"]
        with pytest.raises(MlflowException, match=re.escape(message)):
            client.search_runs(experiments, text)
    for order_by, message in [
        (["metrics.m0", "metrics.m0 DESC"], "`order_by` contains duplicate fields"),
        (["metrics.m0 DOWN"], "Invalid order_by clause 'metrics.m0 DOWN'"),
        (["foo"], "Invalid order by key 'foo' specified"),
    ]:
        response = api.post("/runs/search", json={"experiment_ids": experiments, "order_by": order_by})
        assert response.status_code == 400
        assert message in response.json()["message"]


# ---------------------------------------------------------------------------- experiments


@dataclass
class ExperimentModel:
    experiment_id: str
    name: str
    tags: dict[str, str]
    creation_time: int = 0
    last_update_time: int = 0
    deleted: bool = False


def test_search_experiments_matches_the_oracle(server, api, mlflow_at, monkeypatch):
    clock = iter(itertools.count())
    times = [2_000_000_000_000 + 1000 * (i // 3) for i in range(100)]  # three experiments per instant
    monkeypatch.setattr("labdeck.tracking.store.now_ms", lambda: times[next(clock)])
    rng = random.Random(5)
    names = ["alpha", "Alpha-2", "alpha_3", "ALPHA4", "beta", "Beta-b", "gamma", "gamma%", "delta", "epsilon", "zeta", "eta"]
    models: list[ExperimentModel] = []
    for name in names:
        tags = {"team": rng.choice(["ml", "ML", "data"])} if rng.random() < 0.7 else {}
        body = {"name": name, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        models.append(ExperimentModel(ok(api.post("/experiments/create", json=body))["experiment_id"], name, tags))
    for model in models[::4]:
        ok(api.post("/experiments/delete", json={"experiment_id": model.experiment_id}))
        model.deleted = True
    default = ok(api.get("/experiments/get", params={"experiment_id": "0"}))["experiment"]
    models.append(ExperimentModel("0", default["name"], {}))
    for model in models:
        stored = ok(api.get("/experiments/get", params={"experiment_id": model.experiment_id}))["experiment"]
        model.creation_time = stored["creation_time"]
        model.last_update_time = stored["last_update_time"]
        assert stored["name"] == model.name
    assert len({m.creation_time for m in models}) < len(models)  # creation_time ties

    def attr(model: ExperimentModel, key: str) -> Any:
        return int(model.experiment_id) if key == "experiment_id" else getattr(model, key)

    def expected(view: str, conds: list[tuple[str, str, str, Any]], order_by: list[tuple[str, bool]]) -> list[str]:
        wanted = {"ACTIVE_ONLY": (False,), "DELETED_ONLY": (True,), "ALL": (False, True)}[view]
        found = []
        for m in models:
            if m.deleted not in wanted:
                continue
            matched = True
            for kind, key, op, value in conds:
                if kind == "tag":
                    lhs = m.tags.get(key)
                    matched &= (lhs is None) if op == "IS NULL" else lhs is not None and compare(lhs, op, value)
                elif key == "experiment_id":
                    matched &= compare(m.experiment_id, op, value)
                else:
                    matched &= compare(attr(m, key), op, value)
            if matched:
                found.append(m)
        # MLflow: creation_time DESC, experiment_id ASC by default; otherwise the keys, then experiment_id DESC
        keys = order_by or [("creation_time", False), ("experiment_id", True)]
        if not any(k == "experiment_id" for k, _ in keys):
            keys = [*keys, ("experiment_id", False)]
        for key, ascending in reversed(keys):
            found.sort(key=lambda m, k=key: attr(m, k), reverse=not ascending)
        return [m.experiment_id for m in found]

    client = mlflow_at(server)
    t0 = times[0]
    checks = [
        ("ACTIVE_ONLY", "", [], []),
        ("ALL", "", [], []),
        ("DELETED_ONLY", "", [], []),
        ("ALL", "name LIKE 'alpha%'", [("a", "name", "LIKE", "alpha%")], []),
        ("ALL", "name ILIKE 'alpha%'", [("a", "name", "ILIKE", "alpha%")], [("name", False)]),
        ("ACTIVE_ONLY", "name LIKE '%a_'", [("a", "name", "LIKE", "%a_")], [("name", True)]),
        ("ALL", "tags.team = 'ml'", [("tag", "team", "=", "ml")], [("creation_time", True)]),
        ("ALL", "tags.team ILIKE 'ml'", [("tag", "team", "ILIKE", "ml")], [("creation_time", False)]),
        ("ALL", "tags.team IS NULL", [("tag", "team", "IS NULL", None)], []),
        ("ALL", "tag.team != 'data'", [("tag", "team", "!=", "data")], [("last_update_time", True)]),
        ("ALL", f"creation_time >= {t0 + 1000}", [("a", "creation_time", ">=", t0 + 1000)], [("experiment_id", False)]),
        (
            "ALL",
            f"creation_time < {t0 + 3000} AND name != 'beta'",
            [("a", "creation_time", "<", t0 + 3000), ("a", "name", "!=", "beta")],
            [("creation_time", True), ("name", False)],
        ),
        (
            "ALL",
            f"experiment_id IN ('{models[1].experiment_id}', '{models[2].experiment_id}', '0')",
            [("a", "experiment_id", "IN", (models[1].experiment_id, models[2].experiment_id, "0"))],
            [],
        ),
        ("ACTIVE_ONLY", "attribute.name = 'gamma%'", [("a", "name", "=", "gamma%")], []),
    ]
    sizes = []
    for view, text, conds, order in checks:
        order_by = [f"{k} {'ASC' if a else 'DESC'}" for k, a in order]
        want = expected(view, conds, order)
        sizes.append(len(want))
        where = f"{view} {text!r} {order_by}"

        def fetch(token: str | None, size: int, view=view, text=text, order_by=order_by) -> tuple[list[str], str | None]:
            body = {"view_type": view, "filter": text, "order_by": order_by, "max_results": size}
            if token:
                body["page_token"] = token
            response = ok(api.post("/experiments/search", json=body))
            return [e["experiment_id"] for e in response.get("experiments", [])], response.get("next_page_token")

        assert fetch(None, 1000) == (want, None), where
        assert paged_ids(lambda token, fetch=fetch: fetch(token, 3)) == want, where
        found = client.search_experiments(VIEW[view], 1000, text, order_by)
        assert [e.experiment_id for e in found] == want, where
    assert all(sizes) and any(3 < size < 13 for size in sizes)  # no check is vacuous

    for body, message in [
        ({}, "max_results"),
        ({"max_results": 0}, "max_results"),
        ({"max_results": 50001}, "max_results"),
        ({"max_results": 10, "filter": "creation_time > 1.5"}, "Invalid value for numeric attribute 'creation_time'"),
        ({"max_results": 10, "filter": "name IN ('alpha')"}, "Only ['experiment_id'] attributes support"),
        ({"max_results": 10, "filter": "attributes.name = 'alpha'"}, "Invalid entity type 'attributes'"),
        ({"max_results": 10, "order_by": ["tags.team"]}, "order_by"),
        ({"max_results": 10, "page_token": "bm9wZQ"}, "page token"),
    ]:
        response = api.post("/experiments/search", json=body)
        assert response.status_code == 400, body
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert message in response.json()["message"], body
    assert len(ok(api.post("/experiments/search", json={"max_results": 50000, "view_type": "ALL"}))["experiments"]) == 13


# ---------------------------------------------------------------------------- logged models


def test_search_logged_models_matches_the_oracle(server, api, monkeypatch):
    clock = iter(itertools.count())
    monkeypatch.setattr("labdeck.tracking.logged_models.now_ms", lambda: 3_000_000_000_000 + 1000 * (next(clock) // 2))
    experiment_id = ok(api.post("/experiments/create", json={"name": "models"}))["experiment_id"]
    run_id = ok(api.post("/runs/create", json={"experiment_id": experiment_id, "start_time": 1}))["run"]["info"]["run_id"]
    rng = random.Random(6)
    models: list[dict[str, Any]] = []
    for i in range(14):
        tags = {"team": rng.choice(["a", "b", "A"])} if rng.random() < 0.8 else {}
        params = {"lr": rng.choice(["0.1", "0.01"])} if rng.random() < 0.8 else {}
        body = {"experiment_id": experiment_id, "name": f"model-{i:02d}", "tags": [{"key": k, "value": v} for k, v in tags.items()]}
        body["params"] = [{"key": k, "value": v} for k, v in params.items()]
        if rng.random() < 0.6:
            body["model_type"] = rng.choice(["clf", "reg"])
        model = ok(api.post("/logged-models", json=body))["model"]["info"]
        entry = {
            "id": model["model_id"],
            "name": body["name"],
            "tags": tags,
            "params": params,
            "model_type": body.get("model_type"),
            "creation": model["creation_timestamp_ms"],
            "points": [],
        }
        # (timestamp, step, value, dataset): the latest is the newest timestamp, whatever its step
        for _ in range(rng.choice([0, 1, 2, 3])):
            entry["points"].append((rng.randrange(100, 200), rng.randrange(5), rng.choice([0.1, 0.4, 0.6, 0.9]), rng.choice([None, "ds1"])))
        entry["points"] = list({(p[0], p[3]): p for p in entry["points"]}.values())  # one point per instant
        models.append(entry)
    metrics = [
        {"key": "acc", "value": v, "timestamp": ts, "step": step, "model_id": m["id"], **({"dataset_name": ds, "dataset_digest": "dg"} if ds else {})}
        for m in models
        for ts, step, v, ds in m["points"]
    ]
    ok(api.post("/runs/log-batch", json={"run_id": run_id, "metrics": metrics}))
    assert len({m["creation"] for m in models}) < len(models)
    assert any(m["model_type"] is None for m in models) and any(not m["points"] for m in models)

    def latest(m: dict[str, Any], dataset: str | None) -> float | None:
        points = [p for p in m["points"] if dataset is None or p[3] == dataset]
        return max(points, key=lambda p: (p[0], p[1]))[2] if points else None

    def expected(conds: list[Callable[[dict[str, Any]], bool]], order: list[tuple[str, bool, str | None]]) -> list[str]:
        found = [m for m in models if all(c(m) for c in conds)]
        found.sort(key=lambda m: m["id"])
        if not any(f == "creation_timestamp" for f, _, _ in order):
            found.sort(key=lambda m: m["creation"], reverse=True)
        for field_name, ascending, dataset in reversed(order):
            def value(m: dict[str, Any], f: str = field_name, d: str | None = dataset) -> Any:
                if f.startswith("metrics."):
                    return latest(m, d)
                return {"name": m["name"], "model_type": m["model_type"], "creation_timestamp": m["creation"]}[f]

            present = sorted((m for m in found if value(m) is not None), key=value, reverse=not ascending)
            found = present + [m for m in found if value(m) is None]
        return [m["id"] for m in found]

    def any_point(m: dict[str, Any], test: Callable[[float], bool], dataset: str | None = None) -> bool:
        return any(test(p[2]) for p in m["points"] if dataset is None or p[3] == dataset)

    checks: list[tuple[str, list[Callable], list[dict[str, Any]], list[dict[str, Any]]]] = [
        ("", [], [], []),
        ("", [], [{"field_name": "model_type"}, {"field_name": "metrics.acc", "ascending": True}], []),
        ("", [], [{"field_name": "metrics.acc", "ascending": True}], []),
        ("name LIKE 'model-0%'", [lambda m: m["name"].startswith("model-0")], [{"field_name": "name", "ascending": False}], []),
        ("tags.team = 'a'", [lambda m: m["tags"].get("team") == "a"], [{"field_name": "metrics.acc", "ascending": False}], []),
        ("tags.team ILIKE 'a'", [lambda m: m["tags"].get("team", "").lower() == "a"], [{"field_name": "metrics.acc"}], []),
        ("params.lr = '0.1'", [lambda m: m["params"].get("lr") == "0.1"], [{"field_name": "model_type", "ascending": True}], []),
        ("tags.team IN ('a', 'b')", [lambda m: m["tags"].get("team") in ("a", "b")], [{"field_name": "model_type", "ascending": False}], []),
        ("metrics.acc > 0.5", [lambda m: any_point(m, lambda v: v > 0.5)], [{"field_name": "creation_timestamp", "ascending": True}], []),
        (
            "metrics.acc >= 0.6",
            [lambda m: any_point(m, lambda v: v >= 0.6, "ds1")],
            [{"field_name": "metrics.acc", "ascending": False, "dataset_name": "ds1"}],
            [{"dataset_name": "ds1"}],
        ),
        ("", [lambda m: any(p[3] == "ds1" for p in m["points"])], [], [{"dataset_name": "ds1", "dataset_digest": "dg"}]),
    ]
    for text, conds, order_by, datasets in checks:
        order = [(o["field_name"], o.get("ascending", True), o.get("dataset_name")) for o in order_by]
        want = expected(conds, order)
        assert want, text

        def fetch(token: str | None, size: int, text=text, order_by=order_by, datasets=datasets) -> tuple[list[str], str | None]:
            body: dict[str, Any] = {"experiment_ids": [experiment_id], "filter": text, "order_by": order_by, "max_results": size}
            if datasets:
                body["datasets"] = datasets
            if token:
                body["page_token"] = token
            response = ok(api.post("/logged-models/search", json=body))
            return [m["info"]["model_id"] for m in response.get("models", [])], response.get("next_page_token")

        where = f"{text!r} {order_by} {datasets}"
        assert fetch(None, 100) == (want, None), where
        assert paged_ids(lambda token, fetch=fetch: fetch(token, 4)) == want, where

    for body in (
        {"filter": "metric.acc > 1"},
        {"filter": "metrics.acc > 'x'"},
        {"order_by": [{"field_name": "params.lr"}]},
        {"order_by": [{"field_name": "nope"}]},
        {"page_token": "bm9wZQ"},
    ):
        response = api.post("/logged-models/search", json={"experiment_ids": [experiment_id], **body})
        assert response.status_code == 400, body
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
