"""The figure helpers every plot of the toolkit uses: a row of axes, and an atomic PNG save."""

from __future__ import annotations

import os
from typing import Any

from toolkit.files import atomic_write


def figure_row(ncols: int, width: float = 5, height: float = 4) -> tuple[Any, Any, Any]:
    """(pyplot, figure, axes): `ncols` axes side by side, on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return plt, fig, axes[0]


def save_figure(plt: Any, fig: Any, path: str | os.PathLike) -> None:
    """Lay the figure out, write it to `path` as a PNG atomically, and free it."""
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
