"""Where a run's time goes: wall seconds per phase (data and model, evaluation, allocation, ...), written to
``timing.json`` in the run folder and summed up at the end of the run, and the progress line of a sweep."""
from __future__ import annotations

import contextlib
import time
from typing import Iterator


class Phases:
    """Wall seconds accumulated per named phase; ``with phases("allocation"): ...`` adds to one. A phase
    entered inside another is counted in the inner one only, so that the phases add up to the run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[tuple[str, float]] = []
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:  # pause the enclosing phase
            outer, since = self._stack[-1]
            self.seconds[outer] = self.seconds.get(outer, 0.0) + now - since
        self._stack.append((name, now))
        try:
            yield
        finally:
            now = time.perf_counter()
            _, since = self._stack.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + now - since
            if self._stack:
                self._stack[-1] = (self._stack[-1][0], now)

    def to_dict(self) -> dict[str, float]:
        """Seconds per phase, the rest of the run (imports, folder, writing rows) as ``other``, and the total."""
        total = time.perf_counter() - self.start
        out = {k: round(v, 2) for k, v in self.seconds.items()}
        out["other"] = round(max(total - sum(self.seconds.values()), 0.0), 2)
        out["total"] = round(total, 2)
        return out

    def summary(self) -> str:
        d = self.to_dict()
        total = d.pop("total")
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(d.items(), key=lambda kv: -kv[1]) if v >= 0.5)
        return f"{total:.0f} s: {parts}"


def progress_line(done: int, todo: int, elapsed: float) -> str:
    """``[i/n] ... 40 s, about 80 s left``: the time so far and the remaining points at the mean pace."""
    left = elapsed / done * (todo - done) if done else float("nan")
    return f"{elapsed:.0f} s, about {left:.0f} s left" if done < todo else f"{elapsed:.0f} s"
