"""Plots analysts look at in the Dagster UI, as PNG bytes (matplotlib, no display needed).

No Dagster import: `assets/` put these into materialization metadata.
"""

import io
from types import ModuleType

import numpy as np
import polars as pl

from engagement_box.engagement import quadrants

QUADRANT_COLOURS = {
    quadrants.CHAMPIONS: "#1b9e77",
    quadrants.AFFLUENTS: "#7570b3",
    quadrants.ADVOCATES: "#d95f02",
    quadrants.MISERS: "#999999",
    quadrants.COSTLY_REFERRERS: "#e7298a",
}


def _pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend, imported on first use: importing it costs about
    a CPU-second, which every process loading the code location would pay without plotting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, *, left: float, bottom: float = 0.5, right: float = 0.2, top: float = 0.4) -> bytes:
    """The figure as PNG bytes, with fixed margins in inches for its labels and title:
    `tight_layout` would draw the figure twice, a third of a plot's cost."""
    plt = _pyplot()
    buffer = io.BytesIO()
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, bottom=bottom / height, right=1 - right / width, top=1 - top / height
    )
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _plain_numbers(axis) -> None:
    """Tick labels as plain numbers (1,000) instead of powers of ten, which matplotlib typesets
    with its math-text parser, the costliest part of drawing a log axis."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.6g}"))
    axis.set_minor_formatter(NullFormatter())


def segment_sizes_png(counts: dict[str, int]) -> bytes:
    """Horizontal bars: customers per RFM segment, largest first."""
    items = sorted(counts.items(), key=lambda kv: kv[1])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4c72b0")
    ax.set_xlabel("customers")
    ax.set_title("RFM segment sizes")
    return _png(fig, left=1.7)


def cev_composition_png(values: pl.DataFrame) -> bytes:
    """Total CLV, CRV, CIV and CKV, and the share of CEV each makes up, over the finite values
    (a run whose blocking check `cev_is_the_sum` found non-finite ones still gets its plot,
    without matplotlib's warnings)."""
    parts = ["clv", "crv", "civ", "ckv"]
    totals = [float(values[p].filter(values[p].is_finite()).sum()) for p in parts]
    total = sum(totals) or 1.0
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(
        [p.upper() for p in parts], totals, color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    )
    for bar, value in zip(bars, totals, strict=True):
        ax.annotate(f"{value / total:.1%}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom")  # fmt: skip
    ax.set_ylabel("total value")
    ax.set_title(f"CEV composition (total {total:,.0f})")
    _plain_numbers(ax.yaxis)
    return _png(fig, left=1.1, bottom=0.4)


def clv_distribution_png(clv: np.ndarray) -> bytes:
    """Histogram of CLV on a log axis (CLV is heavily skewed); finite values only."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    positive = clv[np.isfinite(clv) & (clv > 0)]
    if positive.size:
        bins = np.logspace(np.log10(positive.min()), np.log10(positive.max()) + 1e-9, 40)
        ax.hist(positive, bins=bins, color="#4c72b0")
        ax.set_xscale("log")
        _plain_numbers(ax.xaxis)
    ax.set_xlabel("CLV (log scale)")
    ax.set_ylabel("customers")
    ax.set_title(f"CLV distribution ({int((clv <= 0).sum())} customers at 0 not shown)")
    return _png(fig, left=0.75)


def quadrant_map_png(values: pl.DataFrame, max_points: int = 20_000, seed: int = 0) -> bytes:
    """CLV against CRV, coloured by Kumar's quadrant (a seeded sample of customers)."""
    frame = values.select("clv", "crv", "quadrant")
    if frame.height > max_points:
        frame = frame.sample(max_points, seed=seed)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for quadrant, colour in QUADRANT_COLOURS.items():
        part = frame.filter(pl.col("quadrant") == quadrant)
        ax.scatter(part["clv"], part["crv"], s=6, alpha=0.6, color=colour,
                   label=f"{quadrant} ({part.height})")  # fmt: skip
    ax.set_xscale("symlog")
    ax.set_yscale("symlog")
    _plain_numbers(ax.xaxis)
    _plain_numbers(ax.yaxis)
    ax.set_xlabel("CLV")
    ax.set_ylabel("CRV")
    ax.set_title("CLV x CRV quadrants")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig, left=0.9)


def cohort_retention_png(cohorts: pl.DataFrame, max_cohorts: int = 36) -> bytes:
    """Heatmap of the retention share: first-order month (rows, the latest `max_cohorts`) by
    months since the first order (columns); blank where a cohort is not that old yet."""
    months = sorted(cohorts["cohort_month"].unique().to_list())[-max_cohorts:]
    frame = cohorts.filter(pl.col("cohort_month").is_in(months))
    width = int(frame["months_since_first_order"].max() or 0) + 1 if frame.height else 1
    grid = np.full((max(len(months), 1), width), np.nan)
    row_of = {m: i for i, m in enumerate(months)}
    for month, since, share in frame.select(
        "cohort_month", "months_since_first_order", "retention_share"
    ).iter_rows():
        grid[row_of[month], since] = share
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    size = (max(6.5, min(4 + 0.25 * width, 14)), max(2.5, min(2 + 0.22 * len(months), 10)))
    fig, ax = plt.subplots(figsize=size)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="none")
    ax.set_yticks(range(len(months)), [f"{m:%Y-%m}" for m in months], fontsize=7)
    ax.set_xlabel("months since first order")
    ax.set_ylabel("first-order month")
    ax.set_title("Cohort retention: share of the cohort ordering in the month")
    fig.colorbar(image, ax=ax, label="retention share")
    return _png(fig, left=0.9, right=0.1)
