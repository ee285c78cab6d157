"""Scheduler: lanes take turns, limits hold, slow attempts free worker slots."""

from __future__ import annotations

import itertools

import pytest

from pushgate.delivery.scheduler import Scheduler
from pushgate.store import Claimed

_ids = itertools.count(1)


def claimed(configuration_id: str, count: int = 1) -> list[Claimed]:
    return [Claimed(next(_ids), f"e{i}", configuration_id, 1, {}, 1) for i in range(count)]


def scheduler(**limits: int) -> Scheduler:
    values = {"concurrency": 4, "per_configuration": 2, "window": 10, **limits}
    return Scheduler(slow_after=1.0, **values)  # type: ignore[arg-type]


def start_all(s: Scheduler, now: float = 0.0) -> list[Claimed]:
    started = []
    while (delivery := s.next(now)) is not None:
        started.append(delivery)
    return started


def test_configurations_take_turns_whatever_their_backlog() -> None:
    s = scheduler(concurrency=3, per_configuration=3)
    s.add(claimed("big", 100))
    s.add(claimed("small", 1))
    assert [d.configuration_id for d in start_all(s)] == ["big", "small", "big"]


def test_one_configuration_never_has_more_than_its_limit_in_flight() -> None:
    s = scheduler(concurrency=10, per_configuration=2)
    s.add(claimed("a", 5))
    assert len(start_all(s)) == 2
    assert (s.ready, s.in_flight, s.runnable) == (3, 2, 0)


def test_a_finished_attempt_lets_its_lane_go_on() -> None:
    s = scheduler(concurrency=10, per_configuration=2)
    s.add(claimed("a", 3))
    first, _ = start_all(s)
    s.finished(first)
    assert s.runnable == 1
    [third] = start_all(s)
    assert third.configuration_id == "a"


def test_the_worker_limit_holds_across_configurations() -> None:
    s = scheduler(concurrency=3, per_configuration=2)
    for cid in "abc":
        s.add(claimed(cid, 2))
    assert len(start_all(s)) == 3
    assert s.runnable == 3  # waiting for a worker slot, not for their lanes


def test_hanging_attempts_move_to_the_slow_lane_and_free_worker_slots() -> None:
    s = scheduler(concurrency=2, per_configuration=2)
    s.add(claimed("hangs", 4))
    start_all(s, now=0.0)
    s.add(claimed("healthy", 1))
    assert s.next(0.5) is None  # both worker slots taken by young attempts
    assert s.next_aging() == 1.0
    assert s.age(1.0)
    [healthy] = start_all(s, now=1.0)
    assert healthy.configuration_id == "healthy"
    # ... but the hanging lane is still held to its own limit
    assert s.next(1.0) is None
    assert s.ready == 2


def test_a_lane_with_slow_attempts_may_claim_less() -> None:
    s = scheduler(concurrency=10, per_configuration=2, window=10)
    s.add(claimed("slow", 3))
    start_all(s, now=0.0)
    s.add(claimed("fast", 3))
    start_all(s, now=4.5)
    s.age(5.0)
    rooms = s.rooms()
    assert rooms["slow"] == 0  # its window is 2 x its limit, 4, and it holds 3: over half
    assert rooms["fast"] == 10 - 3


def test_a_lane_asks_for_more_only_once_half_its_window_is_free() -> None:
    s = scheduler(concurrency=10, per_configuration=10, window=10)
    batch = claimed("a", 6)
    s.add(batch)
    assert s.rooms() == {"a": 0}
    assert not s.has_room("a")
    start_all(s)
    s.finished(batch[0])
    assert s.rooms() == {"a": 5}
    assert s.has_room("a")
    assert s.has_room("unknown")


def test_a_held_lane_starts_nothing_until_released() -> None:
    s = scheduler(concurrency=10, per_configuration=5)
    s.add(claimed("a", 3))
    s.add(claimed("b", 1))
    s.hold("a")
    assert [d.configuration_id for d in start_all(s)] == ["b"]
    assert (s.ready, s.runnable) == (3, 0)
    assert s.held_lanes() == ["a"]
    s.release("a")
    assert [d.configuration_id for d in start_all(s)] == ["a", "a", "a"]


def test_wants_more_counts_only_what_could_start() -> None:
    s = scheduler(concurrency=2, per_configuration=1)
    s.add(claimed("stuck", 5))
    start_all(s)
    assert s.ready == 4
    assert s.wants_more()  # its 4 ready cannot start: they do not count
    s.add(claimed("other", 2))
    assert not s.wants_more()


def test_dropping_a_paused_configuration_returns_its_ready_deliveries() -> None:
    s = scheduler(concurrency=10, per_configuration=1)
    s.add(claimed("paused", 3))
    s.add(claimed("other", 1))
    first, other = start_all(s)
    dropped = s.drop({"paused"})
    assert [d.configuration_id for d in dropped] == ["paused", "paused"]
    assert (s.ready, s.runnable) == (0, 0)
    s.finished(first)  # its attempt in flight still ends normally
    assert s.held() == [other.id]
    assert start_all(s) == []


@pytest.mark.parametrize("count", [1, 5, 20])
def test_held_lists_every_delivery_ready_or_in_flight(count: int) -> None:
    s = scheduler(concurrency=3, per_configuration=3)
    batch = claimed("a", count)
    s.add(batch)
    start_all(s)
    assert sorted(s.held()) == sorted(d.id for d in batch)
