"""The CDNOW 1/10 sample that lifetimes ships, as an orders export (model checks)."""

from pathlib import Path

import polars as pl

ORDER_EXPORT_COLUMNS = (
    "order_id",
    "customer_id",
    "email",
    "ordered_at",
    "net_amount",
    "currency",
    "status",
    "channel",
)


def cdnow_sample_path() -> Path:
    """Path of `CDNOW_sample.txt` inside the installed lifetimes package (no pkg_resources)."""
    import importlib.util

    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the lifetimes package is not installed")
    path = Path(spec.origin).parent / "datasets" / "CDNOW_sample.txt"
    if not path.exists():
        raise FileNotFoundError(path)
    return path


def load_cdnow_orders(path: str | Path | None = None) -> pl.DataFrame:
    """The CDNOW 1/10 sample (6,919 purchases by 2,357 customers, 1997-01..1998-06) as orders.

    The file has whitespace-separated columns: master customer id, sample customer id (1..2357),
    date (YYYYMMDD), number of CDs, dollar value. Each line becomes one completed web order in USD:
    order_id "cdnow-<line:05d>", customer_id "cdnow-<sample id:04d>", ordered_at the day at
    midnight, net_amount the dollar value, email null. Extra column `quantity` keeps the CD count.
    Eight purchases have a value of 0.
    """
    raw = pl.read_csv(
        path or cdnow_sample_path(),
        has_header=False,
        separator="\t",
        new_columns=["line"],
        schema_overrides={"line": pl.String},
    )
    fields = raw.select(pl.col("line").str.strip_chars().str.extract_all(r"\S+").alias("f"))["f"]
    df = pl.DataFrame(
        {
            "sample_id": fields.list.get(1).cast(pl.Int64),
            "date": fields.list.get(2),
            "quantity": fields.list.get(3).cast(pl.Int64),
            "net_amount": fields.list.get(4).cast(pl.Float64),
        }
    )
    return df.with_row_index("line", offset=1).select(
        pl.format("cdnow-{}", pl.col("line").cast(pl.String).str.zfill(5)).alias("order_id"),
        pl.format("cdnow-{}", pl.col("sample_id").cast(pl.String).str.zfill(4)).alias(
            "customer_id"
        ),
        pl.lit(None, dtype=pl.String).alias("email"),
        pl.col("date").str.strptime(pl.Datetime("us"), "%Y%m%d").alias("ordered_at"),
        pl.col("net_amount"),
        pl.lit("USD").alias("currency"),
        pl.lit("completed").alias("status"),
        pl.lit("web").alias("channel"),
        pl.col("quantity"),
    )


def write_cdnow_orders_csv(path: str | Path, source: str | Path | None = None) -> Path:
    """Write the CDNOW sample as an orders export CSV with exactly the contract's order columns.

    Timestamps are written as ISO 8601 (`1997-01-01T00:00:00`), email empty.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    orders = load_cdnow_orders(source).select(ORDER_EXPORT_COLUMNS)
    orders.write_csv(path, datetime_format="%Y-%m-%dT%H:%M:%S")
    return path
