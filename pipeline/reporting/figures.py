"""A figure in a report, shown with the text a reader who cannot see it reads instead
(the image's alt text, which the page template writes)."""

import io

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display
from matplotlib.figure import Figure


def show(figure: Figure, alt: str) -> None:
    """Display `figure` as a PNG described by `alt`, and close it."""
    if not alt.strip():
        raise ValueError("a figure needs a description (alt text), got none")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    display(Image(data=buffer.getvalue(), format="png"), metadata={"alt": alt})


def accuracy_limits(
    means: np.ndarray, stds: np.ndarray, margin: float = 0.005
) -> tuple[float, float]:
    """An accuracy axis that shows every mean and its error bar with `margin` to
    spare, and no more: a 0-100% axis hides the half-point differences the reports
    discuss. (0, 1) when no value is finite."""
    low, high = np.asarray(means) - stds, np.asarray(means) + stds
    if not np.isfinite(low).any():
        return 0.0, 1.0
    return max(0.0, np.nanmin(low) - margin), min(1.0, np.nanmax(high) + margin)
