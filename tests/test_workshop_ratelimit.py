"""core/workshop/ratelimit.py: a sliding window per key in bounded memory, and the visitor's address, trusting
X-Forwarded-For only from a configured proxy."""

import pytest

from core.workshop.ratelimit import RateLimiter, client_address


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_key_acts_max_events_times_per_window_then_waits():
    clock = Clock()
    r = RateLimiter(3, 60, clock=clock)
    assert [r.take("a") for _ in range(3)] == [0, 0, 0]
    assert r.take("a") == pytest.approx(60) and r.wait("a") == pytest.approx(60)
    assert r.take("b") == 0  # another key is not held back
    clock.now += 30
    assert r.wait("a") == pytest.approx(30)
    clock.now += 30
    assert r.take("a") == 0  # the oldest event left the window


def test_every_key_of_a_visitor_must_be_free_and_a_refusal_records_nothing():
    r = RateLimiter(1, 60, clock=Clock())
    assert r.take("session:1", "address:a") == 0
    assert r.take("session:2", "address:a") > 0  # a new session from the same address
    assert r.take("session:2", "address:b") == 0  # the refusal above did not spend session:2's allowance


def test_memory_is_bounded_least_recent_key_forgotten():
    r = RateLimiter(1, 60, max_keys=2, clock=Clock())
    for k in ("a", "b", "c"):
        r.take(k)
    assert len(r._events) == 2 and r.wait("a") == 0 and r.wait("c") > 0


@pytest.mark.parametrize("bad", [dict(max_events=0), dict(window_s=0), dict(max_keys=0)])
def test_nonsense_limits_are_refused(bad):
    with pytest.raises(ValueError):
        RateLimiter(**{"max_events": 1, "window_s": 1, **bad})


def test_a_forwarded_address_is_believed_only_from_a_trusted_proxy():
    proxies = ("127.0.0.1",)
    xff = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}  # a client-made first entry, then nginx's own
    assert client_address("127.0.0.1", xff, proxies) == "203.0.113.9"
    assert client_address("198.51.100.7", xff, proxies) == "198.51.100.7"  # anyone can send the header
    assert client_address("127.0.0.1", {"x-forwarded-for": "not an address"}, proxies) == "127.0.0.1"
    assert client_address(None, {}, proxies) == "unknown" and client_address("<script>", {}, proxies) == "unknown"


def test_an_ipv4_peer_seen_by_a_dual_stack_server_is_the_same_address():
    """Streamlit on a dual-stack socket reports nginx on the loopback as ::ffff:127.0.0.1: it is the trusted
    127.0.0.1 all the same (before, the forwarded address was ignored and every visitor shared one key)."""
    headers = {"X-Forwarded-For": "203.0.113.7"}
    assert client_address("::ffff:127.0.0.1", headers, ("127.0.0.1",)) == "203.0.113.7"
    assert client_address("::ffff:198.51.100.2", {}, ("127.0.0.1",)) == "198.51.100.2"
    assert client_address("::ffff:198.51.100.2", headers, ("127.0.0.1",)) == "198.51.100.2"
