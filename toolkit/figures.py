"""The figure helpers every plot of the toolkit uses: a row of axes, and an atomic PNG save."""

from __future__ import annotations

import os
from typing import Any

from toolkit.files import atomic_write


def figure_row(ncols: int, width: float = 5, height: float = 4) -> tuple[Any, Any, Any]:
    """(pyplot, figure, axes): `ncols` axes side by side, on the Agg backend (no display needed)."""
    return figure_grid(ncols, ncols, width, height)


def figure_grid(count: int, ncols: int, width: float = 5, height: float = 4) -> tuple[Any, Any, Any]:
    """(pyplot, figure, axes): `count` axes in rows of `ncols` (the last row's spare axes hidden), on the Agg
    backend (no display needed); `axes` is flat, in reading order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nrows = -(-count // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    axes = grid.ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return plt, fig, axes[:count]


def save_figure(plt: Any, fig: Any, path: str | os.PathLike) -> None:
    """Lay the figure out, write it to `path` as a PNG atomically, and free it."""
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
