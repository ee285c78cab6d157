"""The attempt log's sample of successes: a burst at once, then a steady rate, per configuration."""

from __future__ import annotations

from pushgate.delivery.sampling import SuccessSample


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def kept(sample: SuccessSample, cid: str, count: int) -> int:
    return sum(sample.keep(cid) for _ in range(count))


def test_a_burst_is_kept_whole_then_the_rate_applies() -> None:
    clock = Clock()
    sample = SuccessSample(10, burst=100, clock=clock)
    assert kept(sample, "a", 150) == 100
    clock.now += 1.0
    assert kept(sample, "a", 50) == 10
    clock.now += 0.25
    assert kept(sample, "a", 50) == 2  # 2.5 tokens: two whole ones


def test_configurations_are_sampled_apart() -> None:
    sample = SuccessSample(1, burst=3, clock=Clock())
    assert kept(sample, "busy", 10) == 3
    assert kept(sample, "quiet", 2) == 2


def test_a_quiet_spell_refills_no_more_than_the_burst() -> None:
    clock = Clock()
    sample = SuccessSample(10, burst=5, clock=clock)
    assert kept(sample, "a", 5) == 5
    clock.now += 3600
    assert kept(sample, "a", 20) == 5


def test_rate_zero_keeps_no_success() -> None:
    assert kept(SuccessSample(0, burst=100, clock=Clock()), "a", 10) == 0
