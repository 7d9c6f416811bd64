"""Write the page template that lets `dvc plots show` work without the internet.

DVC's own page loads vega, vega-lite and vega-embed from a CDN, so offline it is blank.
`.dvc/config` points DVC at this template instead (`plots.html_template`), which holds
the three libraries inline, taken from the pinned PyPI package vl-convert-python. The
template has no `{scripts}` placeholder, where DVC would put its CDN script tags; DVC
fills `{plot_divs}` (and `{refresh_tag}`) by plain text replacement.

`make setup` runs it: `python -m pipeline.reporting.plots_template PATH`.
"""

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import vl_convert

# DVC's plot templates are Vega-Lite 5 specifications.
VEGA_LITE_VERSION = "5.21"
DVC_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- LIBRARIES -->
    <script type="text/javascript">
(function () {
BUNDLE
})();
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def libraries_bundle() -> str:
    """vega, vega-lite and vega-embed as one classic script defining them on `window`.

    Wrapped in a function so the bundle's top-level names stay out of the page's
    global scope, where DVC's own inline scripts declare theirs.
    """
    bundle = vl_convert.javascript_bundle(None, vl_version=VEGA_LITE_VERSION)
    for placeholder in DVC_PLACEHOLDERS:
        if placeholder in bundle:
            raise ValueError(f"the bundle holds DVC's placeholder {placeholder}")
    # `</script` inside the code would end the script element early; `<\/` means the
    # same in a JavaScript string or regular expression.
    return re.sub(r"</(script)", r"<\\/\1", bundle, flags=re.IGNORECASE)


def page() -> str:
    versions = (
        f"vega {vl_convert.get_vega_version()}, vega-lite {VEGA_LITE_VERSION}, "
        f"vega-embed {vl_convert.get_vega_embed_version()}, from vl-convert-python"
    )
    return PAGE.replace("<!-- LIBRARIES -->", f"<!-- {versions} -->").replace(
        "BUNDLE", libraries_bundle()
    )


def main(argv: Sequence[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m pipeline.reporting.plots_template PATH")
    target = Path(argv[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(page(), encoding="utf8")
    partial.replace(target)


if __name__ == "__main__":
    main(sys.argv[1:])
