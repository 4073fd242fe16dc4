"""Approximate-time synchroniser: matching rules, newest-frame policy, drop counting, resets."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from dense_descriptor_ros.ros_core.sync import ApproximateTimeSync, stamp_to_ns

MS = 1_000_000  # ns


def feed(sync: ApproximateTimeSync, *events: tuple[str, int]):
    """Add (stream, stamp in ms) events in order, each message being "<stream>@<ms>"; return the results."""
    return [sync.add(stream, t * MS, f"{stream}@{t}") for stream, t in events]


def test_stamp_to_ns_is_exact():
    assert stamp_to_ns(SimpleNamespace(sec=1_700_000_000, nanosec=123_456_789)) == 1_700_000_000_123_456_789


class TestMatching:
    def test_identical_stamps_match_when_the_last_stream_arrives(self):
        sync = ApproximateTimeSync(slop_s=0.01)
        out = feed(sync, ("depth", 100), ("color", 100), ("info", 100))
        assert out[:2] == [None, None]
        frame = out[2]
        assert frame.stamp_ns == 100 * MS and frame["color"] == "color@100" and frame["depth"] == "depth@100"
        assert frame.stamps_ns == {"color": 100 * MS, "depth": 100 * MS, "info": 100 * MS}

    def test_within_slop_after_the_pivot_is_final(self):
        sync = ApproximateTimeSync(slop_s=0.02)
        frame = feed(sync, ("color", 100), ("info", 100), ("depth", 115))[-1]
        assert frame["depth"] == "depth@115"

    def test_earlier_match_waits_until_no_nearer_one_can_come(self):
        sync = ApproximateTimeSync(slop_s=0.02)
        # depth 95 is 5 ms away, but depth 101 could still arrive: wait for a depth stamped >= 100.
        assert feed(sync, ("color", 100), ("info", 100), ("depth", 95)) == [None, None, None]
        frame = feed(sync, ("depth", 128))[0]
        assert frame["depth"] == "depth@95"  # 5 ms beats 28 ms
        assert sync.stats.dropped["depth"] == 0  # depth 128 is newer than the set: kept for the next one

    def test_nearest_of_several_is_chosen(self):
        sync = ApproximateTimeSync(slop_s=0.05)
        frame = feed(sync, ("depth", 60), ("depth", 90), ("depth", 130), ("info", 100), ("color", 100))[-1]
        assert frame["depth"] == "depth@90"
        assert sync.stats.dropped["depth"] == 1  # depth 60 can never be used now

    def test_outside_slop_never_matches(self):
        sync = ApproximateTimeSync(slop_s=0.02)
        assert feed(sync, ("color", 100), ("info", 100), ("depth", 121), ("depth", 150)) == [None] * 4

    def test_exact_mode_needs_identical_stamps(self):
        sync = ApproximateTimeSync(slop_s=0.5, exact=True)
        assert sync.add("color", 100 * MS, "c") is None
        assert sync.add("info", 100 * MS, "i") is None
        assert sync.add("depth", 100 * MS + 1, "d") is None  # 1 ns off
        assert sync.add("depth", 100 * MS, "d") is not None

    def test_single_stream_passes_through(self):
        sync = ApproximateTimeSync(streams=("color",))
        assert feed(sync, ("color", 5))[0]["color"] == "color@5"

    def test_messages_are_used_once(self):
        sync = ApproximateTimeSync(streams=("color", "depth"), slop_s=0.05)
        assert feed(sync, ("depth", 100), ("color", 100))[-1] is not None
        assert feed(sync, ("color", 110)) == [None]  # depth 100 was already used


class TestNewestFramePolicy:
    def test_newest_complete_set_wins_and_older_colour_is_dropped(self):
        sync = ApproximateTimeSync(slop_s=0.005, queue_size=10)
        out = feed(sync, ("color", 0), ("color", 33), ("color", 66), ("depth", 66), ("info", 66))
        assert out[-1]["color"] == "color@66"
        assert sync.stats.dropped == {"color": 2, "depth": 0, "info": 0}
        # Late messages for frames older than the last set are stale.
        assert feed(sync, ("depth", 0), ("info", 33)) == [None, None]
        assert sync.stats.dropped == {"color": 2, "depth": 1, "info": 1}

    def test_take_returns_only_the_newest_untaken_set(self):
        sync = ApproximateTimeSync(streams=("color", "depth"), slop_s=0.001)
        feed(sync, ("color", 0), ("depth", 0), ("color", 33), ("depth", 33))
        assert sync.stats.matched == 2 and sync.stats.superseded == 1
        assert sync.take()["color"] == "color@33"
        assert sync.take() is None
        feed(sync, ("color", 66), ("depth", 66))
        assert sync.take()["color"] == "color@66" and sync.stats.superseded == 1

    def test_queues_are_bounded(self):
        sync = ApproximateTimeSync(queue_size=3)
        feed(sync, *[("color", t) for t in range(0, 165, 33)])  # 5 frames, depth never comes
        assert sync.stats.received["color"] == 5 and sync.stats.dropped["color"] == 2
        assert [t // MS for t, _ in sync._queues["color"]] == [66, 99, 132]

    def test_out_of_order_arrival_is_sorted(self):
        sync = ApproximateTimeSync(streams=("color", "depth"), slop_s=0.001)
        feed(sync, ("color", 66), ("color", 33))
        assert [t // MS for t, _ in sync._queues["color"]] == [33, 66]
        assert feed(sync, ("depth", 33))[0]["color"] == "color@33"

    def test_time_jump_back_resets(self):
        sync = ApproximateTimeSync(streams=("color", "depth"), slop_s=0.001, jump_back_reset_s=1.0)
        feed(sync, ("color", 10_000), ("depth", 10_000))
        assert feed(sync, ("color", 9_500)) == [None]  # 0.5 s back: stale, not a jump
        assert sync.stats.resets == 0 and sync.stats.dropped["color"] == 1
        assert feed(sync, ("color", 2_000), ("depth", 2_000))[-1]["color"] == "color@2000"  # bag looped
        assert sync.stats.resets == 1

    def test_a_short_loop_resets_after_a_queue_of_stale_messages(self):
        """A bag shorter than jump_back_reset_s played in a loop (the 1 s sample bag) steps back by less than
        it: without a reset every later message would be stale forever."""
        sync = ApproximateTimeSync(streams=("color", "depth"), slop_s=0.001, queue_size=3, jump_back_reset_s=1.0)
        feed(sync, ("color", 1_000), ("depth", 1_000))
        for t in (40, 80):  # the loop starts again 0.96 s back: stale, not yet a jump
            assert feed(sync, ("color", t), ("depth", t)) == [None, None]
        assert sync.stats.resets == 0
        assert feed(sync, ("color", 120), ("depth", 120))[-1]["color"] == "color@120"  # the third in a row resets
        assert sync.stats.resets == 1
        # a stale message now and then (out of order) does not reset
        feed(sync, ("color", 160), ("depth", 160), ("color", 150), ("color", 200), ("color", 150), ("depth", 200))
        assert sync.stats.resets == 1

    def test_reset_forgets_everything(self):
        sync = ApproximateTimeSync(streams=("color", "depth"), slop_s=0.001, jump_back_reset_s=None)
        feed(sync, ("color", 500), ("depth", 500), ("color", 600))
        sync.reset()
        assert sync.take() is None and sync.stats.dropped["color"] == 1
        assert feed(sync, ("color", 100), ("depth", 100))[-1] is not None


def test_concurrent_adds_are_consistent():
    sync = ApproximateTimeSync(streams=("color", "depth"), slop_s=0.0, queue_size=1000)

    def produce(stream: str) -> None:
        for t in range(1000):
            sync.add(stream, t * MS, t)

    threads = [threading.Thread(target=produce, args=(s,)) for s in ("color", "depth")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    s = sync.stats
    assert s.received == {"color": 1000, "depth": 1000}
    # Every colour message was matched, dropped or is still queued: none is lost or counted twice.
    assert s.matched + s.dropped["color"] + len(sync._queues["color"]) == 1000
    assert s.matched > 0


@pytest.mark.parametrize("kwargs, message", [
    ({"streams": ("color", "color")}, "distinct"), ({"queue_size": 0}, "queue_size"), ({"slop_s": -1.0}, "slop_s")])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ApproximateTimeSync(**kwargs)


def test_unknown_stream():
    with pytest.raises(KeyError, match="unknown stream 'ir'"):
        ApproximateTimeSync().add("ir", 0, None)
