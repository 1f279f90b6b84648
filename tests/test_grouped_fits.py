"""Fits on grouped rows with counts (what the Spark engine collects) equal the per-customer fits.

The rows are given shuffled and with some rows split in two, as a distributed group-by may
return them; the fit must not depend on that."""

import numpy as np
import polars as pl
import pytest
from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

from engagement_box.value import fitting, purchase_models
from engagement_box.value.grouping import merge_rows, unique_rows


@pytest.fixture(scope="module")
def cdnow():
    frame = load_cdnow_summary_data_with_monetary_value()
    return tuple(
        frame[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary_value")
    )


def as_spark_rows(*columns, seed=7):
    """The distinct rows with counts, shuffled, with every third row split into two rows."""
    distinct, _, counts = unique_rows(*columns)
    rng = np.random.default_rng(seed)
    split = (np.arange(counts.shape[0]) % 3 == 0) & (counts > 1)
    cols = [np.concatenate([c, c[split]]) for c in distinct]
    k = np.concatenate([np.where(split, counts - 1, counts), np.ones(int(split.sum()))])
    order = rng.permutation(k.shape[0])
    return [c[order] for c in cols], k[order]


def test_merge_rows_gives_unique_rows_order_and_counts(cdnow):
    x, t_x, T, _ = cdnow
    (ux, ut, uT), _, counts = unique_rows(x, t_x, T)
    rows, k = as_spark_rows(x, t_x, T)
    (gx, gt, gT), k = merge_rows(*rows, counts=k)
    for a, b in ((ux, gx), (ut, gt), (uT, gT), (counts, k)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("model", purchase_models.MODEL_NAMES)
def test_purchase_fit_on_counts_equals_per_customer_fit(cdnow, model):
    x, t_x, T, _ = cdnow
    per_customer = purchase_models.fit_model(model, x, t_x, T, time_unit="W")
    (gx, gt, gT), k = as_spark_rows(x, t_x, T)
    grouped = purchase_models.fit_model(model, gx, gt, gT, time_unit="W", counts=k)
    assert grouped.params == per_customer.params
    assert grouped.log_likelihood == per_customer.log_likelihood
    assert (grouped.n_customers, grouped.n_rows) == (per_customer.n_customers, per_customer.n_rows)


def test_gamma_gamma_on_counts_equals_per_customer_fit(cdnow):
    x, _, _, m = cdnow
    per_customer = fitting.fit_gamma_gamma(x, m)
    (gx, gm), k = as_spark_rows(x, m)
    grouped = fitting.fit_gamma_gamma(gx, gm, counts=k)
    assert grouped.params == per_customer.params
    assert grouped.log_likelihood == per_customer.log_likelihood
    assert grouped.n_customers == per_customer.n_customers == int((x > 0).sum())
    assert grouped.standard_errors == per_customer.standard_errors


def test_a_degenerate_grouped_input_fails_as_the_per_customer_one():
    # two rows standing for 5 customers, none of them a repeat buyer: dropout not identified
    failed = fitting.fit_bgnbd([0, 0], [0, 0], [10, 20], counts=[2, 3], raise_on_failure=False)
    assert not failed.converged and failed.reason == "degenerate"
    assert failed.n_customers == 5
    # one row standing for two customers is two customers, not one
    one_row = fitting.fit_bgnbd([1], [3], [10], counts=[2], raise_on_failure=False)
    assert "only one customer" not in one_row.message
    with pytest.raises(ValueError, match="whole numbers"):
        fitting.fit_bgnbd([1, 0], [3, 0], [10, 9], counts=[1.5, 2])


def test_holdout_comparison_on_grouped_rows_equals_one_row_per_customer(cdnow):
    """`compare_models` weighs grouped calibration rows by their counts (column `n`, what the
    Spark engine collects): the same totals, MAE, buckets and choice as one row per customer."""
    from engagement_box.value import selection

    x, t_x, T, _ = cdnow
    rng = np.random.default_rng(3)
    per_customer = pl.DataFrame(
        {
            "frequency": x,
            "recency_days": t_x * 7,
            "T_days": T * 7,
            "holdout_purchases": rng.poisson(0.4 * (x + 0.5)).astype(float),
            "holdout_days": np.full(x.shape[0], 273.0),
        }
    )
    expected = selection.compare_models(per_customer, time_unit="W")
    rows, k = as_spark_rows(*(per_customer[c].to_numpy() for c in per_customer.columns))
    grouped = pl.DataFrame(dict(zip(per_customer.columns, rows, strict=True))).with_columns(
        n=pl.Series(k.astype(np.int64))
    )
    assert grouped.height < per_customer.height / 2
    got = selection.compare_models(grouped, time_unit="W", fits=expected.fits)
    assert got.chosen == expected.chosen and got.reason == expected.reason
    for name, want in expected.validations.items():
        have = got.validations[name]
        assert have.n_customers == want.n_customers == per_customer.height
        for field in ("total_actual", "total_predicted", "mae"):
            assert getattr(have, field) == pytest.approx(getattr(want, field), rel=1e-12)
        assert have.by_frequency["customers"].to_list() == want.by_frequency["customers"].to_list()
        for column in ("actual_mean", "predicted_mean"):
            assert np.allclose(
                have.by_frequency[column].to_numpy(),
                want.by_frequency[column].to_numpy(),
                rtol=1e-12,
                equal_nan=True,
            )


def test_spend_correlation_on_grouped_rows_equals_one_row_per_customer(cdnow):
    """Pearson and Spearman (ties at their mean rank) from (x, m) rows with counts equal scipy's
    on the rows expanded, zero rows and m = 0 left out as before."""
    from engagement_box.value.scoring import frequency_spend_correlation

    x, _, _, m = cdnow
    m = np.round(m, 0)  # many ties in both columns
    expected = frequency_spend_correlation(x, m)
    rows, k = as_spark_rows(x, m)
    got = frequency_spend_correlation(*rows, counts=k)
    assert got.n_customers == expected.n_customers == int(((x > 0) & (m > 0)).sum())
    assert got.pearson == pytest.approx(expected.pearson, rel=1e-12)
    assert got.spearman == pytest.approx(expected.spearman, rel=1e-12)
    few = frequency_spend_correlation([1.0, 2.0], [5.0, 6.0], counts=[1, 1])
    assert few.pearson is None and few.n_customers == 2
