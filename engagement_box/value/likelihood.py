"""Closed-form negative log-likelihoods with gradients (BG/NBD, Gamma-Gamma) and a Newton polish.

The same objectives as lifetimes' fitters, written so that scipy can use exact gradients: the
fits in `engagement_box.value.fitting` use them for the warm start and the final polish.
"""

import math
from typing import Any

import numpy as np
from scipy.special import digamma, expit, gammaln, polygamma

from engagement_box.value.grouping import _distinct


def _bgnbd_objective(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray, penalizer: float
) -> Any:
    """lifetimes' BG/NBD `_negative_log_likelihood` (log parameters, lifetimes' scaled time) with
    the terms in x only summed per distinct x and the x = 0 rows reduced to their A_3 term."""
    w = np.asarray(weights, dtype=float)
    wsum = float(w.sum())
    ux, inv = _distinct(x)
    wx = np.bincount(inv, weights=w)
    zero = x == 0
    T0, w0 = T[zero], w[zero]
    xp, tp, Tp, wp = x[~zero], t_x[~zero], T[~zero], w[~zero]

    def nll(log_params: Any) -> Any:
        # autograd (traced by lifetimes' fallback and the standard errors' fallback); imported
        # here: the closed-form `derivatives` below need none of it (it imports scipy.stats, 0.25 s)
        import autograd.numpy as anp
        from autograd.scipy.special import gammaln as agammaln

        params = anp.exp(log_params)
        r, alpha, a, b = params[0], params[1], params[2], params[3]
        by_x = anp.sum(wx * (agammaln(r + ux) + agammaln(b + ux) - agammaln(a + b + ux))) + wsum * (
            -agammaln(r) + r * anp.log(alpha) + agammaln(a + b) - agammaln(b)
        )
        no_repeat = -r * anp.sum(w0 * anp.log(alpha + T0))
        a3 = -(r + xp) * anp.log(alpha + Tp)
        a4 = anp.log(a) - anp.log(b + xp - 1) - (r + xp) * anp.log(alpha + tp)
        repeat = anp.sum(wp * anp.logaddexp(a3, a4))
        return -(by_x + no_repeat + repeat) / wsum + penalizer * anp.sum(params**2)

    # Closed-form value, gradient and Hessian of `nll` for the Newton polish. Terms in T or t_x
    # alone are summed per distinct value (logs per distinct T / t_x, gathered per row), terms in
    # x alone per distinct x; only the logaddexp mixture is evaluated per row.
    uT0, iT0 = _distinct(T0)
    w0T = np.bincount(iT0, weights=w0, minlength=uT0.shape[0])
    uTp, iTp = _distinct(Tp)
    utp, itp = _distinct(tp)
    uxp, ixp = _distinct(xp)
    wpT = np.bincount(iTp, weights=wp, minlength=uTp.shape[0])
    wpxT = np.bincount(iTp, weights=wp * xp, minlength=uTp.shape[0])
    n_x = uxp.shape[0]

    last: dict[str, Any] = {}  # first-order terms at the last point, reused by its Hessian

    def first_order(log_params: Any) -> dict[str, Any]:
        key = tuple(np.asarray(log_params, dtype=float).ravel())
        if last.get("key") == key:
            return last
        r, alpha, a, b = np.exp(np.asarray(key))
        ab = a + b
        log_alpha, log_a = math.log(alpha), math.log(a)
        log_T0 = np.log(alpha + uT0)
        log_Tu, log_tu = np.log(alpha + uTp), np.log(alpha + utp)
        inv_Tu, inv_tu = 1.0 / (alpha + uTp), 1.0 / (alpha + utp)
        inv_bx = 1.0 / (b + uxp - 1)  # per distinct repeat x
        rw_T = r * wpT + wpxT  # sum of w (r + x) per distinct T
        # d = A4 - A3 per row; mixture term log(e^A3 + e^A4) = A3 + log(1 + e^d)
        L = log_Tu[iTp]
        L -= log_tu[itp]
        rx = xp + r
        d = rx * L
        d += (log_a + np.log(inv_bx))[ixp]
        value = float(wx @ (gammaln(r + ux) + gammaln(b + ux) - gammaln(ab + ux))) + wsum * (
            -gammaln(r) + r * log_alpha + gammaln(ab) - gammaln(b)
        )
        value += -r * float(w0T @ log_T0) - float(rw_T @ log_Tu) + float(wp @ np.logaddexp(0.0, d))
        p4 = expit(d)  # weight of A4 in the mixture
        wp4 = wp * p4
        IT, It = inv_Tu[iTp], inv_tu[itp]
        dI = IT - It
        M = dI * rx  # dA4/dalpha - dA3/dalpha
        s4x = np.bincount(ixp, weights=wp4, minlength=n_x)
        sum_wp4 = float(s4x.sum())
        dg_abx = float(wx @ digamma(ab + ux))
        sum_w0_inv = float(w0T @ (1.0 / (alpha + uT0)))
        g = np.array(
            [
                float(wx @ digamma(r + ux))
                + wsum * (log_alpha - digamma(r))
                - float(w0T @ log_T0)
                - float(wpT @ log_Tu)
                + float(wp4 @ L),
                wsum * r / alpha - r * sum_w0_inv - float(rw_T @ inv_Tu) + float(wp4 @ M),
                -dg_abx + wsum * digamma(ab) + sum_wp4 / a,
                float(wx @ digamma(b + ux))
                - dg_abx
                + wsum * (digamma(ab) - digamma(b))
                - float(s4x @ inv_bx),
            ]
        )
        params = np.array([r, alpha, a, b])
        f = -value / wsum + penalizer * float(params @ params)
        grad_nat = -g / wsum + 2 * penalizer * params
        last.clear()
        last.update(locals())
        last["key"] = key
        return last

    def derivatives(log_params: Any, hessian: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
        st = first_order(log_params)
        params, grad_nat = st["params"], st["grad_nat"]
        grad = grad_nat * params
        if not hessian:
            return st["f"], grad, None
        r, alpha, a, b, ab = st["r"], st["alpha"], st["a"], st["b"], st["ab"]
        wp4, p4, L, M, inv_bx, s4x = st["wp4"], st["p4"], st["L"], st["M"], st["inv_bx"], st["s4x"]
        sum_wp4, inv_Tu = st["sum_wp4"], st["inv_Tu"]
        # Mixture Hessian: p3 H3 + p4 H4 + p3 p4 (dA3 - dA4)(dA3 - dA4)^T with
        # dA3 - dA4 = (-L, -M, -1/a, 1/(b+x-1)).
        H = np.zeros((4, 4))
        tg_abx = float(wx @ polygamma(1, ab + ux))
        H[0, 0] = float(wx @ polygamma(1, r + ux)) - wsum * polygamma(1, r)
        H[0, 1] = wsum / alpha - st["sum_w0_inv"] - float(wpT @ inv_Tu) + float(wp4 @ st["dI"])
        # rx (1/(alpha+t)^2 - 1/(alpha+T)^2) = -M (1/(alpha+T) + 1/(alpha+t))
        dI2 = st["IT"] + st["It"]
        dI2 *= M
        H[1, 1] = (
            -wsum * r / alpha**2
            + r * float(w0T @ (1.0 / (alpha + uT0)) ** 2)
            + float(st["rw_T"] @ inv_Tu**2)
            - float(wp4 @ dI2)
        )
        H[2, 2] = -tg_abx + wsum * polygamma(1, ab) - sum_wp4 / a**2
        H[2, 3] = -tg_abx + wsum * polygamma(1, ab)
        H[3, 3] = (
            float(wx @ polygamma(1, b + ux))
            - tg_abx
            + wsum * (polygamma(1, ab) - polygamma(1, b))
            + float(s4x @ inv_bx**2)
        )
        c = wp4 * (1.0 - p4)
        cL, cM = c * L, c * M
        cx = np.bincount(ixp, weights=c, minlength=n_x)
        cLx = np.bincount(ixp, weights=cL, minlength=n_x)
        cMx = np.bincount(ixp, weights=cM, minlength=n_x)
        sc, scL, scM = float(cx.sum()), float(cLx.sum()), float(cMx.sum())
        outer = np.array(
            [
                [float(cL @ L), float(cL @ M), scL / a, -float(cLx @ inv_bx)],
                [0.0, float(cM @ M), scM / a, -float(cMx @ inv_bx)],
                [0.0, 0.0, sc / a**2, -float(cx @ inv_bx) / a],
                [0.0, 0.0, 0.0, float(cx @ inv_bx**2)],
            ]
        )
        H += outer
        H = np.triu(H) + np.triu(H, 1).T
        H_nat = -H / wsum + 2 * penalizer * np.eye(4)
        return st["f"], grad, H_nat * np.outer(params, params) + np.diag(grad_nat * params)

    nll.derivatives = derivatives  # type: ignore[attr-defined]
    return nll


def _gamma_gamma_objective(
    x: np.ndarray, m: np.ndarray, weights: np.ndarray, penalizer: float
) -> Any:
    """lifetimes' Gamma-Gamma `_negative_log_likelihood` (log parameters) with the terms in x only
    summed per distinct x and the log m terms as two precomputed sums."""
    w = np.asarray(weights, dtype=float)
    wsum = float(w.sum())
    ux, inv = _distinct(x)
    wx = np.bincount(inv, weights=w)
    ux_log_ux = ux * np.log(ux)
    log_m = np.log(m)
    sum_x_log_m = float(np.sum(w * x * log_m))
    sum_log_m = float(np.sum(w * log_m))
    wxm = w * x

    def nll(log_params: Any) -> Any:
        import autograd.numpy as anp  # see `_bgnbd_objective`
        from autograd.scipy.special import gammaln as agammaln

        params = anp.exp(log_params)
        p, q, v = params[0], params[1], params[2]
        by_x = anp.sum(wx * (agammaln(p * ux + q) - agammaln(p * ux) + p * ux_log_ux))
        const = wsum * (q * anp.log(v) - agammaln(q)) + p * sum_x_log_m - sum_log_m
        log_xm_v = anp.log(x * m + v)
        rows = p * anp.sum(wxm * log_xm_v) + q * anp.sum(w * log_xm_v)
        return -(by_x + const - rows) / wsum + penalizer * anp.sum(params**2)

    xm = x * m

    def derivatives(log_params: Any, hessian: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
        # Closed form of nll's value, gradient and Hessian (see `_bgnbd_objective`).
        p, q, v = np.exp(np.asarray(log_params, dtype=float))
        pxq, px = p * ux + q, p * ux
        log_xm_v = np.log(xm + v)
        inv = 1.0 / (xm + v)
        s_wxm_log, s_w_log = float(wxm @ log_xm_v), float(w @ log_xm_v)
        s_wxm_inv, s_w_inv = float(wxm @ inv), float(w @ inv)
        value = (
            float(wx @ (gammaln(pxq) - gammaln(px) + p * ux_log_ux))
            + wsum * (q * math.log(v) - gammaln(q))
            + p * sum_x_log_m
            - sum_log_m
            - p * s_wxm_log
            - q * s_w_log
        )
        dg_pxq = digamma(pxq)
        g = np.array(
            [
                float(wx @ (ux * (dg_pxq - digamma(px)) + ux_log_ux)) + sum_x_log_m - s_wxm_log,
                float(wx @ dg_pxq) + wsum * (math.log(v) - digamma(q)) - s_w_log,
                wsum * q / v - p * s_wxm_inv - q * s_w_inv,
            ]
        )
        params = np.array([p, q, v])
        f = -value / wsum + penalizer * float(params @ params)
        grad_nat = -g / wsum + 2 * penalizer * params
        grad = grad_nat * params
        if not hessian:
            return f, grad, None
        tg_pxq = polygamma(1, pxq)
        H = np.empty((3, 3))
        H[0, 0] = float(wx @ (ux**2 * (tg_pxq - polygamma(1, px))))
        H[0, 1] = H[1, 0] = float(wx @ (ux * tg_pxq))
        H[0, 2] = H[2, 0] = -s_wxm_inv
        H[1, 1] = float(wx @ tg_pxq) - wsum * polygamma(1, q)
        H[1, 2] = H[2, 1] = wsum / v - s_w_inv
        inv2 = inv * inv
        H[2, 2] = -wsum * q / v**2 + p * float(wxm @ inv2) + q * float(w @ inv2)
        H_nat = -H / wsum + 2 * penalizer * np.eye(3)
        return f, grad, H_nat * np.outer(params, params) + np.diag(grad_nat * params)

    nll.derivatives = derivatives  # type: ignore[attr-defined]
    nll.cheap_hessian = True  # type: ignore[attr-defined]
    return nll


def _newton(nll: Any, start: np.ndarray, max_hessians: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Minimise `nll` from a close start; returns (optimum, exact Hessian at the optimum).

    Newton steps that keep the Hessian while it works (a gradient costs a fraction of a Hessian):
    with a start from a subsample fit each step gains about two digits. Step halving keeps every
    step downhill. Raises np.linalg.LinAlgError when the Hessian is not positive definite or no
    step decreases the objective.
    """
    derivatives = getattr(nll, "derivatives", None)
    if derivatives is not None:  # closed form: no autograd graph over the rows

        def value_grad(lp: np.ndarray) -> tuple[float, np.ndarray]:
            f, g, _ = derivatives(lp, False)
            return f, g

        def hess(lp: np.ndarray) -> np.ndarray:
            return derivatives(lp, True)[2]

    else:
        from autograd import hessian, value_and_grad

        value_grad, hess = value_and_grad(nll), hessian(nll)
    # A closed-form Hessian that costs about one gradient: refresh it after every step (full
    # Newton, quadratic convergence) instead of reusing it.
    fresh_hessian = bool(getattr(nll, "cheap_hessian", False))
    if fresh_hessian:
        max_hessians = max(max_hessians, 12)
    lp = np.asarray(start, dtype=float).copy()
    f, g = value_grad(lp)
    for _ in range(max_hessians):
        H = np.asarray(hess(lp))
        np.linalg.cholesky(H)  # LinAlgError unless positive definite
        H_inv = np.linalg.inv(H)
        previous = math.inf
        for _ in range(12):
            step = -H_inv @ g
            size = float(np.max(np.abs(step)))
            if size < 1e-11:  # converged: the objective no longer resolves the step
                return lp + step, np.asarray(hess(lp + step))
            if size > 0.25 * previous:  # slow: at rounding level we are done, else refresh H
                if size < 1e-8:
                    return lp, np.asarray(hess(lp))
                break
            previous = size
            t = 1.0
            while size > 1e-6:  # tiny steps are below what f resolves: take them as they are
                new = lp + t * step
                fn, gn = value_grad(new)
                if np.isfinite(fn) and fn <= f + 1e-4 * t * float(g @ step) + 1e-13 * abs(f):
                    break
                t /= 2
                if t < 1e-6:
                    raise np.linalg.LinAlgError("no Newton step decreases the objective")
            else:
                new = lp + step
                fn, gn = value_grad(new)
            lp, f, g = new, fn, gn
            if fresh_hessian:
                break
    raise np.linalg.LinAlgError("Newton did not converge")
