"""Run search: the filter grammar (parser and refusals, injection attempts) and the API."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from helpers import Auth, experiment, run

from inwire.kit.testing.plugin import assert_error
from inwire.services.training.runs.search import (
    And,
    Comparison,
    FilterSyntaxError,
    Or,
    OrderTerm,
    parse_filter,
    parse_order_by,
)


def test_parses_mlflow_style_filters() -> None:
    tree = parse_filter(
        "metrics.rmse < 0.5 and params.model = 'rf' AND tags.team = \"x\" and status = 'FINISHED'"
    )
    assert tree == And(
        (
            Comparison("metric", "rmse", "<", 0.5),
            Comparison("param", "model", "=", "rf"),
            Comparison("tag", "team", "=", "x"),
            Comparison("attribute", "status", "=", "finished"),
        )
    )


def test_parses_or_parentheses_quoted_keys_lists_and_nulls() -> None:
    tree = parse_filter(
        "metrics.`val loss` <= 1e-2 or (params.lr IN ('0.1', '0.01') and "
        "tags.\"mlflow.user\" LIKE 'a%' and params.depth IS NOT NULL and tags.x NOT IN ('y'))"
    )
    assert tree == Or(
        (
            Comparison("metric", "val loss", "<=", 0.01),
            And(
                (
                    Comparison("param", "lr", "IN", ("0.1", "0.01")),
                    Comparison("tag", "mlflow.user", "LIKE", "a%"),
                    Comparison("param", "depth", "IS NOT NULL", None),
                    Comparison("tag", "x", "NOT IN", ("y",)),
                )
            ),
        )
    )
    assert parse_filter("  ") is None
    when = parse_filter("attributes.start_time >= '2026-01-01T00:00:00Z'")
    assert when == Comparison("attribute", "start_time", ">=", datetime(2026, 1, 1, tzinfo=UTC))
    millis = parse_filter("start_time > 1767225600000")
    assert isinstance(millis, Comparison)
    assert millis.value == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_filter("params.name = 'it''s'") == Comparison("param", "name", "=", "it's")


@pytest.mark.parametrize(
    "text",
    [
        "metrics.rmse",
        "metrics.rmse <",
        "metrics.rmse < 'high'",
        "params.lr > '0.1'",
        "params.lr = 0.1",
        "bogus.x = 1",
        "nosuchattr = 'x'",
        "metrics.a = 1 and",
        "metrics.a = 1 or or metrics.b = 2",
        "(metrics.a = 1",
        "metrics.a = 1)",
        "status LIKE 'x%'",
        "start_time > 'yesterday'",
        "tags.t IN ()",
        "metrics.a = 1; DROP TABLE runs",
        "params.x = 'a' -- comment",
        "params.x = 'unterminated",
        "__import__('os').system('id')",
        "metrics.a = 1 UNION SELECT * FROM runs",
        "(" * 30 + "metrics.a = 1" + ")" * 30,
    ],
)
def test_refuses_what_the_grammar_does_not_accept(text: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.status == 400
    assert info.value.code == "INVALID_FILTER"


def test_order_by_terms() -> None:
    assert parse_order_by(["metrics.rmse DESC", "params.lr", "start_time asc"]) == [
        OrderTerm("metric", "rmse", True),
        OrderTerm("param", "lr", False),
        OrderTerm("attribute", "start_time", False),
    ]
    with pytest.raises(FilterSyntaxError):
        parse_order_by(["metrics.rmse sideways"])
    with pytest.raises(FilterSyntaxError):
        parse_order_by(["metrics.rmse; DROP TABLE runs"])


async def _runs(client: httpx.AsyncClient, auth: Auth) -> tuple[str, dict[str, str]]:
    exp = await experiment(client, auth)
    ids: dict[str, str] = {}
    specs = [
        ("rf-1", {"model": "rf", "depth": "3"}, {"team": "risk"}, 0.4, "finished"),
        ("rf-2", {"model": "rf", "depth": "5"}, {"team": "growth"}, 0.6, "failed"),
        ("gb-1", {"model": "gb"}, {"team": "risk"}, 0.2, "finished"),
        ("none", {"model": "Rf"}, {}, None, "running"),
    ]
    for name, params, tags, rmse, status in specs:
        r = await run(client, auth, exp, name=name, params=params, tags=tags)
        ids[name] = r["id"]
        if rmse is not None:
            await client.post(
                f"/api/v1/runs/{r['id']}/metrics",
                json={"key": "rmse", "value": rmse},
                headers=auth(),
            )
        if status != "running":
            await client.patch(f"/api/v1/runs/{r['id']}", json={"status": status}, headers=auth())
    return exp, ids


async def _names(client: httpx.AsyncClient, auth: Auth, **body: object) -> list[str]:
    r = await client.post("/api/v1/runs/search", json=body, headers=auth("viewer"))
    assert r.status_code == 200, r.text
    return [x["name"] for x in r.json()["data"]]


async def test_search_filters_on_metrics_params_tags_status_and_sorts_by_metric(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    _exp, _ = await _runs(client, auth)
    assert await _names(client, auth, filter="metrics.rmse < 0.5 and params.model = 'rf'") == [
        "rf-1"
    ]
    assert await _names(
        client, auth, filter="status = 'FINISHED'", order_by=["metrics.rmse ASC"]
    ) == ["gb-1", "rf-1"]
    assert await _names(client, auth, order_by=["metrics.rmse DESC"]) == [
        "rf-2",
        "rf-1",
        "gb-1",
        "none",  # no value sorts last
    ]
    assert await _names(client, auth, filter="params.model LIKE 'r%'", order_by=["name"]) == [
        "rf-1",
        "rf-2",
    ]
    assert await _names(client, auth, filter="params.model ILIKE 'r%'", order_by=["name"]) == [
        "none",
        "rf-1",
        "rf-2",
    ]
    assert await _names(client, auth, filter="metrics.rmse IS NULL") == ["none"]
    assert await _names(
        client, auth, filter="tags.team = 'risk' or params.depth = '5'", order_by=["name"]
    ) == ["gb-1", "rf-1", "rf-2"]
    assert await _names(client, auth, filter="params.depth != '3'") == ["rf-2"]


async def test_search_pages_scopes_and_survives_injection(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    exp, _ids = await _runs(client, auth)
    r = await client.post(
        "/api/v1/runs/search",
        json={"experiment_ids": [exp], "order_by": ["name ASC"], "per_page": 2, "page": 2},
        headers=auth(),
    )
    assert [x["name"] for x in r.json()["data"]] == ["rf-1", "rf-2"]
    assert r.json()["meta"] == {"page": 2, "per_page": 2, "total": 4}
    # Values are bound parameters: quotes and SQL inside a string match nothing.
    assert await _names(client, auth, filter="params.model = 'rf'' OR ''1''=''1'") == []
    assert await _names(client, auth, filter="tags.team = 'x\\' OR 1=1 --'") == []
    for bad in ("params.model = 'rf' OR 1 = 1", "metrics.rmse < 1; DELETE FROM runs"):
        assert_error(
            await client.post("/api/v1/runs/search", json={"filter": bad}, headers=auth()),
            400,
            "INVALID_FILTER",
        )
    assert len(await _names(client, auth)) == 4  # nothing was deleted
    other = await client.post("/api/v1/runs/search", json={}, headers=auth(org="b"))
    assert other.json()["data"] == []
    assert_error(
        await client.post(
            "/api/v1/runs/search", json={"experiment_ids": [exp]}, headers=auth(org="b")
        ),
        404,
    )
    assert_error(
        await client.post("/api/v1/runs/search", json={"per_page": 0}, headers=auth()), 400
    )
    assert_error(await client.post("/api/v1/runs/search", json={}), 401)


async def test_search_on_time_ranges(client: httpx.AsyncClient, auth: Auth) -> None:
    exp = await experiment(client, auth)
    await run(client, auth, exp, name="old", start_time="2020-01-01T00:00:00Z")
    await run(client, auth, exp, name="new", start_time="2026-06-01T00:00:00Z")
    assert await _names(client, auth, filter="start_time >= '2026-01-01T00:00:00Z'") == ["new"]
    assert await _names(client, auth, filter="attributes.start_time < 1600000000000") == ["old"]
    r = await client.get(
        "/api/v1/runs",
        params={"filter": "start_time < '2021-01-01T00:00:00Z'"},
        headers=auth(),
    )
    assert [x["name"] for x in r.json()["data"]] == ["old"]
