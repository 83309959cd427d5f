"""`absence`: no data for `after`, including series that never reported since the engine
started, and devices whose retained status is `offline` (their MQTT last will).

Without a quantity the rule watches meters (one alert per device, whatever it measures);
with one, each series. `after` defaults to 3 × the meter's `interval`, else 15 minutes.

    - {name: data-absence, type: absence, after: 15m, severity: warning}
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import numpy as np

from ecocluster.core.durations import Duration
from ecocluster.rules.config import RuleBase, ms
from ecocluster.rules.kernel import CompileContext, Kernel, Verdict
from ecocluster.rules.window import HotWindow

__all__ = ["AbsenceKernel", "AbsenceRule"]

_DEFAULT_AFTER = timedelta(minutes=15)


class AbsenceRule(RuleBase):
    type: Literal["absence"]
    after: Duration | None = None
    offline: bool = True


class AbsenceKernel(Kernel[AbsenceRule]):
    def scope_of(self, spec: AbsenceRule) -> str:
        return "series" if spec.quantity is not None else "meter"

    def prepare(self, ctx: CompileContext) -> None:
        after = np.full(self.targets.n, ms(self.spec.after or _DEFAULT_AFTER), np.int64)
        if self.spec.after is None:
            for row, t in zip(
                self.targets.rows.tolist(), self.targets.group_idx.tolist(), strict=True
            ):
                key = ctx.table.keys[row]
                meter = ctx.cluster.meter(key.site, key.meter)
                if meter is not None and meter.interval is not None:
                    after[t] = 3 * ms(meter.interval)
        self.after_ms = after
        #: Event time at which silence starts counting for never-seen series.
        self.started_ms: int | None = None

    def evaluate(self, window: HotWindow, now_ms: int) -> Verdict:
        if self.started_ms is None:
            self.started_ms = now_ms
        rows = self.targets.rows
        last = window.last_ts[rows].astype(np.float64)
        newest = self.targets.reduce(np.where(last < 0, np.nan, last), "max")
        since = np.where(np.isnan(newest), self.started_ms, newest)
        silent_s = (now_ms - since) / 1000.0
        is_true = silent_s * 1000.0 >= self.after_ms
        if self.spec.offline:
            # A meter is back as soon as any of its series reports again.
            offline = self.targets.reduce(window.is_offline[rows].astype(np.float64), "min")
            is_true |= offline > 0
        return self.verdict(is_true, silent_s, self.after_ms / 1000.0)
