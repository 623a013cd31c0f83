"""Fuzz-style robustness: random corruptions of valid files always give a clear dataset error.

Each case starts from a valid file written in the official format, then truncates it, flips random
bytes, or replaces it with random bytes. Loading must either succeed (some flips only change pixel
values) or raise DatasetFormatError / DatasetNotFoundError naming the file — never another
exception type, a crash of the interpreter, or a hang (the loads run in a subprocess with a timeout).
"""
import subprocess
import sys

import numpy as np

CASES = 24

LOADER = """
import sys
from deepclust.data import load_dataset, DatasetFormatError, DatasetNotFoundError
name = sys.argv[1]
for root in sys.argv[2:]:
    try:
        load_dataset(name, root=root)
        print("LOADED")
    except (DatasetFormatError, DatasetNotFoundError) as error:
        assert str(error).strip(), "empty error message"
        print("CLEAR:", str(error)[:200].replace("\\n", " "))
"""


def _mutations(data: bytes, rng: np.random.Generator):
    yield data[: int(rng.integers(0, len(data)))]
    flipped = bytearray(data)
    for position in rng.integers(0, len(data), size=int(rng.integers(1, 16))):
        flipped[position] ^= int(rng.integers(1, 256))
    yield bytes(flipped)
    header = bytearray(data)
    header[: min(16, len(header))] = rng.integers(0, 256, size=min(16, len(header)), dtype=np.uint8).tobytes()
    yield bytes(header)
    yield rng.integers(0, 256, size=int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()


def _load_in_subprocess(name, roots):
    result = subprocess.run([sys.executable, "-c", LOADER, name, *map(str, roots)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"{name}: unclear failure\n{result.stderr[-2000:]}"
    outcomes = result.stdout.splitlines()
    assert len(outcomes) == len(roots)
    assert any(out.startswith("CLEAR:") for out in outcomes)


def _fuzz(tmp_path, name, folder, target_names, write):
    rng = np.random.default_rng(0)
    roots = []
    for case in range(CASES):
        root = tmp_path / f"case{case}"
        write(root / folder)
        target = root / folder / target_names[case % len(target_names)]
        original = target.read_bytes()
        mutated = list(_mutations(original, rng))[case % 4]
        target.write_bytes(mutated)
        roots.append(root)
    _load_in_subprocess(name, roots)


def test_fuzz_idx(tmp_path, fmt):
    _fuzz(tmp_path, "fashion-mnist", "fashion-mnist",
          ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"],
          lambda folder: fmt.write_idx_dataset(folder))


def test_fuzz_cifar_pickles(tmp_path, fmt):
    _fuzz(tmp_path, "cifar10", "cifar-10-batches-py", ["data_batch_1", "test_batch", "batches.meta"],
          lambda folder: fmt.write_cifar10(folder))


def test_fuzz_npz(tmp_path):
    def write(folder):
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "data.npz", x=np.zeros((6, 1, 8, 8), np.uint8), y=np.arange(6))

    rng = np.random.default_rng(1)
    roots = []
    for case in range(CASES):
        folder = tmp_path / f"case{case}"
        write(folder)
        target = folder / "data.npz"
        target.write_bytes(list(_mutations(target.read_bytes(), rng))[case % 4])
        roots.append(target)
    _load_in_subprocess("npz", roots)
