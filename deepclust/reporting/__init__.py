"""Benchmark tables, the visual run report and their plots.

- :mod:`deepclust.reporting.table`: pure functions turning per-run benchmark records into the
  results table (Markdown, CSV, JSON);
- :mod:`deepclust.reporting.bench`: ``deepclust bench``, every method and the baselines (k-means,
  UMAP + GMM, N2D) trained on the same data and seeds;
- :mod:`deepclust.reporting.readme_table`: the README's results block, generated from a results JSON;
- :mod:`deepclust.reporting.report`: ``deepclust report RUN_DIR``, an HTML page with training
  curves, confusion matrix, 2-D embedding map, cluster sizes and sample images;
- :mod:`deepclust.reporting.plots`: the matplotlib figures (Agg canvas, no pyplot state);
- :mod:`deepclust.reporting.memory`: peak memory of a block of code (CPU RSS or CUDA).

Only the table functions are imported here; the rest load matplotlib/scikit-learn on use.
"""
from __future__ import annotations

from deepclust.reporting.table import aggregate_records, format_csv, format_markdown, results_json, write_results

__all__ = ["aggregate_records", "format_csv", "format_markdown", "results_json", "write_results"]
