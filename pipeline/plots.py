"""The report's figures (PNG), after the paper's Figs. 2, 4, 5 and 7.

Each function takes plain arrays and writes one file; `pipeline.reporting` gathers the data.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA


def robustness_plot(
    curves: dict[str, list[tuple[float, float]]], metric: str, title: str, path: Path
) -> None:
    """Fig. 5: the headline metric against the missing rate, one line per restorer."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for restorer, points in sorted(curves.items()):
        etas, values = zip(*sorted(points), strict=True)
        axis.plot([100 * e for e in etas], [100 * v for v in values], marker="o", label=restorer)
    axis.set_xlabel("missing rate eta (%)")
    axis.set_ylabel(f"{metric} (x100)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def pca_plot(true: np.ndarray, restored: np.ndarray, title: str, path: Path) -> None:
    """Fig. 2: restored features and the true features they stand for, in the true features' PCA."""
    pca = PCA(n_components=2).fit(true)
    true_2d, restored_2d = pca.transform(true), pca.transform(restored)
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.scatter(*true_2d.T, s=6, alpha=0.5, label="true")
    axis.scatter(*restored_2d.T, s=6, alpha=0.5, label="restored")
    axis.set_title(title)
    axis.set_xlabel("PC 1")
    axis.set_ylabel("PC 2")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def class_similarity(features: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Cosine similarity of the per-class mean features (NaN rows for classes with no sample)."""
    means = np.full((n_classes, features.shape[1]), np.nan)
    for k in range(n_classes):
        if (labels == k).any():
            means[k] = features[labels == k].mean(axis=0)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return means @ means.T


def class_similarity_plot(
    true: np.ndarray, restored: np.ndarray, labels: np.ndarray, classes: list[str], title: str, path: Path
) -> None:
    """Fig. 7: class-wise cosine similarity matrices of true (left) and restored (right) features."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 5))
    for axis, features, name in ((axes[0], true, "true"), (axes[1], restored, "restored")):
        image = axis.imshow(class_similarity(features, labels, len(classes)), vmin=-1, vmax=1, cmap="RdBu_r")
        axis.set_title(f"{name} features")
        axis.set_xticks(range(len(classes)), classes, rotation=90, fontsize=6)
        axis.set_yticks(range(len(classes)), classes, fontsize=6)
    figure.colorbar(image, ax=axes, shrink=0.8, label="cosine similarity of class means")
    figure.suptitle(title)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def gate_plot(attention_gates: np.ndarray, mlp_gates: np.ndarray, title: str, path: Path) -> None:
    """Fig. 4: mean attention-gate activation per channel (top) and MLP gates per depth (bottom).

    Both arrays are (depth, width): gate values averaged over samples and timesteps.
    """
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6))
    top.bar(range(attention_gates.shape[1]), attention_gates.mean(axis=0), width=1.0)
    top.set_xlabel("channel")
    top.set_ylabel("mean Z_attn")
    image = bottom.imshow(
        mlp_gates, aspect="auto", cmap="viridis", vmin=0, vmax=max(1e-6, float(mlp_gates.max()))
    )
    bottom.set_xlabel("channel")
    bottom.set_ylabel("block (depth)")
    figure.colorbar(image, ax=bottom, label="mean Z_mlp")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
