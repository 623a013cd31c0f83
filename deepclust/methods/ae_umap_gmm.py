"""N2D: an autoencoder trained by the engine, then UMAP + a Gaussian mixture on its codes."""
from __future__ import annotations

import torch
from torch import nn

from deepclust.cluster.umap_gmm import UmapGmm, import_umap
from deepclust.engine.distributed import gather
from deepclust.engine.model import Batch, ClusteringModel
from deepclust.heads import mlp
from deepclust.losses import ReconstructionLoss
from deepclust.methods.base import DeepClusterer
from deepclust.methods.registry import register_method


class AutoencoderModel(ClusteringModel):
    """A fully connected autoencoder on flattened images; labels by UMAP + GMM on its codes.

    Encoder f: D → hidden_dims → code_dim (ReLU after every hidden layer, linear code; N2D:
    784-500-500-2000-10, code_dim = K), decoder g its mirror with a linear output; weights
    Glorot-uniform, biases zero (Keras' defaults, as in the authors' code). The loss is
    :class:`~deepclust.losses.ReconstructionLoss` of g(f(x)) against x, x the image in [0, 1].
    ``fit_inference`` fits :class:`~deepclust.cluster.umap_gmm.UmapGmm` (the ``inference``
    section's options) on the codes of the training images; ``predict_labels`` places new codes
    with UMAP's transform. The fitted UMAP + GMM is not a tensor: it travels in
    :meth:`inference_state` (saved in ``model.pt``), not in checkpoints — a resumed run refits it
    when training ends.
    """

    label_source = "umap-gmm"

    def __init__(self, config, n_clusters, input_shape, mean=None, std=None):
        super().__init__(config, n_clusters, input_shape, mean, std)
        options = config["method"]
        input_dim = self.input_shape[0] * self.image_size * self.image_size
        code_dim = options["code_dim"] if options["code_dim"] is not None else self.n_clusters
        dims = [input_dim, *options["hidden_dims"], code_dim]
        for width in dims[1:]:
            if isinstance(width, bool) or not isinstance(width, int) or width < 1:
                raise ValueError(f"method.hidden_dims and method.code_dim must be positive integers, got {dims[1:]}")
        self.encoder = mlp(dims, batch_norm=False)
        self.decoder = mlp(dims[::-1], batch_norm=False)
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.loss = ReconstructionLoss()
        self.clustering: UmapGmm | None = None
        UmapGmm(self.n_clusters, **config["inference"])  # checks the options before any training

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        return self.eval_transform(images).flatten(1)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        inputs = self._inputs(batch.images)
        reconstruction = self.decoder(self.encoder(inputs))
        loss = self.loss(gather(reconstruction), gather(inputs))  # the mean over the global batch
        return {"loss": loss, "reconstruction": loss}

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._inputs(images))

    def fit_inference(self, embeddings: torch.Tensor, seed: int = 0) -> torch.Tensor:
        self.clustering = UmapGmm(self.n_clusters, seed=seed, **self.config["inference"])
        labels = self.clustering.fit_predict(embeddings.float().cpu().numpy())
        return torch.from_numpy(labels).to(embeddings.device)

    def predict_labels(self, images: torch.Tensor) -> torch.Tensor:
        labels = self._fitted_clustering().predict(self.embed(images).float().cpu().numpy())
        return torch.from_numpy(labels).to(images.device)

    def label_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Log-likelihood of each image's UMAP coordinates under the fitted mixture."""
        scores = self._fitted_clustering().score_samples(self.embed(images).float().cpu().numpy())
        return torch.from_numpy(scores).float().to(images.device)

    def _fitted_clustering(self) -> UmapGmm:
        if self.clustering is None:
            raise RuntimeError("the UMAP + GMM clustering is not fitted yet; call fit_inference first")
        return self.clustering

    def inference_state(self) -> dict:
        return {} if self.clustering is None else {"umap_gmm": self.clustering}

    def load_inference_state(self, state: dict) -> None:
        self.clustering = state.get("umap_gmm")


@register_method("ae-umap-gmm")
class AeUmapGmm(DeepClusterer):
    """N2D (McConville et al., ICPR 2020): autoencoder codes, their UMAP manifold, a Gaussian mixture.

    A deep estimator like the others (run folder, checkpoints, resume, time budget) whose labels
    come from UMAP + GMM on the embeddings instead of k-means; ``deepclust bench`` runs it as a
    baseline. Needs umap-learn: ``pip install 'deepclust[baselines]'``. See docs/methods/ae-umap-gmm.md.
    """

    model_class = AutoencoderModel
    #: Run by ``deepclust bench`` beside the methods (``--baselines``), not as a method.
    baseline = True

    def _build_model(self, config, n_clusters, input_shape, mean, std, **build):
        import_umap()  # before training: a missing extra must not surface after the whole budget
        return super()._build_model(config, n_clusters, input_shape, mean, std, **build)
