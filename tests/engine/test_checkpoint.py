import pytest
import torch

from deepclust.engine.checkpoint import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, save_atomic


def test_roundtrip_and_method_check(tmp_path):
    path = tmp_path / "c.pt"
    save_atomic({"format": CHECKPOINT_FORMAT, "method": "htcn", "x": torch.arange(3)}, path)
    assert torch.equal(load_checkpoint(path, method="htcn")["x"], torch.arange(3))
    with pytest.raises(CheckpointError, match="written by method 'htcn', not 'dchl'"):
        load_checkpoint(path, method="dchl")


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    save_atomic({"format": CHECKPOINT_FORMAT, "value": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("simulated crash during write")

    with pytest.raises(RuntimeError, match="simulated crash"):
        save_atomic({"format": CHECKPOINT_FORMAT, "value": Unpicklable()}, path)
    assert load_checkpoint(path)["value"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_corrupt_truncated_and_foreign_files(tmp_path):
    path = tmp_path / "c.pt"
    save_atomic({"format": CHECKPOINT_FORMAT, "value": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable or truncated"):
        load_checkpoint(path)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a deepclust checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": 999}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format 999"):
        load_checkpoint(tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
