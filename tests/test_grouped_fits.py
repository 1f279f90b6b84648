"""Fits on grouped rows with counts (what the Spark engine collects) equal the per-customer fits.

The rows are given shuffled and with some rows split in two, as a distributed group-by may
return them; the fit must not depend on that."""

import numpy as np
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
