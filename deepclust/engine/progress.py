"""What a run shows while it trains: a progress bar on a terminal, plain lines in a log file, and
the estimated time per epoch of a paper-sized configuration on a CPU."""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

#: Steps measured for the time-per-epoch estimate (after the first, which warms up).
ESTIMATE_STEPS = 3


def format_duration(seconds: float) -> str:
    """``1:02:03`` for 3723 seconds."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Progress:
    """Training progress on ``stream`` (default stderr), when ``enabled``.

    On a terminal: a tqdm bar per epoch. Elsewhere (a log file, a pipe), where a bar would write
    carriage-return frames: one plain line at the end of every epoch and one every
    ``every_seconds`` within it — epoch, step, loss, images/s and the training time so far.
    ``cpu_hint`` (a CPU-sized alternative, e.g. ``--preset cpu-fashion-mnist``): after the first
    steps, one line with the measured time per epoch and the hint, shown even when not ``enabled``.
    """

    def __init__(self, *, enabled: bool, max_epochs: int, steps_per_epoch: int, every_seconds: float = 60.0,
                 cpu_hint: str | None = None, stream=None):
        self.enabled = enabled
        self.max_epochs = max_epochs
        self.steps_per_epoch = steps_per_epoch
        self.every_seconds = float(every_seconds)
        self.cpu_hint = cpu_hint
        self.stream = stream or sys.stderr
        self.bar = None
        self.steps_taken = 0
        self._estimate_from = None
        self._last_line = time.monotonic()
        self._last = {}

    def _terminal(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def start_epoch(self, epoch: int, done_steps: int, n_steps: int) -> None:
        if self.enabled and self._terminal():
            self.bar = tqdm(total=n_steps, initial=done_steps, desc=f"epoch {epoch + 1}/{self.max_epochs}",
                            leave=False, file=self.stream)

    def step(self, *, epoch: int, global_step: int, values: dict, images_per_second: float,
             train_seconds: float) -> None:
        """After one step; ``values`` are its loss terms ({} for a skipped step)."""
        self.steps_taken += 1
        self._last = {"epoch": epoch, "global_step": global_step, "values": values or self._last.get("values", {}),
                      "images_per_second": images_per_second, "train_seconds": train_seconds}
        self._estimate(epoch, train_seconds)
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if values:
                self.bar.set_postfix(loss=f"{values['loss']:.4f}", img_s=f"{images_per_second:.0f}")
        elif time.monotonic() - self._last_line >= self.every_seconds:
            self._line()

    def end_epoch(self) -> None:
        """After the epoch's last step, or the step training stopped at."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and self._last:
            self._line()

    def _line(self) -> None:
        last = self._last
        loss = last["values"].get("loss")
        shown = f"  loss {loss:.4f}" if loss is not None else ""
        print(f"epoch {last['epoch'] + 1}/{self.max_epochs}  step {last['global_step']}/"
              f"{self.steps_per_epoch * self.max_epochs}{shown}  {last['images_per_second']:.0f} img/s  "
              f"{format_duration(last['train_seconds'])} training", file=self.stream, flush=True)
        self._last_line = time.monotonic()

    def _estimate(self, epoch: int, train_seconds: float) -> None:
        if self.cpu_hint is None or self.steps_taken > ESTIMATE_STEPS + 1:
            return
        if self.steps_taken == 1:
            self._estimate_from = train_seconds
            return
        if self.steps_taken == ESTIMATE_STEPS + 1:
            per_step = (train_seconds - self._estimate_from) / ESTIMATE_STEPS
            per_epoch = per_step * self.steps_per_epoch
            print(f"note: this is a paper-sized configuration on a CPU: about {format_duration(per_epoch)} per "
                  f"epoch ({per_step:.2f} s/step x {self.steps_per_epoch} steps), "
                  f"{format_duration(per_epoch * (self.max_epochs - epoch))} for the {self.max_epochs - epoch} "
                  f"epochs to go; for a CPU use {self.cpu_hint}", file=sys.stderr, flush=True)
