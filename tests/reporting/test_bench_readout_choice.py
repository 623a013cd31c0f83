"""benchmarks/readout_choice.py on a small Fashion-MNIST subset: one training, four readouts of it."""
import json

import pytest
from support import fashion_mnist_available, load_benchmark

from deepclust import load_dataset, load_estimator
from deepclust.cluster.umap_gmm import UmapGmm
from deepclust.evaluation import cluster_accuracy

pytestmark = pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST is not installed")


def test_readout_choice_scores_every_readout_of_one_run(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    assert load_benchmark("readout_choice").main(["--methods", "hardreg", "--subset", "300", "--seed", "3",
                                                  "--minutes", "0.02", "--runs-dir", str(runs),
                                                  "--out", str(out)]) == 0
    result = json.loads((out / "readout-choice.json").read_text())
    assert result["command"].startswith("python benchmarks/readout_choice.py --methods hardreg --subset 300")
    found = result["methods"]["hardreg"]
    assert set(found) == {"own", "kmeans cosine", "umap-gmm", "umap-gmm cosine", "epochs"}
    assert found["own"]["acc"] == pytest.approx(json.loads((runs / "hardreg" / "metrics.json").read_text())["acc"])
    images = load_dataset("fashion-mnist").sample(300, 3)
    embeddings = load_estimator(runs / "hardreg" / "model.pt").transform(images)
    labels = UmapGmm(10, seed=3, metric="cosine").fit_predict(embeddings)
    assert found["umap-gmm cosine"]["acc"] == pytest.approx(cluster_accuracy(images.labels, labels))
