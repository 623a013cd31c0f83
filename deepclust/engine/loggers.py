"""Copies of the run log's ``step`` and ``eval`` events for the tools people already use.

``log.jsonl`` is always written (the report and resumption read it); ``training.loggers`` adds:

- ``csv``: ``steps.csv`` and ``evals.csv`` in the run folder, one row per event, the JSONL
  record's fields (without ``event``) as columns;
- ``tensorboard``: event files in ``<run>/tensorboard``; every numeric field of an event is the
  scalar ``<event>/<field>`` (``step/loss``, ``step/lr``, ``eval/acc``, ...) at the event's step.

A resumed run logs the steps after its last checkpoint again; each logger drops what it holds
beyond the step the run continues from, so every step keeps one record.
"""
from __future__ import annotations

import csv
from pathlib import Path

from deepclust.engine.config import ConfigError

#: The values of ``training.loggers``.
LOGGERS = ("jsonl", "csv", "tensorboard")
#: The events the loggers copy.
LOGGED_EVENTS = ("step", "eval")
#: Fields of an event that are not scalars of their own.
NON_SCALAR_FIELDS = frozenset({"event", "time", "epoch", "step"})


class CsvLogger:
    """``steps.csv`` and ``evals.csv``: one row per ``step`` / ``eval`` event."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.columns: dict[str, list[str]] = {}

    def path(self, event: str) -> Path:
        return self.folder / f"{event}s.csv"

    def _read(self, event: str) -> tuple[list[str], list[dict]]:
        path = self.path(event)
        if not path.is_file():
            return [], []
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), list(reader)

    def _rewrite(self, event: str, columns: list[str], rows: list[dict]) -> None:
        with open(self.path(event), "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        self.columns[event] = columns

    def open(self, from_step: int) -> None:
        """Keep the rows of steps up to ``from_step`` (0: a fresh run keeps none)."""
        for event in LOGGED_EVENTS:
            columns, rows = self._read(event)
            if columns:
                self._rewrite(event, columns, [row for row in rows if int(row["step"]) <= from_step])

    def write(self, event: str, record: dict) -> None:
        if event not in LOGGED_EVENTS:
            return
        row = {key: value for key, value in record.items() if key != "event"}
        columns = self.columns.get(event)
        if columns is None or not set(row) <= set(columns):  # first row, or a field not seen before
            old_columns, rows = self._read(event)
            self._rewrite(event, old_columns + [key for key in row if key not in old_columns], rows + [row])
            return
        with open(self.path(event), "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=columns, restval="").writerow(row)

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """TensorBoard scalars ``<event>/<field>`` in ``<run>/tensorboard`` (``torch.utils.tensorboard``)."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ConfigError("training.loggers: 'tensorboard' needs the tensorboard package; install it with "
                              "pip install 'deepclust[tensorboard]'") from error
        self.writer_class = SummaryWriter
        self.folder = Path(folder) / "tensorboard"
        self.writer = None

    def open(self, from_step: int) -> None:
        """Start an event file; TensorBoard discards the older files' events after ``from_step``."""
        earlier = self.folder.is_dir() and any(self.folder.glob("events.out.tfevents.*"))
        self.writer = self.writer_class(str(self.folder), purge_step=from_step + 1 if earlier else None)

    def write(self, event: str, record: dict) -> None:
        if event not in LOGGED_EVENTS or self.writer is None:
            return
        for name, value in record.items():
            if name not in NON_SCALAR_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{event}/{name}", value, global_step=record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def build_loggers(names, folder: Path) -> list:
    """The loggers ``training.loggers`` names besides ``jsonl`` (always written), for run folder ``folder``."""
    unknown = [name for name in names if name not in LOGGERS]
    if unknown:
        raise ConfigError(f"training.loggers: unknown logger(s) {unknown}; valid: {', '.join(LOGGERS)}")
    kinds = {"csv": CsvLogger, "tensorboard": TensorBoardLogger}
    return [kinds[name](folder) for name in dict.fromkeys(names) if name in kinds]
