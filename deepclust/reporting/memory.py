"""Peak memory of a block of code, on the CPU or on a CUDA device.

CPU: the peak resident set size (RSS) reached inside the block minus the RSS when it started,
i.e. the extra memory the block needed on top of what the process already held (the dataset,
for a benchmark). On Linux the kernel's high-water mark (``VmHWM``) is reset to the current RSS
at the start by writing ``5`` to ``/proc/self/clear_refs``, so every block is measured on its
own. Before that, the heap memory earlier blocks freed is handed back to the system (glibc's
``malloc_trim``, where the C library has it): otherwise a block would reuse pages the process
already holds, and its allocations would not raise the resident set at all. Where the reset is
impossible the growth of ``resource.getrusage().ru_maxrss`` is used; that value only grows, so a
block peaking below an earlier block of the same process reads 0 (the result's ``kind`` says
which measurement was used).

CUDA: ``torch.cuda.max_memory_allocated`` after ``torch.cuda.reset_peak_memory_stats`` (tensor
memory allocated by PyTorch; the caching allocator's reserve and the CUDA context are not
counted).
"""
from __future__ import annotations

import ctypes
import gc
import re
import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _return_freed_heap_to_the_system() -> None:
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # no glibc (macOS, Windows, musl without the symbol)
        pass


def _reset_high_water_mark() -> bool:
    _return_freed_heap_to_the_system()
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    rss, hwm = _status_kib("VmRSS"), _status_kib("VmHWM")
    return rss is not None and hwm is not None and hwm <= rss + 1024  # reset took effect (1 MiB slack)


def _ru_maxrss_bytes() -> int:
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value) if sys.platform == "darwin" else int(value) * 1024  # bytes on macOS, KiB elsewhere


class PeakMemory:
    """``with PeakMemory(device) as peak: ...`` then ``peak.megabytes`` and ``peak.kind``."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.bytes: int | None = None
        self.kind = ""

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            self.kind = "CUDA max_memory_allocated"
        elif _reset_high_water_mark():
            self._start = _status_kib("VmRSS") * 1024
            self.kind = "CPU peak RSS growth (VmHWM)"
        else:
            self._start = _ru_maxrss_bytes()
            self.kind = "CPU ru_maxrss growth"
        return self

    def __exit__(self, *exc) -> bool:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.bytes = int(peak)  # total tensor memory at the peak, model and data included
        elif self.kind.endswith("(VmHWM)"):
            self.bytes = max(0, _status_kib("VmHWM") * 1024 - self._start)
        else:
            self.bytes = max(0, _ru_maxrss_bytes() - self._start)
        return False

    @property
    def megabytes(self) -> float | None:
        return None if self.bytes is None else self.bytes / 2**20
