"""The gateway's parts on their own: routes, credentials, budgets, breaker, settings, docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from inwire.gateway.breaker import CircuitBreaker, CircuitState
from inwire.gateway.limits import RateLimitPolicy
from inwire.gateway.routes import RouteTable, Upstream, has_dot_segment, upstreams_from_registry
from inwire.gateway.settings import GatewaySettings
from inwire.kit.auth.apikeys import credentials_from
from inwire.kit.errors import Unauthorized
from inwire.services.registry import GATEWAY, SERVICES, ServiceSpec, with_gateway

DOCS = Path(__file__).parents[2] / "docs" / "gateway.md"


def table() -> RouteTable:
    upstreams = [
        Upstream("core", "/core", "http://c"),
        Upstream("rag", "/rag", "http://r"),
        Upstream("rag-index", "/rag-index", "http://ri"),
    ]
    return RouteTable(upstreams, GatewaySettings().public_paths)


@pytest.mark.parametrize(
    ("path", "service", "local"),
    [
        ("/core", "core", "/"),
        ("/core/api/v1/teams", "core", "/api/v1/teams"),
        ("/rag/api/v1/x", "rag", "/api/v1/x"),
        ("/rag-index/api/v1/x", "rag-index", "/api/v1/x"),
        ("/corex/api", None, None),
        ("/", None, None),
    ],
)
def test_a_path_goes_to_the_service_whose_whole_prefix_it_starts_with(
    path: str, service: str | None, local: str | None
) -> None:
    match = table().match(path)
    assert (match.upstream.name if match else None) == service
    assert (match.local_path if match else None) == local


@pytest.mark.parametrize(
    ("path", "public"),
    [
        ("/core/api/v1/auth/login", True),
        ("/core/api/v1/auth/token", True),
        ("/core/api/v1/auth/tokens", False),
        ("/core/api/v1/auth/sso/prv_1/login", True),
        ("/core/api/v1/auth/me", False),
        ("/core/health/ready", True),
        ("/rag/health", True),
        ("/rag/openapi.json", True),
        ("/rag/api/v1/health", False),
        ("/core/.well-known/jwks.json", True),
        ("/rag/.well-known/jwks.json", False),
    ],
)
def test_only_listed_paths_and_every_services_health_and_docs_are_public(
    path: str, public: bool
) -> None:
    routes = table()
    match = routes.match(path)
    assert match is not None
    assert routes.is_public(path, match.local_path) is public


@pytest.mark.parametrize(
    ("path", "dotted"),
    [("/a/../b", True), ("/a/./b", True), ("/a/..", True), ("/a/..b/c", False), ("/a.b", False)],
)
def test_dot_segments_are_recognised(path: str, dotted: bool) -> None:
    assert has_dot_segment(path) is dotted


def test_the_registry_gives_every_service_its_configured_port() -> None:
    settings = GatewaySettings(upstream_host="10.0.0.5", upstreams={"core": "http://core:1"})
    specs = [
        ServiceSpec("core", "p", 18000, "/core", "m:f", "m:S"),
        ServiceSpec("rag", "p", 8186, "/rag", "m:f", "m:S"),
    ]
    got = upstreams_from_registry(settings, specs, environ={"INWIRE_RAG_PORT": "9999"})
    assert [(u.name, u.prefix, u.url) for u in got] == [
        ("core", "/core", "http://core:1"),
        ("rag", "/rag", "http://10.0.0.5:9999"),
    ]


def test_inwire_up_runs_the_gateway_after_the_services_when_core_is_among_them() -> None:
    assert with_gateway(SERVICES)[-1] == GATEWAY
    assert with_gateway([*SERVICES, GATEWAY]).count(GATEWAY) == 1
    others = [ServiceSpec("fake", "p", 1, "/fake", "m:f", "m:S")]
    assert with_gateway(others) == others


@pytest.mark.parametrize(
    ("authorization", "api_key", "expected"),
    [
        ("Bearer abc.def.ghi", None, ("token", "abc.def.ghi")),
        ("bearer iwk_x", None, ("api_key", "iwk_x")),
        (None, "iwk_y", ("api_key", "iwk_y")),
        ("Bearer jwt", "iwk_z", ("token", "jwt")),
        (None, None, None),
    ],
)
def test_credentials_are_read_from_authorization_or_x_api_key(
    authorization: str | None, api_key: str | None, expected: tuple[str, str] | None
) -> None:
    creds = credentials_from(authorization, api_key)
    if expected is None:
        assert creds is None
        return
    assert creds is not None
    assert getattr(creds, expected[0]) == expected[1]


@pytest.mark.parametrize("authorization", ["Basic abc", "Bearer", "Digest x"])
def test_other_authorization_schemes_are_refused(authorization: str) -> None:
    with pytest.raises(Unauthorized):
        credentials_from(authorization, None)


def test_budgets_per_principal_client_group_and_organization() -> None:
    policy = RateLimitPolicy(
        GatewaySettings(
            rate_limit={"rate": 10, "burst": 20},
            anonymous_rate_limit={"rate": 1, "burst": 5},
            route_groups={"uploads": ["/synthex/api/v1/datasets"], "unlimited": ["/x"]},
            group_limits={"uploads": {"rate": 2, "burst": 2}},
            organization_limits={"org_big": {"rate": 100, "burst": 500}},
        )
    )
    anon = policy.budget("/core/api/v1/auth/login", subject=None, org=None, client="1.2.3.4")
    user = policy.budget("/core/api/v1/teams", subject="usr_1", org="org_1", client="1.2.3.4")
    big = policy.budget("/core/api/v1/teams", subject="usr_2", org="org_big", client="1.2.3.4")
    upload = policy.budget(
        "/synthex/api/v1/datasets/ds_1", subject="usr_1", org="org_1", client="1.2.3.4"
    )
    ungrouped = policy.budget("/x/y", subject="usr_1", org="org_1", client="1.2.3.4")
    assert (anon.key, anon.limit.burst, anon.group) == ("anonymous:ip:1.2.3.4", 5, "anonymous")
    assert (user.key, user.limit.burst) == ("default:p:usr_1", 20)
    assert big.limit.burst == 500
    assert (upload.key, upload.limit.burst, upload.group) == ("g:uploads:p:usr_1", 2, "uploads")
    # A group without a limit of its own spends the shared budget.
    assert ungrouped.key == "default:p:usr_1"


def test_the_breaker_opens_refuses_then_lets_one_trial_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, open_seconds=10, clock=lambda: now[0])
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after == 10
    now[0] = 10.5
    assert breaker.allow()  # the trial
    assert breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allow()  # only one trial at a time
    breaker.failure()
    assert breaker.state is CircuitState.OPEN
    now[0] = 21
    assert breaker.allow()
    breaker.success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()


def test_settings_prefer_gateway_variables_over_platform_wide_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INWIRE_CACHE_URL", "redis://shared:6379/0")
    assert GatewaySettings().cache_url == "redis://shared:6379/0"
    monkeypatch.setenv("INWIRE_GATEWAY_CACHE_URL", "redis://own:6379/1")
    monkeypatch.setenv("INWIRE_GATEWAY_RATE_LIMIT", '{"rate": 5, "burst": 7}')
    settings = GatewaySettings()
    assert settings.cache_url == "redis://own:6379/1"
    assert (settings.rate_limit.rate, settings.rate_limit.burst) == (5, 7)


def test_public_paths_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="must start with"):
        GatewaySettings(public_paths=["core/health"])


def test_every_setting_appears_in_the_gateway_guide() -> None:
    text = DOCS.read_text()
    missing = [name for name in GatewaySettings.model_fields if f"`{name}`" not in text]
    assert missing == []
