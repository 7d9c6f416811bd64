"""A figure in a report, shown with the text a reader who cannot see it reads instead
(the image's alt text, which the page template writes)."""

import io

import matplotlib.pyplot as plt
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
