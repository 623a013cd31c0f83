"""The checks every backbone shares (deepclust.backbones.base)."""
import pytest

from deepclust.backbones import build_backbone


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_in_channels(bad):
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        build_backbone("small_cnn", bad, 28)
