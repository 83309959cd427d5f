"""The one retry policy of the project: exponential backoff with jitter and a cap.

Every loop that waits before trying again uses it (MQTT subscriber and publisher reconnects,
InfluxDB write retries, the spool replayer), so they all back off the same way and a
thundering herd of nodes reconnecting after a broker restart spreads out.

    backoff = Backoff(initial_s=0.5, max_s=10.0)
    while True:
        try:
            return await connect()
        except TransientError:
            await backoff.sleep()          # 0.25–0.5 s, 0.5–1 s, 1–2 s, … capped at 10 s
    ...
    backoff.reset()                        # after a success
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """Delays `initial_s × factor^n`, capped at `max_s`, each drawn uniformly from
    [(1 − jitter) × d, d] so that clients started together do not retry together."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    attempts: int = field(default=0, init=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.factor < 1:
            raise ValueError("backoff needs 0 < initial_s <= max_s and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter is a fraction between 0 and 1")

    def peek(self) -> float:
        """The upper bound of the next delay, without consuming it."""
        return min(self.initial_s * self.factor ** min(self.attempts, 64), self.max_s)

    def next_delay(self) -> float:
        delay = self.delay(self.attempts)
        self.attempts += 1
        return delay

    def delay(self, attempt: int) -> float:
        """The delay before retry number `attempt` (0 first), for callers that keep the count
        themselves (the alert outbox keeps it in its database row)."""
        ceiling = min(self.initial_s * self.factor ** min(max(attempt, 0), 64), self.max_s)
        return ceiling * (1 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempts = 0

    async def sleep(self) -> float:
        """Sleep the next delay; returns it (for a log line)."""
        delay = self.next_delay()
        await asyncio.sleep(delay)
        return delay
