"""How often one visitor may do something costly (start a workshop room): a sliding window per key, in
bounded memory, and the visitor's address as the server sees it, trusting a forwarded address only from the
configured proxy.

The limiter lives in one server process: with N replicas a visitor gets N times the allowance, still bounded.
Its memory is bounded too: at most `max_keys` keys, the least recently seen forgotten first (a forgotten key
starts afresh, so an attacker with more than `max_keys` addresses gains nothing they could not already get).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping


class RateLimiter:
    """At most `max_events` events per key in any `window_s` seconds."""

    def __init__(
        self, max_events: int, window_s: float, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ):
        if max_events < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("a rate limit needs at least one event, a positive window and room for one key.")
        self.max_events, self.window_s, self.max_keys, self._clock = max_events, window_s, max_keys, clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, *keys: str) -> float:
        """Seconds until every key may act again: 0 when all may act now. Records nothing."""
        now = self._clock()
        with self._lock:
            return max((self._wait(k, now) for k in keys), default=0.0)

    def take(self, *keys: str) -> float:
        """Record one event for every key if all may act now and return 0; else record nothing and return the
        seconds to wait."""
        now = self._clock()
        with self._lock:
            wait = max((self._wait(k, now) for k in keys), default=0.0)
            if wait == 0:
                for k in keys:
                    q = self._events.setdefault(k, deque())
                    q.append(now)
                    self._events.move_to_end(k)
                while len(self._events) > self.max_keys:
                    self._events.popitem(last=False)
            return wait

    def _wait(self, key: str, now: float) -> float:
        q = self._events.get(key)
        if q is None:
            return 0.0
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if len(q) < self.max_events:
            return 0.0
        return q[0] + self.window_s - now


def client_address(peer: str | None, headers: Mapping[str, str], trusted_proxies: tuple[str, ...]) -> str:
    """The visitor's address: the peer's, unless the peer is a trusted proxy, whose X-Forwarded-For last entry
    (the address it saw, as nginx's $proxy_add_x_forwarded_for appends it) is taken instead. A header from an
    untrusted peer is ignored (anyone can send one). Anything that is not an IP address becomes "unknown"."""

    def ip(text: str | None) -> str | None:
        try:
            a = ipaddress.ip_address((text or "").strip())
        except ValueError:
            return None
        # A dual-stack server sees an IPv4 peer as ::ffff:127.0.0.1: the same address as 127.0.0.1
        return str(getattr(a, "ipv4_mapped", None) or a)

    addr = ip(peer)
    if addr is not None and addr in {ip(p) for p in trusted_proxies}:
        forwarded = next((v for k, v in headers.items() if k.lower() == "x-forwarded-for"), "")
        last = ip(forwarded.split(",")[-1]) if forwarded else None
        addr = last or addr
    return addr or "unknown"
