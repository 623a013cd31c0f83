import pytest
import torch

from deepclust.engine.config import ConfigError
from deepclust.refine.neighbours import check_neighbours, mine_neighbours

OPTIONS = {"k": 3, "space": "embedding", "entropy_weight": 5}


def test_check_normalises_and_names_each_bad_key():
    assert check_neighbours(OPTIONS) == {"k": 3, "space": "embedding", "entropy_weight": 5.0}
    for key, value in [("k", 0), ("k", 2.5), ("space", "pixels"), ("entropy_weight", -1)]:
        with pytest.raises(ConfigError, match=f"refine.neighbours.{key}"):
            check_neighbours({**OPTIONS, key: value})


def test_embedding_space_follows_the_embeddings_alone():
    embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert mine_neighbours(embeddings, None, 1, "embedding").flatten().tolist() == [1, 0, 3, 2]


def test_embedding_and_input_space_breaks_ties_by_the_centred_pixels():
    # identical embeddings: only the images decide; images 0/2 and 1/3 match after centring
    embeddings = torch.ones(4, 2)
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]).view(4, 1, 1, 2)
    assert mine_neighbours(embeddings, images, 1, "embedding_and_input").flatten().tolist() == [2, 3, 0, 1]


def test_embedding_and_input_space_needs_one_image_per_embedding():
    with pytest.raises(ValueError, match="images of the 4 embeddings"):
        mine_neighbours(torch.ones(4, 2), torch.ones(3, 2), 1, "embedding_and_input")
    with pytest.raises(ValueError, match="images of the 4 embeddings"):
        mine_neighbours(torch.ones(4, 2), None, 1, "embedding_and_input")
