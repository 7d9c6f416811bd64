"""Stage `fetch`: MNIST into a Keras-layout .npz, and where it came from.

The sources in params.yaml `fetch.sources` are tried in order
(pipeline.core.sources). If none works, nothing is created or changed.
"""

from collections.abc import Sequence

from pipeline.core import mnist, params
from pipeline.core.atomic import atomic_path, write_json
from pipeline.core.cli import stage_paths
from pipeline.core.errors import one_line_errors
from pipeline.core.sources import FetchError, fetch


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(__doc__, argv, "mnist", "provenance")
    try:
        arrays, provenance = fetch(params.load().fetch)
    except (params.ParamsError, FetchError) as error:
        raise SystemExit(f"fetch: {error}") from None
    # The provenance is written inside the npz's block, so by the time it lands the
    # npz is complete and only needs its final rename.
    with atomic_path(paths.mnist) as tmp:
        mnist.save_npz(tmp, arrays)
        write_json(paths.provenance, provenance)
    print(
        f"fetch: wrote {paths.mnist} and {paths.provenance} from source "
        f"{provenance['source']!r}"
    )


if __name__ == "__main__":
    main()
