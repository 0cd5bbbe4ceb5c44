"""A batch's progress in frames, not stimuli: one long clip would otherwise hold the bar still
for minutes. The total is planned from the design before anything renders; each stimulus then
reports the frames it has rendered so far (from this process, or from a worker process through
a shared array the batch polls), and when it ends its share is corrected to what it really had
(a failed one keeps the frames it got to). The bar's rate gives the time left."""
from __future__ import annotations

import threading

from tqdm import tqdm


class FrameProgress:
    """Frames rendered of the stimuli a batch makes; `slot` is a stimulus' place in that list."""

    def __init__(self, planned: list[int], enabled: bool = True) -> None:
        self.planned = list(planned)
        self.counted = [0] * len(planned)
        self.ended = [False] * len(planned)
        self.made = self.failed = 0
        self._lock = threading.Lock()
        self.bar = tqdm(total=sum(planned), unit="frame", desc="stimuli", disable=not enabled,
                        postfix=self._done())

    def rendered(self, slot: int, frames: int) -> None:
        """The stimulus in `slot` has rendered `frames` frames so far."""
        with self._lock:
            if self.ended[slot] or frames <= self.counted[slot]:
                return
            self.bar.update(frames - self.counted[slot])
            self.counted[slot] = frames

    def ended_with(self, slot: int, frames: int | None) -> None:
        """The stimulus in `slot` is finished with `frames` frames, or failed (None)."""
        with self._lock:
            final = self.counted[slot] if frames is None else frames
            self.ended[slot] = True
            self.bar.total += final - self.planned[slot]
            self.planned[slot] = final
            self.bar.update(final - self.counted[slot])
            self.counted[slot] = final
            if frames is None:
                self.failed += 1
            else:
                self.made += 1
            self.bar.set_postfix_str(self._done())

    def write(self, line: str) -> None:
        """A line above the bar."""
        self.bar.write(line)

    def close(self) -> None:
        self.bar.close()

    def _done(self) -> str:
        done = f"{self.made + self.failed}/{len(self.planned)} stimuli"
        return done + (f", {self.failed} failed" if self.failed else "")
