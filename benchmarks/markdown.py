"""`benchmarks/results.md`: a benchmark report as Markdown."""

from __future__ import annotations

from typing import Any

from benchmarks.analysis import TARGETS

VERSION_KEYS = ("keras", "tensorflow", "jax", "torch", "numpy", "torch_threads")
THROUGHPUT_TABLES = (
    ("train", "Training throughput (images/s, batch 64, Adam)"),
    ("infer", "Inference throughput (images/s, batch 1000)"),
)


def verdict(value: bool | None) -> str:
    """A verdict as shown: "PASS", "MISS", or "n/a" when no row counted."""
    return "n/a" if value is None else "PASS" if value else "MISS"


def _rate_columns(summary, unit):
    """The median and the "min – max" of a summary, as table cells."""
    if unit == "flop":
        return (
            f"{summary['median'] / 1e9:,.1f}",
            f"{summary['min'] / 1e9:,.1f} – {summary['max'] / 1e9:,.1f}",
        )
    return f"{summary['median']:,.0f}", f"{summary['min']:,.0f} – {summary['max']:,.0f}"


def render(report: dict[str, Any]) -> str:
    """The Markdown text of `report`, the dict `benchmarks.run` writes as JSON."""
    settings, m = report["settings"], report["machine"]
    lines = [
        "# bnk throughput on this machine",
        "",
        (
            f"Run {report['date']} with `{report['command']}` "
            f"({settings['repeats']} interleaved rounds; "
            f"{settings['steps']} training steps of batch "
            f"{settings['batch']} and {settings['infer_steps']} "
            f"inference batches of {settings['infer_batch']} per measurement; "
            f"{report['wall_seconds'] / 60:.1f} min in all)."
        ),
        "",
    ]
    if settings["quick"]:
        lines += [
            (
                "**A `--quick` smoke run: too few steps and rounds for the "
                "numbers to mean anything.**"
            ),
            "",
        ]
    lines += [
        "## Machine",
        "",
        (
            f"- CPU: {m.get('cpu')}, {m.get('cpu_count')} logical cores "
            f"({m.get('usable_cpus', '?')} usable), "
            f"{m.get('memory_gib', '?')} GiB memory"
        ),
        f"- {m['platform']}, Python {m['python']}",
        (
            f"- load average (1, 5, 15 min) at start {report['load_start']}, "
            f"at end {report['load_end']} "
            "(other work on the machine makes numbers noisy)"
        ),
    ]
    for name, info in report["workers"].items():
        versions = ", ".join(f"{k} {v}" for k, v in info.items() if k in VERSION_KEYS)
        lines.append(
            f"- {name}: {versions}; device: {info['device']} ({info['device_name']})"
        )
    flop = report["flop_per_image"]
    if flop:
        lines.append(
            f"- bnk.CNN cost, counted from its Conv2D/Dense layers: "
            f"{flop[0] / 1e6:.1f} MFLOP per image forward, {flop[1] / 1e6:.1f} MFLOP "
            "per training image (forward + input and weight gradients)"
        )
    lines += [
        "",
        (
            "Each measurement times a fixed number of steps after warm-up (compile); "
            "Keras timings run from the first batch's start to the end of "
            "`fit`/`predict` (per-call setup left out). Medians over the rounds, "
            "min – max beside; ratios are paired round by round."
        ),
        "",
    ]
    results = report["results"]
    peaks = [name for name in results if name.startswith("peak/")]
    if peaks:
        lines += [
            f"## float32 matrix-multiply peak ({settings['matmul_n']}²)",
            "",
            "| | device | GFLOP/s | min – max |",
            "| --- | --- | ---: | --- |",
        ]
        for name in peaks:
            median, span = _rate_columns(results[name], "flop")
            library = name.split("/")[1]
            lines.append(
                f"| {library} | {results[name]['device']} | {median} | {span} |"
            )
        lines += [
            "",
            "The limit each throughput is compared with below (`of matmul limit`) is "
            "the best of these medians on its device: "
            + ", ".join(
                f"{device} {rate / 1e9:,.1f} GFLOP/s"
                for device, rate in report["peak_flop_per_s"].items()
            )
            + "; that is, images/s x FLOP per image / limit.",
            "",
        ]
    for task, title in THROUGHPUT_TABLES:
        names = [name for name in results if name.startswith(task + "/")]
        if not names:
            continue
        lines += [
            f"## {title}",
            "",
            "| backend | BN | compile | images/s | min – max | spread "
            "| of matmul limit |",
            "| --- | --- | --- | ---: | --- | ---: | ---: |",
        ]
        for name in sorted(names):
            _, backend, bn, mode = name.split("/")
            summary = results[name]
            median, span = _rate_columns(summary, "images")
            fraction = summary.get("fraction_of_peak")
            fraction = f"{100 * fraction:.1f}%" if fraction is not None else "–"
            lines.append(
                f"| {backend} | {bn} | {mode} | {median} | {span} | "
                f"{100 * summary['spread']:.0f}% | {fraction} |"
            )
        lines.append("")
    lines += ["## Targets", ""]
    for name, target in TARGETS.items():
        lines += [
            f"### `{name}`: {verdict(report['verdicts'][name])}",
            "",
            f"{target.description}.",
            "",
        ]
        for row in report["targets"][name]:
            ratio = row["ratio"]
            note = "" if row["counted"] else " (not counted: the other mode is faster)"
            lines.append(
                f"- {row['backend']}: {ratio['median']:.2f} "
                f"(rounds {ratio['min']:.2f} – {ratio['max']:.2f}) "
                f"{verdict(row['pass'])}{note}"
            )
        lines.append("")
    return "\n".join(lines)
