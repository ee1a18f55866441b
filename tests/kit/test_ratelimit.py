"""GCRA rate limiter: the same behaviour in memory and in Redis."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis_asyncio

from inwire.kit.ratelimit import (
    Decision,
    MemoryRateLimiter,
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
    open_rate_limiter,
)

REDIS_URL = os.environ.get("INWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# One prefix per test run, so runs never see each other's keys.
RUN_PREFIX = f"inwire-test:ratelimit:{uuid.uuid4().hex}:"

# Slow enough that the milliseconds between two hits never refill a unit.
SLOW = RateLimit(rate=(1, 1.0), burst=5)
# Fast enough to wait for a refill in a test.
FAST = RateLimit(rate=20, burst=2)


async def _redis_or_skip() -> None:
    client = redis_asyncio.from_url(REDIS_URL)
    try:
        await client.ping()
    except (redis_asyncio.ConnectionError, OSError) as exc:
        reason = f"Redis at {REDIS_URL} is unreachable ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(f"{reason}; start Redis or set INWIRE_TEST_REDIS_URL to run these tests")
    finally:
        await client.aclose()


async def _delete_keys(prefix: str) -> None:
    client = redis_asyncio.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    await _redis_or_skip()
    prefix = f"{RUN_PREFIX}{uuid.uuid4().hex[:8]}:"
    yield prefix
    await _delete_keys(prefix)


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    """Each backend, opened by URL as services do."""
    if request.param == "memory":
        lim = open_rate_limiter("memory://")
        yield lim
        await lim.close()
        return
    await _redis_or_skip()
    prefix = f"{RUN_PREFIX}{uuid.uuid4().hex[:8]}:"
    lim = open_rate_limiter(REDIS_URL, key_prefix=prefix)
    yield lim
    await lim.close()
    await _delete_keys(prefix)


async def test_burst_is_allowed_then_the_next_hit_is_denied(limiter: RateLimiter) -> None:
    decisions = [await limiter.hit("k", SLOW) for _ in range(SLOW.burst)]

    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    assert all(d.retry_after == 0 and d.limit == 5 for d in decisions)

    denied = await limiter.hit("k", SLOW)
    assert not denied.allowed
    assert denied.remaining == 0
    # The next unit comes back one emission interval (1 s) after the first hit.
    assert 0.5 < denied.retry_after <= 1.0
    assert 4.5 < denied.reset_after <= 5.0


async def test_denied_hit_waits_retry_after_then_is_allowed(limiter: RateLimiter) -> None:
    for _ in range(FAST.burst):
        assert (await limiter.hit("k", FAST)).allowed
    denied = await limiter.hit("k", FAST)
    assert not denied.allowed
    assert 0 < denied.retry_after <= FAST.emission_interval

    await asyncio.sleep(denied.retry_after + 0.01)

    again = await limiter.hit("k", FAST)
    assert again.allowed
    assert again.remaining == 0


async def test_full_burst_returns_after_reset_after(limiter: RateLimiter) -> None:
    for _ in range(FAST.burst):
        last = await limiter.hit("k", FAST)
    assert 0 < last.reset_after <= FAST.tolerance

    await asyncio.sleep(last.reset_after + 0.01)

    decisions = [await limiter.hit("k", FAST) for _ in range(FAST.burst)]
    assert all(d.allowed for d in decisions)


async def test_keys_have_independent_budgets(limiter: RateLimiter) -> None:
    for _ in range(SLOW.burst):
        await limiter.hit("alice", SLOW)
    assert not (await limiter.hit("alice", SLOW)).allowed

    bob = await limiter.hit("bob", SLOW)
    assert bob.allowed
    assert bob.remaining == SLOW.burst - 1


async def test_cost_spends_several_units_and_a_denied_hit_spends_none(
    limiter: RateLimiter,
) -> None:
    first = await limiter.hit("k", SLOW, cost=3)
    assert first.allowed
    assert first.remaining == 2

    too_much = await limiter.hit("k", SLOW, cost=3)
    assert not too_much.allowed
    assert too_much.remaining == 2
    # One more unit is needed, so one emission interval.
    assert 0.5 < too_much.retry_after <= 1.0

    rest = await limiter.hit("k", SLOW, cost=2)
    assert rest.allowed
    assert rest.remaining == 0


async def test_cost_zero_reports_without_spending(limiter: RateLimiter) -> None:
    await limiter.hit("k", SLOW, cost=2)

    peek = await limiter.hit("k", SLOW, cost=0)
    assert peek.allowed
    assert peek.remaining == 3
    assert (await limiter.hit("k", SLOW, cost=0)).remaining == 3


async def test_cost_above_burst_is_rejected(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="exceeds the burst"):
        await limiter.hit("k", SLOW, cost=SLOW.burst + 1)


async def test_two_redis_limiters_share_one_budget(redis_prefix: str) -> None:
    a = open_rate_limiter(REDIS_URL, key_prefix=redis_prefix)
    b = open_rate_limiter(REDIS_URL, key_prefix=redis_prefix)
    try:
        assert (await a.hit("shared", SLOW, cost=3)).allowed
        from_b = await b.hit("shared", SLOW, cost=2)
        assert from_b.allowed
        assert from_b.remaining == 0

        assert not (await a.hit("shared", SLOW)).allowed
        assert not (await b.hit("shared", SLOW)).allowed
    finally:
        await a.close()
        await b.close()


async def test_redis_keys_expire_when_the_bucket_is_full_again(redis_prefix: str) -> None:
    lim = open_rate_limiter(REDIS_URL, key_prefix=redis_prefix)
    raw = redis_asyncio.from_url(REDIS_URL)
    try:
        assert isinstance(lim, RedisRateLimiter)
        await lim.hit("k", SLOW, cost=2)
        ttl_ms = await raw.pttl(f"{redis_prefix}k")
        assert 0 < ttl_ms <= 2000

        peek = await lim.hit("other", FAST, cost=0)
        assert peek.allowed
        assert await raw.exists(f"{redis_prefix}other") == 0
    finally:
        await raw.aclose()
        await lim.close()


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory(clock: Callable[[], float]) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock=clock, min_sweep_size=4)


async def test_gcra_values_are_exact_on_a_fixed_clock(
    memory: MemoryRateLimiter, clock: FakeClock
) -> None:
    limit = RateLimit(rate=20, burst=5)  # one unit per 50 ms
    for _ in range(5):
        last = await memory.hit("k", limit)
    assert last.reset_after == pytest.approx(0.25)

    denied = await memory.hit("k", limit)
    assert (denied.allowed, denied.remaining) == (False, 0)
    assert denied.retry_after == pytest.approx(0.05)

    clock.now += 0.05
    refilled = await memory.hit("k", limit)
    assert (refilled.allowed, refilled.remaining) == (True, 0)

    clock.now += 0.125  # two and a half units later: two whole units are back
    assert (await memory.hit("k", limit, cost=0)).remaining == 2


async def test_fractional_interval_allows_the_whole_burst(memory: MemoryRateLimiter) -> None:
    limit = RateLimit(rate=(3, 1.0), burst=3)  # 333.33... ms per unit
    decisions = [await memory.hit("k", limit) for _ in range(3)]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert all(d.allowed for d in decisions)


async def test_memory_prunes_rested_keys(memory: MemoryRateLimiter, clock: FakeClock) -> None:
    for i in range(1000):
        await memory.hit(f"user-{i}", FAST)
        clock.now += FAST.tolerance  # every earlier key is rested again
    assert len(memory) < 8


def test_rate_limit_accepts_per_second_or_count_per_period() -> None:
    assert RateLimit(rate=20, burst=1).emission_interval == pytest.approx(0.05)
    assert RateLimit(rate=(100, 60), burst=10).per_second == pytest.approx(100 / 60)
    assert RateLimit(rate=(100, 60), burst=10).tolerance == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, 1), (-1.0, 1), ((0, 60), 1), ((10, 0), 1), (10, 0)]
)
def test_rate_limit_rejects_impossible_budgets(rate: float | tuple[int, float], burst: int) -> None:
    with pytest.raises(ValueError, match=r"rate|burst"):
        RateLimit(rate=rate, burst=burst)


def test_headers_of_an_allowed_decision() -> None:
    d = Decision(allowed=True, limit=5, remaining=3, reset_after=0.1, retry_after=0.0)
    assert d.headers() == {
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "3",
        "RateLimit-Reset": "1",
    }


def test_headers_of_a_denied_decision_round_retry_after_up() -> None:
    d = Decision(allowed=False, limit=5, remaining=0, reset_after=12.2, retry_after=2.01)
    assert d.headers() == {
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "13",
        "Retry-After": "3",
    }


def test_unknown_url_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        open_rate_limiter("memcached://localhost")
