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
    # the per-customer path is numpy's too (no scipy.stats import in a run): scipy's figures
    from scipy.stats import pearsonr, spearmanr

    keep = (x > 0) & (m > 0)
    assert expected.pearson == pytest.approx(pearsonr(x[keep], m[keep]).statistic, rel=1e-12)
    assert expected.spearman == pytest.approx(spearmanr(x[keep], m[keep]).statistic, rel=1e-12)
    few = frequency_spend_correlation([1.0, 2.0], [5.0, 6.0], counts=[1, 1])
    assert few.pearson is None and few.n_customers == 2


def test_merge_rows_takes_rows_already_distinct_and_sorted_as_they_are(cdnow):
    """The three purchase fits of a window share one `unique_rows` grouping and get it as
    counts: merge_rows must give those rows back unchanged, and still sort and merge rows
    that only look close to it."""
    from engagement_box.value.grouping import _strictly_increasing

    x, t_x, T, _ = cdnow
    (ux, ut, uT), _, counts = unique_rows(x, t_x, T, return_inverse=False)
    (gx, gt, gT), k = merge_rows(ux, ut, uT, counts=counts)
    for a, b in ((ux, gx), (ut, gt), (uT, gT), (counts, k)):
        assert np.array_equal(a, b)
    assert _strictly_increasing([np.array([1.0, 1.0, 2.0]), np.array([2.0, 3.0, 0.0])])
    assert not _strictly_increasing([np.array([1.0, 1.0]), np.array([3.0, 2.0])])
    assert not _strictly_increasing([np.array([1.0, 1.0]), np.array([2.0, 2.0])])
    assert not _strictly_increasing([np.array([1.0, np.nan])])
    # sorted and distinct but one count is 0: that row is dropped
    (gx,), k = merge_rows(np.array([1.0, 2.0, 3.0]), counts=np.array([2, 0, 1]))
    assert gx.tolist() == [1.0, 3.0] and k.tolist() == [2, 1]
    # a repeated row among sorted rows is merged
    (gx,), k = merge_rows(np.array([1.0, 1.0, 3.0]), counts=np.array([2, 1, 1]))
    assert gx.tolist() == [1.0, 3.0] and k.tolist() == [3, 1]


def test_purchase_fits_grouped_once_equal_each_model_fitted_alone(cdnow):
    from engagement_box.value import marts

    x, t_x, T, _ = cdnow
    together = marts.purchase_fits(x, t_x, T, "W", 0.0)
    for name in purchase_models.MODEL_NAMES:
        alone = purchase_models.fit_model(name, x, t_x, T, time_unit="W")
        assert together[name].params == alone.params
        assert together[name].log_likelihood == alone.log_likelihood
        assert (together[name].n_customers, together[name].n_rows) == (
            alone.n_customers,
            alone.n_rows,
        )


@pytest.mark.parametrize("penalizer", [0.0, 0.01])
def test_fits_without_lifetimes_refinement_equal_the_refined_ones(cdnow, monkeypatch, penalizer):
    """BG/NBD and Gamma-Gamma skip lifetimes' final BFGS when it would stop at its start: the
    parameters, likelihood and standard errors must be exactly those of lifetimes' run. (A
    penalizer of 0.01 pushes CDNOW's Gamma-Gamma q below 1, so Gamma-Gamma keeps 0.)"""
    x, t_x, T, m = cdnow
    fast = fitting.fit_bgnbd(x, t_x, T, time_unit="W", penalizer=penalizer)
    fast_gg = fitting.fit_gamma_gamma(x, m)
    skipped = []
    original = fitting._confirmed

    def record(*args):
        skipped.append(original(*args) is not None)
        return None  # run lifetimes' refinement every time

    monkeypatch.setattr(fitting, "_confirmed", record)
    refined = fitting.fit_bgnbd(x, t_x, T, time_unit="W", penalizer=penalizer)
    refined_gg = fitting.fit_gamma_gamma(x, m)
    assert skipped == [True, True]
    for a, b in ((fast, refined), (fast_gg, refined_gg)):
        assert a.params == b.params
        assert a.log_likelihood == b.log_likelihood
        assert a.standard_errors == b.standard_errors


def test_model_fit_imports_neither_lifetimes_nor_autograd_nor_scipy_stats(cdnow, tmp_path):
    """Importing them costs 0.25 CPU-s in a run (scipy.stats, which lifetimes and autograd's
    scipy import; 0.5-0.7 in a bare process): the fits need them only when a shortcut fails,
    the spend correlation not at all."""
    import subprocess
    import sys

    np.save(tmp_path / "cdnow.npy", np.vstack(cdnow))
    code = (
        "import sys, numpy as np\n"
        "from engagement_box.value import marts, fitting, scoring\n"
        f"x, t, T, m = np.load({str(tmp_path / 'cdnow.npy')!r})\n"
        "fits = marts.purchase_fits(x, t, T, 'W', 0.0)\n"
        "gg = fitting.fit_gamma_gamma(x, m)\n"
        "assert all(f.converged for f in fits.values()) and gg.converged\n"
        "assert scoring.frequency_spend_correlation(x, m).pearson is not None\n"
        "print(sorted(k for k in ('lifetimes', 'autograd.scipy', 'scipy.stats') if k in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fits_run_with_blas_on_one_thread(cdnow, monkeypatch):
    """OpenBLAS's spinning threads doubled the fits' CPU (2.5 against 4.1-4.7 CPU-s on the 1M
    inputs): every fit runs its optimiser with one BLAS thread, and the limit ends with it."""
    from threadpoolctl import threadpool_info

    from engagement_box.value import mle

    def blas_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    seen = []

    def spy(module, name):
        original = getattr(module, name)

        def wrapped(*args, **kwargs):
            seen.append((name, blas_threads()))
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)

    spy(fitting, "_newton")
    spy(mle, "_newton_polish")
    before = blas_threads()
    x, t_x, T, m = cdnow
    fitting.fit_bgnbd(x, t_x, T, time_unit="W")
    fitting.fit_gamma_gamma(x, m)
    purchase_models.fit_model("pareto_nbd", x, t_x, T, time_unit="W")
    # each of BG/NBD and Gamma-Gamma: Newton, then its last polish from a grid point
    assert [name for name, _ in seen] == ["_newton"] * 4 + ["_newton_polish"]
    assert all(threads == {1} for _, threads in seen)
    assert blas_threads() == before
