"""Token buckets: how many requests a key (an account) may make, at a rate with a burst.

A bucket holds up to ``burst`` tokens and gains ``per_second`` of them each second; a
request takes one whole token, or is refused with the seconds until one is there. The
clock is the caller's (a monotonic reading in seconds): nothing here reads the time,
sleeps or locks, so the behaviour is exact and tested without waiting.

Why not the ``limits`` package: it counts in windows (fixed, moving, sliding), not a
token bucket (a fixed window lets twice the limit through across its edge), and reads
the clock itself. Why a bound on the keys: they come from request
paths, any text a client sends; the least recently used bucket makes room for a new
one, so memory stays bounded whatever a client names.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The most buckets kept (one per account that sent a request lately).
MAX_KEYS = 10_000


@dataclass(frozen=True)
class Rate:
    """A request rate: ``per_second`` tokens gained each second, at most ``burst`` held."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if not self.per_second > 0 or not self.burst >= 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, not {self}")

    def divided(self, parts: int) -> Rate:
        """The share of one of ``parts`` equal takers (worker processes): the rate
        divided, the burst too but never below one request (else none would pass)."""
        return Rate(self.per_second / parts, max(1.0, self.burst / parts))


class TokenBucket:
    """One key's bucket: full when made."""

    def __init__(self, rate: Rate, now: float):
        self.rate = rate
        self.tokens = rate.burst
        self.at = now

    def _fill(self, now: float) -> None:
        # A clock that went back (it should not: monotonic) adds nothing rather than taking.
        elapsed = max(0.0, now - self.at)
        self.tokens = min(self.rate.burst, self.tokens + elapsed * self.rate.per_second)
        self.at = max(self.at, now)

    def take(self, now: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there is one (and
        nothing is taken: a refused request costs nothing)."""
        self._fill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate.per_second

    def give_back(self, now: float) -> None:
        """Return a token taken by a request that turned out not to count (up to the burst)."""
        self._fill(now)
        self.tokens = min(self.rate.burst, self.tokens + 1)

    def rerated(self, rate: Rate, now: float) -> TokenBucket:
        """This bucket under a new rate: the tokens it holds now, at most the new burst."""
        self._fill(now)
        bucket = TokenBucket(rate, now)
        bucket.tokens = min(rate.burst, self.tokens)
        return bucket


class Buckets:
    """A bucket per key, made full on the key's first request, at most ``max_keys`` of
    them (the least recently used is dropped for a new one: it comes back full)."""

    def __init__(self, max_keys: int = MAX_KEYS):
        self.max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, rate: Rate, now: float) -> float:
        """Take a token from ``key``'s bucket at ``rate`` (a changed rate applies from now):
        0.0, or the seconds to wait (see ``TokenBucket.take``)."""
        bucket = self._buckets.pop(key, None)  # popped and put back: the newest at the end
        if bucket is None:
            bucket = TokenBucket(rate, now)
        elif bucket.rate != rate:
            bucket = bucket.rerated(rate, now)
        self._buckets[key] = bucket
        if len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]
        return bucket.take(now)

    def give_back(self, key: str, now: float) -> None:
        """Return a token to ``key``'s bucket, if it still has one."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.give_back(now)
