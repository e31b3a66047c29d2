"""Pictures of a model: training curves from history.json and a t-SNE map of labelled sentences.

matplotlib (Agg backend, no display needed) and scikit-learn's t-SNE are the optional extra
`semsearch[plot]`; `require_plotting` says how to install them when they are absent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semsearch.errors import DataError, SemsearchError

INSTALL_HINT = "pip install 'semsearch[plot]'"
# (history key, axis title) per panel; a panel's keys missing from every epoch leave it blank.
PANELS = (
    (("train_loss", "val_loss", "sts_loss"), "loss"),
    (("stsb_dev_spearman",), "STS-B dev Spearman x100"),
    (("lr",), "learning rate"),
    (("steps_per_s",), "training steps / s"),
)
ROLES = ("premise", "entailed", "contradiction")
MARKERS = {"premise": "o", "entailed": "^", "contradiction": "x"}


def require_plotting() -> None:
    """Raise SemsearchError naming the install command when matplotlib or scikit-learn is absent."""
    missing = []
    for module, package in (("matplotlib", "matplotlib"), ("sklearn", "scikit-learn")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise SemsearchError(
            f"plotting needs {' and '.join(missing)}, which are not installed; run `{INSTALL_HINT}`"
        )


def read_history(path: str | Path) -> list[dict]:
    """The per-epoch records of a model's history.json (a JSON list of dicts)."""
    path = Path(path)
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} not found; `semsearch train` writes it into the model folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path} is not readable JSON ({error}); retrain or fix the file") from None
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise DataError(f"{path} should hold a JSON list of per-epoch objects")
    if not history:
        raise DataError(f"{path} has no epochs yet; plot again after the first epoch")
    return history


def plot_history(history: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Write a 2x2 PNG of loss, STS-B dev Spearman, learning rate and speed by epoch; keys
    missing from a record are skipped, a panel with no values says so."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    for axis, (keys, label) in zip(axes.flat, PANELS, strict=True):
        plotted = False
        for key in keys:
            points = [
                (row.get("epoch", i + 1), row[key])
                for i, row in enumerate(history)
                if isinstance(row.get(key), int | float)
            ]
            if points:
                epochs, values = zip(*points, strict=True)
                axis.plot(epochs, values, marker="o", label=key)
                plotted = True
        if not plotted:
            axis.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=axis.transAxes)
        elif len(keys) > 1:
            axis.legend()
        axis.set_title(label)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def snli_groups(pairs: Sequence, groups: int = 12) -> tuple[list[str], list[int], list[str]]:
    """Texts, group numbers and roles for a t-SNE map: the first `groups` SNLI premises that have
    both an entailed and a contradicting hypothesis, each with one of each (3 texts a group)."""
    by_premise: dict[str, dict[str, str]] = {}
    for pair in pairs:
        if pair.label in ("entailment", "contradiction"):
            by_premise.setdefault(pair.premise, {}).setdefault(pair.label, pair.hypothesis)
    complete = [(p, h) for p, h in by_premise.items() if len(h) == 2][:groups]
    texts, group_ids, roles = [], [], []
    for group, (premise, hypotheses) in enumerate(complete):
        texts += [premise, hypotheses["entailment"], hypotheses["contradiction"]]
        group_ids += [group] * 3
        roles += list(ROLES)
    return texts, group_ids, roles


def tsne_2d(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """A (n, 2) t-SNE layout of `vectors` under cosine distance, seeded so a rerun matches."""
    from sklearn.manifold import TSNE

    n = len(vectors)
    # perplexity must stay below n; about a third of n keeps small maps from collapsing.
    perplexity = float(max(2, min(30, (n - 1) // 3)))
    return TSNE(
        n_components=2, perplexity=perplexity, metric="cosine", init="random", random_state=seed
    ).fit_transform(np.asarray(vectors, dtype=np.float64))


def plot_map(
    points: np.ndarray, groups: Sequence[int], roles: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Write a PNG scatter of 2-D `points`, colour by group and marker by role."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 7), constrained_layout=True)
    colours = plt.get_cmap("tab20")
    groups, roles = np.asarray(groups), np.asarray(roles)
    for role in dict.fromkeys(roles.tolist()):
        mask = roles == role
        axis.scatter(
            points[mask, 0], points[mask, 1], c=[colours(g % 20) for g in groups[mask]],
            marker=MARKERS.get(role, "o"), s=60, label=role,
        )
    from matplotlib.lines import Line2D

    # legend by marker only, in grey: colours stand for groups, not roles
    handles = [
        Line2D([], [], color="grey", marker=MARKERS.get(role, "o"), linestyle="", label=role)
        for role in dict.fromkeys(roles.tolist())
    ]
    axis.legend(handles=handles, title="colour = group")
    axis.set_xticks([])
    axis.set_yticks([])
    if title:
        axis.set_title(title)
    return _save(figure, path)


def _pyplot():
    require_plotting()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
