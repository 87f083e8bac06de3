"""Prediction caches with TTLs: Redis when STRATUM_REDIS_URL is set, in-process otherwise.

A cache never makes a prediction fail: if Redis is unreachable the service logs a warning and
serves uncached.
"""

from __future__ import annotations

import json
import logging
import threading
import time

log = logging.getLogger(__name__)


class MemoryCache:
    """In-process TTL cache (one process; entries expire lazily)."""

    def __init__(self, max_entries: int = 100_000):
        self._data: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key: str):
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            expires, value = item
            if expires < time.monotonic():
                del self._data[key]
                return None
        return json.loads(value)

    def set(self, key: str, value, ttl: int) -> None:
        with self._lock:
            if len(self._data) >= self.max_entries:
                now = time.monotonic()
                for k in [k for k, (e, _) in self._data.items() if e < now] or list(self._data)[
                    : self.max_entries // 10
                ]:
                    del self._data[k]
            self._data[key] = (time.monotonic() + ttl, json.dumps(value))

    def incr(self, key: str) -> int:
        with self._lock:
            _, value = self._data.get(key, (0, "0"))
            new = int(json.loads(value)) + 1
            self._data[key] = (float("inf"), json.dumps(new))
            return new

    def get_counter(self, key: str) -> int:
        value = self.get(key)
        return int(value) if value is not None else 0


class RedisCache:
    """Redis-backed TTL cache; every Redis error degrades to a miss (with a warning), never an exception."""

    def __init__(self, url: str, timeout_seconds: float = 0.25):
        import redis

        self.url = url
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._warned_at = 0.0

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:  # once a minute, not per request
            log.warning("prediction cache unavailable (%s): serving uncached", exc)
            self._warned_at = now

    def get(self, key: str):
        try:
            value = self._client.get(key)
        except Exception as exc:
            self._warn(exc)
            return None
        return json.loads(value) if value is not None else None

    def set(self, key: str, value, ttl: int) -> None:
        try:
            self._client.set(key, json.dumps(value), ex=int(ttl))
        except Exception as exc:
            self._warn(exc)

    def incr(self, key: str) -> int:
        try:
            return int(self._client.incr(key))
        except Exception as exc:
            self._warn(exc)
            return 0

    def get_counter(self, key: str) -> int:
        try:
            value = self._client.get(key)
        except Exception as exc:
            self._warn(exc)
            return 0
        return int(value) if value is not None else 0


def cache_from_url(url: str | None):
    """RedisCache for a redis:// URL, MemoryCache when there is none."""
    return RedisCache(url) if url else MemoryCache()
