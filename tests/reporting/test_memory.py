"""PeakMemory on the CPU, each measurement in a fresh interpreter so that no earlier test's memory is in play."""
import subprocess
import sys


def _measure_in_a_fresh_interpreter(code: str) -> tuple[str, float]:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    kind, megabytes = result.stdout.strip().splitlines()[-2:]
    assert kind.startswith("CPU")
    return kind, float(megabytes)


def test_peak_memory_sees_an_allocation():
    kind, megabytes = _measure_in_a_fresh_interpreter(
        "import numpy as np\n"
        "from deepclust.reporting.memory import PeakMemory\n"
        "with PeakMemory('cpu') as peak:\n"
        "    block = np.ones(40 * 2**20 // 8)\n"
        "    block += 1\n"
        "    del block\n"
        "print(peak.kind)\n"
        "print(peak.megabytes)\n")
    if "VmHWM" in kind:
        assert megabytes >= 35


def test_a_block_after_an_equal_freed_one_is_measured_in_full():
    """The bench's case: every fit after the first allocates what the one before freed. The freed
    64 KiB buffers sit between small survivors, so the C library cannot shrink the heap by itself;
    the second block is still measured at about its 50 MiB."""
    kind, megabytes = _measure_in_a_fresh_interpreter(
        "import numpy as np\n"
        "from deepclust.reporting.memory import PeakMemory\n"
        "survivors = []\n"
        "def fit():\n"
        "    buffers = []\n"
        "    for _ in range(800):\n"
        "        buffers.append(np.ones(2**13))\n"
        "        survivors.append(np.ones(200))\n"
        "    del buffers\n"
        "fit()\n"
        "with PeakMemory('cpu') as peak:\n"
        "    fit()\n"
        "print(peak.kind)\n"
        "print(peak.megabytes)\n")
    if "VmHWM" in kind and sys.platform.startswith("linux"):
        assert megabytes >= 40
