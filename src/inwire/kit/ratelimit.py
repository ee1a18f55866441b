"""Rate limiting with GCRA, in process memory or shared through Redis.

The algorithm is the Generic Cell Rate Algorithm (GCRA, the "virtual scheduling" form of
ITU-T Recommendation I.371 / ATM Forum Traffic Management 4.0): per key it stores one
number, the theoretical arrival time (TAT) at which the bucket will be full again. With
emission interval ``T = 1 / rate`` and burst tolerance ``tau = T * burst``, a request of
cost ``n`` at time ``now`` is allowed when ``max(TAT, now) + n*T - tau <= now``, and then
``TAT = max(TAT, now) + n*T``. This is a leaky bucket of capacity ``burst`` that refills
one unit every ``T`` seconds, without a background timer and in O(1) state.

Decisions carry what the IETF ``RateLimit-*`` header fields need
(draft-ietf-httpapi-ratelimit-headers) plus ``Retry-After`` (RFC 9110 §10.2.3).

Backends are chosen by URL through :func:`open_rate_limiter`: ``memory://`` keeps state in a
dict of this process (embedded mode); ``redis://host:port/db`` runs the GCRA step as one Lua
script on the server's clock, so every process sharing the Redis shares one budget.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Float noise must not turn "exactly 3 units left" into 2.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A budget: ``rate`` units per second (or ``(count, period_seconds)``) and a ``burst``.

    ``burst`` is how many units may be spent at once on a rested key; afterwards spending is
    limited to the rate. ``RateLimit((100, 60), burst=20)`` allows 20 at once, then 100 a
    minute.
    """

    rate: float | tuple[int, float]
    burst: int
    per_second: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.rate, tuple):
            count, period = self.rate
            if count <= 0 or period <= 0:
                raise ValueError("rate needs a positive count and a positive period")
            per_second = count / period
        else:
            per_second = float(self.rate)
        if not math.isfinite(per_second) or per_second <= 0:
            raise ValueError("rate must be a positive number of units per second")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        object.__setattr__(self, "per_second", per_second)

    @property
    def emission_interval(self) -> float:
        """Seconds it takes to regain one unit (GCRA's ``T``)."""
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        """Seconds of credit a fully rested key holds (GCRA's ``tau``)."""
        return self.emission_interval * self.burst


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one :meth:`RateLimiter.hit`.

    ``limit`` is the burst, ``remaining`` the units that could still be spent right now,
    ``reset_after`` the seconds until the key is fully rested again and ``retry_after`` the
    seconds until this same request would be allowed (0 when it was).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float

    def headers(self) -> dict[str, str]:
        """``RateLimit-Limit/Remaining/Reset`` and, when denied, ``Retry-After``.

        Values are whole seconds rounded up (delta-seconds, RFC 9110 §10.2.3), so a client
        that waits as told is never early.
        """
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_after - _EPSILON)),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after - _EPSILON)))
        return out


def _decision(limit: RateLimit, allowed: bool, reset_after: float, retry_after: float) -> Decision:
    """Build a decision from the two GCRA outputs; ``remaining`` follows from ``reset_after``."""
    reset_after = max(0.0, reset_after)
    remaining = math.floor((limit.tolerance - reset_after) / limit.emission_interval + _EPSILON)
    return Decision(
        allowed=allowed,
        limit=limit.burst,
        remaining=max(0, min(limit.burst, remaining)),
        reset_after=reset_after,
        retry_after=0.0 if allowed else max(0.0, retry_after),
    )


def _check_cost(limit: RateLimit, cost: int) -> None:
    if cost < 0:
        raise ValueError("cost must not be negative")
    if cost > limit.burst:
        # GCRA could never allow it: no amount of waiting makes room for more than burst.
        raise ValueError(f"cost {cost} exceeds the burst {limit.burst} and can never pass")


class RateLimiter(ABC):
    """Spends units of a :class:`RateLimit` per key and says whether the spend is allowed."""

    @abstractmethod
    async def hit(self, key: str, limit: RateLimit, cost: int = 1) -> Decision:
        """Try to spend ``cost`` units for ``key``; a denied hit spends nothing.

        ``cost=0`` only reports the key's state. A cost above ``limit.burst`` raises
        ``ValueError``, since it could never be allowed.
        """

    async def close(self) -> None:
        """Release connections; the limiter must not be used afterwards."""
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class MemoryRateLimiter(RateLimiter):
    """GCRA state in a dict of this process; for embedded mode and tests.

    Memory stays bounded: a key whose TAT has passed is indistinguishable from an absent one,
    so such keys are swept out whenever the table has doubled since the previous sweep
    (amortised O(1) per hit). ``clock`` is a monotonic seconds clock, replaceable in tests.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, min_sweep_size: int = 1024
    ) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()
        self._min_sweep_size = min_sweep_size
        self._sweep_at = min_sweep_size

    def __len__(self) -> int:
        """How many keys currently hold state."""
        return len(self._tat)

    async def hit(self, key: str, limit: RateLimit, cost: int = 1) -> Decision:
        """Try to spend ``cost`` units for ``key`` (see :meth:`RateLimiter.hit`)."""
        _check_cost(limit, cost)
        with self._lock:
            now = self._clock()
            tat = max(self._tat.get(key, now), now)
            new_tat = tat + cost * limit.emission_interval
            allow_at = new_tat - limit.tolerance
            if allow_at - now > _EPSILON:
                return _decision(limit, False, tat - now, allow_at - now)
            if cost:
                self._tat[key] = new_tat
                if len(self._tat) >= self._sweep_at:
                    self._sweep(now)
            return _decision(limit, True, new_tat - now, 0.0)

    def _sweep(self, now: float) -> None:
        self._tat = {k: tat for k, tat in self._tat.items() if tat > now}
        self._sweep_at = max(self._min_sweep_size, 2 * len(self._tat))


# One GCRA step, atomic on the server. TIME is the server's clock, so processes on hosts
# with skewed clocks still agree; times are in microseconds. Effects replication (the
# default since Redis 5) makes calling TIME before a write legal.
# KEYS[1] the key; ARGV: emission interval (us), burst, cost.
# Returns {allowed 0|1, reset_after_us, retry_after_us}. The 0.001 us slack absorbs float
# noise from fractional intervals (rate 3/s), like _EPSILON in the memory backend.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then
  tat = now
end
local new_tat = tat + cost * interval
local allow_at = new_tat - tolerance
if allow_at - now > 0.001 then
  return {0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
if cost > 0 then
  redis.call('SET', KEYS[1], string.format('%.17g', new_tat),
             'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
end
return {1, math.ceil(new_tat - now), 0}
"""


class RedisRateLimiter(RateLimiter):
    """GCRA state in Redis, one key per limited key, shared by every process using it.

    Each hit is one ``EVALSHA`` round trip; each key expires once its bucket is full
    again, so idle keys cost nothing.
    """

    def __init__(self, client: Redis, *, key_prefix: str = "inwire:ratelimit:") -> None:
        self._client = client
        self._prefix = key_prefix
        self._script = client.register_script(_GCRA_LUA)

    async def hit(self, key: str, limit: RateLimit, cost: int = 1) -> Decision:
        """Try to spend ``cost`` units for ``key`` (see :meth:`RateLimiter.hit`)."""
        _check_cost(limit, cost)
        interval_us = limit.emission_interval * 1e6
        allowed, reset_us, retry_us = await self._script(
            keys=[self._prefix + key], args=[repr(interval_us), limit.burst, cost]
        )
        return _decision(limit, bool(allowed), int(reset_us) / 1e6, int(retry_us) / 1e6)

    async def close(self) -> None:
        """Close the Redis connection pool."""
        await self._client.aclose()


def open_rate_limiter(url: str, *, key_prefix: str = "inwire:ratelimit:") -> RateLimiter:
    """A limiter for ``memory://`` or ``redis://host:port/db`` (also ``rediss://``, ``unix://``).

    ``key_prefix`` namespaces the Redis keys; the memory backend ignores it. No connection is
    made until the first hit.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryRateLimiter()
    if scheme in {"redis", "rediss", "unix"}:
        import redis.asyncio as redis_asyncio

        return RedisRateLimiter(redis_asyncio.from_url(url), key_prefix=key_prefix)
    raise ValueError(f"unsupported rate limiter URL scheme {scheme!r} in {url!r}")
