"""Figures of the run report, drawn on matplotlib's Agg canvas (no pyplot, no display needed).

Every function takes plain arrays/dicts, writes one PNG and returns its path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

DPI = 110


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path


def label_colors(n: int) -> ListedColormap:
    """Distinct colours for ``n`` categories (tab10 / tab20, then evenly spaced hues)."""
    if n <= 10:
        colors = matplotlib.colormaps["tab10"].colors[:max(n, 1)]
    elif n <= 20:
        colors = matplotlib.colormaps["tab20"].colors[:n]
    else:
        colors = matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, n))
    return ListedColormap(colors)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or values.size < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def training_curves(steps: Sequence[float], terms: dict[str, Sequence[float]], path: str | Path,
                    lr: Sequence[float] | None = None, title: str = "Training losses") -> Path:
    """One panel per loss term against the step (raw values thin, moving average bold), plus the lr."""
    panels = list(terms.items()) + ([("learning rate", lr)] if lr is not None else [])
    columns = min(3, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    figure = _new_figure(4.2 * columns, 2.9 * rows)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    x = np.asarray(steps, dtype=float)
    for axis, (name, values) in zip(axes, panels):
        y = np.asarray([np.nan if v is None else v for v in values], dtype=float)
        window = max(1, len(y) // 25)
        axis.plot(x, y, color="tab:blue", alpha=0.35 if window > 1 else 1.0, linewidth=1)
        if window > 1:
            axis.plot(x, _smooth(y, window), color="tab:blue", linewidth=1.8, label=f"mean of {window}")
            axis.legend(fontsize=7, loc="best")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        if name == "learning rate":
            axis.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for axis in axes[len(panels):]:
        axis.set_visible(False)
    figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def eval_curves(steps: Sequence[float], metrics: dict[str, Sequence[float]], path: str | Path,
                epochs: Sequence[float] | None = None, final: tuple[float, dict] | None = None) -> Path:
    """ACC / NMI / ARI (and any other given metric in [0, 1]) at every evaluation.

    ``final`` = (step, {metric: value}) adds the end-of-training scores as stars.
    """
    figure = _new_figure(6.4, 3.6)
    axis = figure.subplots()
    x = np.asarray(steps, dtype=float)
    colors = matplotlib.colormaps["tab10"].colors
    for index, (name, values) in enumerate(metrics.items()):
        color = colors[index % 10]
        axis.plot(x, np.asarray(values, dtype=float), marker="o", markersize=3, linewidth=1.5, label=name.upper(),
                  color=color)
        if final is not None and final[1].get(name) is not None:
            axis.plot([final[0]], [final[1][name]], marker="*", markersize=11, color=color, linestyle="",
                      label="final scores" if index == 0 else None)
    axis.set_ylim(0, 1)
    axis.set_xlabel("step")
    axis.set_ylabel("score")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    if epochs is not None and len(epochs) == len(x) and len(x) > 0:
        top = axis.secondary_xaxis("top")
        shown = np.unique(np.linspace(0, len(x) - 1, min(len(x), 8)).round().astype(int))
        top.set_xticks(x[shown], [str(int(epochs[i])) for i in shown])
        top.set_xlabel("epoch", fontsize=8)
        top.tick_params(labelsize=7)
    axis.set_title("Clustering quality during training", fontsize=11)
    return _save(figure, path)


def confusion_matrix(counts: np.ndarray, class_names: Sequence[str], cluster_names: Sequence[str],
                     path: str | Path, title: str = "Confusion matrix") -> Path:
    """``counts[class, cluster]`` coloured by the share of each class (row), counts written in cells."""
    counts = np.asarray(counts)
    n_classes, n_clusters = counts.shape
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    width = min(18.0, 2.5 + 0.55 * n_clusters)
    height = min(16.0, 2.0 + 0.45 * n_classes)
    figure = _new_figure(width, height)
    axis = figure.subplots()
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    if n_classes * n_clusters <= 900:
        size = 8 if n_clusters <= 12 else 6
        for i in range(n_classes):
            for j in range(n_clusters):
                if counts[i, j]:
                    axis.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=size,
                              color="white" if shares[i, j] > 0.55 else "black")
    axis.set_xticks(range(n_clusters), list(cluster_names), rotation=90 if n_clusters > 12 else 0, fontsize=8)
    axis.set_yticks(range(n_classes), list(class_names), fontsize=8)
    axis.set_xlabel("cluster (ordered by the Hungarian matching)")
    axis.set_ylabel("true class")
    axis.set_title(title, fontsize=11)
    figure.colorbar(image, ax=axis, label="share of the class", shrink=0.85)
    return _save(figure, path)


def embedding_map(coords: np.ndarray, clusters: np.ndarray, path: str | Path, classes: np.ndarray | None = None,
                  class_names: Sequence[str] | None = None, technique: str = "t-SNE",
                  n_clusters: int | None = None) -> Path:
    """2-D scatter coloured by cluster and, when labels exist, by true class (side by side).

    Cluster ``c`` gets colour ``c`` of :func:`label_colors` (``n_clusters``), as in :func:`cluster_sizes`.
    """
    clusters = np.asarray(clusters)
    panels = [("cluster", clusters, None, n_clusters or int(clusters.max()) + 1)]
    if classes is not None:
        classes = np.asarray(classes)
        panels.append(("true class", classes, class_names, max(len(class_names or []), int(classes.max()) + 1)))
    figure = _new_figure(6.2 * len(panels), 5.6)
    axes = np.atleast_1d(figure.subplots(1, len(panels), squeeze=False)).ravel()
    point_size = max(2.0, min(14.0, 6000.0 / max(len(coords), 1)))
    for axis, (name, values, names, n_colors) in zip(axes, panels):
        categories = np.unique(values)
        cmap = label_colors(n_colors)
        axis.scatter(coords[:, 0], coords[:, 1], c=values, cmap=cmap, vmin=-0.5, vmax=n_colors - 0.5,
                     s=point_size, linewidths=0, alpha=0.85)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_title(f"{technique}, coloured by {name}", fontsize=11)
        if len(categories) <= 20:
            handles = [Line2D([], [], marker="o", linestyle="", markersize=6, color=cmap(int(c)),
                              label=(names[c] if names is not None and 0 <= c < len(names) else str(c)))
                       for c in categories]
            axis.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _save(figure, path)


def cluster_sizes(sizes: np.ndarray, cluster_ids: Sequence[int], path: str | Path,
                  annotations: Sequence[str] | None = None) -> Path:
    """Bar chart of the cluster sizes (bars in the given order, coloured by cluster id as in
    :func:`embedding_map`) with the balanced size N/K as a dashed line; ``annotations`` (e.g. the
    matched class) are added to the cluster ids under the bars."""
    sizes = np.asarray(sizes)
    k = len(sizes)
    names = [str(c) for c in cluster_ids]
    if annotations is not None:
        names = [f"{name} {text}".strip() for name, text in zip(names, annotations)]
    figure = _new_figure(min(18.0, 3.0 + 0.55 * k), 4.2)
    axis = figure.subplots()
    bars = axis.bar(range(k), sizes, color=label_colors(k)(np.asarray(cluster_ids, dtype=int)))
    axis.axhline(sizes.sum() / max(k, 1), color="black", linestyle="--", linewidth=1, label="N / K (balanced)")
    if k <= 40:
        for bar, size in zip(bars, sizes):
            axis.annotate(str(int(size)), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                          va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    long_names = max(len(name) for name in names) > 4 if names else False
    axis.set_xticks(range(k), names, rotation=45 if long_names or k > 12 else 0,
                    ha="right" if long_names or k > 12 else "center", rotation_mode="anchor", fontsize=8)
    axis.set_xlabel("cluster" + (" → matched class" if annotations is not None else ""))
    axis.set_ylabel("images")
    axis.margins(y=0.12)
    axis.legend(fontsize=8, loc="upper right", framealpha=0.9)
    axis.set_title(f"Cluster sizes ({int((sizes > 0).sum())} of {k} non-empty)", fontsize=11)
    return _save(figure, path)


def _to_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) → (N, H, W, 3): grey images repeated, other channel counts use channel 0."""
    if images.shape[1] == 3:
        return np.transpose(images, (0, 2, 3, 1))
    return np.repeat(images[:, :1].transpose(0, 2, 3, 1), 3, axis=3)


def sample_mosaic(rows: Sequence[np.ndarray], per_row: int, pad: int = 2, background: int = 255) -> np.ndarray:
    """One RGB uint8 picture: row ``r`` holds up to ``per_row`` images of ``rows[r]`` (N×C×H×W)."""
    shapes = [images.shape[2:] for images in rows if len(images)]
    height, width = shapes[0] if shapes else (8, 8)
    mosaic = np.full((len(rows) * (height + pad) + pad, per_row * (width + pad) + pad, 3), background, np.uint8)
    for r, images in enumerate(rows):
        for c, image in enumerate(_to_rgb(np.asarray(images)[:per_row])):
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            mosaic[top:top + height, left:left + width] = image
    return mosaic


def cluster_samples(rows: Sequence[np.ndarray], row_titles: Sequence[str], path: str | Path,
                    per_row: int = 10, title: str = "Sample images per cluster") -> Path:
    """One row per cluster: up to ``per_row`` images (uint8 N×C×H×W) with the row's title at its left."""
    mosaic = sample_mosaic(rows, per_row)
    cell = 0.7
    figure = _new_figure(1.6 + cell * per_row, 0.6 + cell * max(len(rows), 1))
    axis = figure.subplots()
    axis.imshow(mosaic, interpolation="nearest", aspect="equal")
    row_height = (mosaic.shape[0] - 2) / max(len(rows), 1)
    axis.set_yticks([2 + row_height * (r + 0.5) for r in range(len(rows))], list(row_titles), fontsize=8)
    axis.set_xticks([])
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    axis.set_title(title, fontsize=11)
    return _save(figure, path)
