"""Checks of reference.py's precise rules (run: python models/train/test_reference.py, or with pytest).

Small hand-made cases the Rust port can copy: local maxima / MULTIMODAL, inverse CDF, draw dropping, BAD_INPUT,
OUT_OF_RANGE, and the mass Jacobian / density normalisation against a Gaussian flow with a known answer.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402


def gaussian_model(transform="linear"):
    if transform == "linear":
        grid = np.linspace(0, 14, 250)
        mean = np.array([4700, 2.5, 0.0, 0.0, 0.2, 5.0])
        std = np.array([200, 0.3, 0.2, 0.1, 0.1, 3.0])
    else:
        grid = np.linspace(0, 3, 250)
        mean = np.array([4700, 2.5, 0.0, 0.0, 0.2, 0.1])
        std = np.array([200, 0.3, 0.2, 0.1, 0.1, 0.07])
    return R.Model("t", mean, std, mean[:5] - 3 * std[:5], mean[:5] + 3 * std[:5], transform, grid, 1.0, 0.0, 50)


def std_normal_log_prob(x):
    return -3 * math.log(2 * math.pi) - 0.5 * np.sum(x * x, axis=1)


def test_local_maxima_rule():
    assert list(R.local_maxima(np.array([0.0, 1, 2, 1, 0]))) == [2]
    assert list(R.local_maxima(np.array([3.0, 2, 1, 2, 3]))) == [0, 4]          # endpoints count
    assert list(R.local_maxima(np.array([1.0, 2, 2, 1]))) == [1]                # flat top: left end only
    assert list(R.local_maxima(np.array([0.0, 0, 0]))) == []                     # zeros are never maxima
    assert list(R.local_maxima(np.array([0.0, 1, 1, 1]))) == [1]                # plateau to the right edge
    assert R.is_multimodal(np.array([0.0, 4, 1, 2, 0]))                          # 2 >= 0.5 * 4, deep dip
    assert not R.is_multimodal(np.array([0.0, 4, 1, 1.9, 0]))                    # 1.9 < 2
    assert not R.is_multimodal(np.array([0.0, 1, 2, 3, 2, 1]))
    assert not R.is_multimodal(np.array([0.0, 4, 3.99, 4, 0]))                   # ripple on a flat top
    assert not R.is_multimodal(np.array([0.0, 4, 2.8, 3, 0]))                    # dip to 2.8 > 0.9 * 3 = 2.7
    assert R.is_multimodal(np.array([0.0, 4, 2.7, 3, 0]))                        # dip to 2.7 <= 2.7
    assert R.is_multimodal(np.array([3.0, 1, 4, 0]))                             # endpoint mode
    assert R.is_multimodal(np.array([0.0, 4, 1, 3, 3.5, 2, 0]))                  # second peak at index 4


def test_inverse_cdf():
    g = np.array([0.0, 1, 2, 3])
    c = np.array([0.1, 0.5, 0.5, 1.0])
    assert R.inverse_cdf(c, g, 0.0) == 0.0
    assert R.inverse_cdf(c, g, 0.05) == 0.0                                      # below c_0 -> grid[0]
    assert abs(R.inverse_cdf(c, g, 0.3) - 0.5) < 1e-12
    assert R.inverse_cdf(c, g, 0.5) == 1.0                                       # first index with c >= t
    assert abs(R.inverse_cdf(c, g, 0.75) - 2.5) < 1e-12
    assert R.inverse_cdf(c, g, 1.0) == 3.0


def test_clamped_bounds_stop_at_the_edge_of_the_posterior():
    m = gaussian_model()
    m.grid = np.arange(11.0)
    # mode at 4 holds 10/34 = 0.29 < 0.34 below it: the lower bound is where the posterior starts (3), not grid[0]
    r = R.summarize(m, np.array([[0.0, 0, 0, 0, 10, 8, 6, 4, 3, 2, 1]]))
    assert r.value == 4.0 and abs(r.e_n + 1.0) < 1e-6, (r.value, r.e_n)
    # mirrored: the mode is the last non-zero point (CDF 1 there), so the upper bound is the mode itself
    r = R.summarize(m, np.array([[1.0, 2, 3, 4, 6, 8, 10, 0, 0, 0, 0]]))
    assert r.value == 6.0 and r.e_p == 0.0, (r.value, r.e_p)
    # an age posterior that really reaches 0 keeps its lower bound at 0
    r = R.summarize(m, np.array([[5.0, 10, 8, 6, 4, 3, 2, 1, 1, 1, 1]]))
    assert r.value == 1.0 and r.e_n == -1.0, (r.value, r.e_n)


def test_gaussian_age_posterior():
    m = gaussian_model()
    x = m.mean[:5].copy()
    e = m.std[:5] * 1e-6
    draws = np.repeat(x[None], 50, axis=0)
    r = R.posterior(m, x, e, draws, std_normal_log_prob)
    # the conditional of a standard normal is N(mean_t, std_t): ML at the grid point nearest 5 Gyr
    assert abs(r.value - m.grid[np.argmin(np.abs(m.grid - 5.0))]) < 1e-12
    # truncated to [0, 14]: c0 = 0.4756, so +-0.34 in CDF is +-0.928 sigma = +-2.78 Gyr (+- half a grid step)
    assert abs(r.e_p - 2.78) < 0.06 and abs(r.e_n + 2.78) < 0.06, (r.e_p, r.e_n)
    assert r.bitmask == 0
    # density: the 5-D marginal at the mean, integrated over the (almost whole) target range
    expect = (2 * math.pi) ** -2.5 * (0.5 * (math.erf((14 - 5) / 3 / math.sqrt(2)) - math.erf(-5 / 3 / math.sqrt(2))))
    assert abs(r.training_density / expect - 1) < 0.01, (r.training_density, expect)


def test_mass_jacobian():
    m = gaussian_model("log10")
    x = m.mean[:5].copy()
    draws = np.repeat(x[None], 50, axis=0)
    r = R.posterior(m, x, m.std[:5] * 1e-6, draws, std_normal_log_prob)
    # p(M) ~ N(log10 M; 0.1, 0.07) / (M ln10): its mode is below 10^0.1
    mode = 10 ** (0.1 - 0.07 ** 2 * math.log(10))
    assert abs(r.value - mode) < 0.013, (r.value, mode)
    expect = (2 * math.pi) ** -2.5  # the whole log10 M Gaussian lies inside 0 < M <= 3
    assert abs(r.training_density / expect - 1) < 0.01, (r.training_density, expect)


def test_drop_and_flags():
    m = gaussian_model()
    x = m.mean[:5].copy()
    draws = np.repeat(x[None], 50, axis=0)

    def lp_nan_some(rows):
        out = std_normal_log_prob(rows)
        out[:250] = np.nan  # the first draw's whole grid is NaN -> p = 0 -> sum 0 -> dropped
        return out
    r = R.posterior(m, x, m.std[:5], draws, lp_nan_some)
    assert r.n_kept == 49
    m.threshold = 1e-30
    r = R.posterior(m, x, m.std[:5], draws, lambda rows: np.full(len(rows), -np.inf))
    assert r.value is None and r.training_density == 0.0 and r.bitmask & R.LOW_DENSITY
    assert R.posterior(m, x, [1, 1, 1, 1, 0], draws, std_normal_log_prob).bitmask == R.BAD_INPUT
    assert R.posterior(m, [np.nan, 1, 1, 1, 1], [1] * 5, draws, std_normal_log_prob).bitmask == R.BAD_INPUT
    y = x.copy()
    y[0] = m.train_max[0] + 1
    assert R.posterior(m, y, m.std[:5], draws, std_normal_log_prob).bitmask & R.OUT_OF_RANGE


if __name__ == "__main__":
    n = 0
    for k, f in list(globals().items()):
        if k.startswith("test_") and callable(f):
            f()
            n += 1
    print(f"{n} passed, 0 failed")
