"""The token bucket's exact behaviour, on a clock the test moves (no waiting)."""

from __future__ import annotations

import pytest

from salesbot_core.token_bucket import Buckets, Rate, TokenBucket


def test_a_new_bucket_lets_its_burst_through_then_refuses_with_the_seconds_to_wait() -> None:
    bucket = TokenBucket(Rate(per_second=2, burst=3), now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == 0.5  # one token comes in 1/2 s
    assert bucket.take(100.0) == 0.5  # a refusal takes nothing


def test_tokens_come_back_at_the_rate_and_never_above_the_burst() -> None:
    bucket = TokenBucket(Rate(per_second=4, burst=2), now=0.0)
    assert (bucket.take(0.0), bucket.take(0.0)) == (0.0, 0.0)
    assert bucket.take(0.125) == 0.125  # half a token in: half of 1/4 s to go
    assert bucket.take(0.25) == 0.0  # one whole token
    assert bucket.take(0.25) == 0.25
    assert bucket.take(100.0) == 0.0  # 100 s idle fill it to 2, not 400
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == 0.25


def test_a_steady_sender_at_ten_times_the_rate_gets_the_burst_and_then_the_rate() -> None:
    bucket = TokenBucket(Rate(per_second=10, burst=5), now=0.0)
    # 100 requests a second for 2 s: 5 at once, then 10 a second (one per 1/10 s).
    passed = sum(bucket.take(n / 100) == 0.0 for n in range(200))
    assert passed == 5 + 19


def test_a_token_given_back_counts_again_up_to_the_burst() -> None:
    bucket = TokenBucket(Rate(per_second=1, burst=1), now=0.0)
    assert bucket.take(0.0) == 0.0
    bucket.give_back(0.0)
    assert bucket.take(0.0) == 0.0
    bucket.give_back(0.0)
    bucket.give_back(0.0)  # not above the burst
    assert (bucket.take(0.0), bucket.take(0.0)) == (0.0, 1.0)


def test_a_clock_that_goes_back_adds_nothing() -> None:
    bucket = TokenBucket(Rate(per_second=1, burst=1), now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == 1.0
    assert bucket.take(10.5) == 0.5


def test_a_rate_divided_among_workers_keeps_a_burst_of_at_least_one() -> None:
    assert Rate(10, 6).divided(2) == Rate(5, 3)
    assert Rate(3, 1).divided(4) == Rate(0.75, 1)
    with pytest.raises(ValueError, match="per_second > 0 and burst >= 1"):
        Rate(0, 1)
    with pytest.raises(ValueError, match="per_second > 0 and burst >= 1"):
        Rate(1, 0.5)


def test_buckets_are_per_key_and_a_changed_rate_keeps_the_tokens_held() -> None:
    buckets = Buckets()
    slow, fast = Rate(1, 2), Rate(10, 5)
    assert [buckets.take("a", slow, 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert buckets.take("b", slow, 0.0) == 0.0  # b has its own bucket
    # a's rate raised: it holds no token now, and gains them at the new rate
    assert buckets.take("a", fast, 0.0) == 0.1
    assert buckets.take("a", fast, 0.1) == 0.0
    # lowered below the tokens held: at most the new burst
    assert buckets.take("b", Rate(1, 1), 50.0) == 0.0
    assert buckets.take("b", Rate(1, 1), 50.0) == 1.0


def test_buckets_keep_at_most_max_keys_dropping_the_least_recently_used() -> None:
    buckets = Buckets(max_keys=2)
    rate = Rate(1, 1)
    assert buckets.take("a", rate, 0.0) == 0.0
    assert buckets.take("b", rate, 0.0) == 0.0
    assert buckets.take("a", rate, 0.0) == 1.0  # a used last: b is the oldest
    assert buckets.take("c", rate, 0.0) == 0.0
    assert len(buckets) == 2
    assert buckets.take("a", rate, 0.0) == 1.0  # a was kept
    assert buckets.take("b", rate, 0.0) == 0.0  # b was dropped: it came back full
    buckets.give_back("gone", 0.0)  # no bucket: nothing to give back to
    assert len(buckets) == 2
