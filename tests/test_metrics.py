"""Metrics: tau, oscillation frequency, power-law fits, the contrastive function and its Hessian."""

import numpy as np
import pytest

from spicelearn import runfile
from spicelearn.continuous.ode import OdeModel
from spicelearn.continuous.quasistatic import QuasistaticModel
from spicelearn.errors import ConfigError
from spicelearn.analysis.metrics import contrastive, hessian_top_eigenvalues, oscillation_frequency, power_law_fit, tau
from spicelearn.model.task import load_task


@pytest.fixture(scope="module")
def case(d64):
    bound = load_task("random:10,3,0", d64).bind(d64)
    g = np.random.default_rng(0).uniform(0.5, 1.5, d64.n_edges)
    return d64, bound, g


def test_tau_is_the_runfile_tau():
    assert tau is runfile.tau
    err = np.r_[np.ones(5), 1e-4 * np.ones(3), 1.0, 1e-4 * np.ones(20)]
    assert tau(err, 1.0, threshold=1e-3, window=10) == 9
    assert tau(err, 1.0, threshold=1e-3, window=3) == 5
    assert np.isnan(tau(err, 1.0, threshold=1e-5))
    for args, kwargs, message in (((err, np.nan), {}, "`mse0` must be finite"),
                                  ((err, -1.0), {}, "`mse0` must be >= 0"),
                                  ((err, "x"), {}, "`mse0` must be a number"),
                                  (("abc", 1.0), {}, "`errors` must be a 1-d array of numbers"),
                                  ((err[None], 1.0), {}, "`errors` must be a 1-d array"),
                                  ((err, 1.0), {"threshold": None}, "`threshold` must be a number"),
                                  ((err, 1.0), {"window": np.nan}, "`window` must be an integer >= 1")):
        with pytest.raises(ConfigError, match=message):
            tau(*args, **kwargs)
    with pytest.raises(ConfigError, match="`ds` must be a run file"):
        runfile.summary({"mse": err})


def test_oscillation_frequency_of_a_damped_oscillation():
    t = np.arange(1, 3001.0)
    f0 = 0.013  # cycles per step
    err = np.exp(-t / 800) * (1.05 + np.cos(2 * np.pi * f0 * t))
    assert oscillation_frequency(err) == pytest.approx(f0, rel=0.01)
    assert oscillation_frequency(err, time=t / 4.0) == pytest.approx(4 * f0, rel=0.01)
    assert np.isnan(oscillation_frequency(np.exp(-t / 300)))  # overdamped: no peaks


def test_oscillation_frequency_bad_input():
    with pytest.raises(ConfigError, match="finite positive"):
        oscillation_frequency([1.0, -1.0, 0.5])
    with pytest.raises(ConfigError, match="one time per error"):
        oscillation_frequency([1.0, 0.5, 0.2], time=[0, 1])


def test_power_law_fit_recovers_exponent_and_uncertainty():
    x = np.logspace(-3, 0, 12)
    rng = np.random.default_rng(1)
    y = 3.0 * x ** -0.5 * np.exp(0.05 * rng.normal(size=x.size))
    fit = power_law_fit(x, y)
    assert abs(fit.exponent + 0.5) < 3 * fit.stderr + 1e-12
    assert 0.0 < fit.stderr < 0.05
    exact = power_law_fit(x, 2 * x ** 1.5)
    assert exact.exponent == pytest.approx(1.5, abs=1e-12) and exact.prefactor == pytest.approx(2.0)
    with pytest.raises(ConfigError, match=">= 2 finite positive points"):
        power_law_fit([1.0], [2.0])


@pytest.mark.parametrize("eta", [0.5, 1e-3])
def test_contrastive_value_is_power_difference(case, eta):
    net, bound, g = case
    vf, vc = OdeModel(net, bound, eta=eta).equilibrium(g)
    B = net.incidence
    direct = (g @ (B @ vc) ** 2 - g @ (B @ vf) ** 2) / (2 * eta)
    c = contrastive(net, bound, g, eta, hessian=False)
    assert c.value == pytest.approx(direct, rel=1e-9 if eta > 0.1 else 1e-6)
    np.testing.assert_allclose(c.rule_gradient, ((B @ vc) ** 2 - (B @ vf) ** 2) / (2 * eta),
                               atol=1e-12 / eta)


@pytest.mark.parametrize("eta", [0.5, 1e-3])
def test_contrastive_gradient_matches_finite_difference(case, eta):
    net, bound, g = case
    c = contrastive(net, bound, g, eta, hessian=False)
    h = 1e-5
    fd = np.array([(contrastive(net, bound, g + h * e, eta, False).value
                    - contrastive(net, bound, g - h * e, eta, False).value) / (2 * h) for e in np.eye(g.size)])
    assert np.max(np.abs(fd - c.gradient)) < 1e-6 * np.max(np.abs(c.gradient))


@pytest.mark.parametrize("eta", [0.5, 1e-3])
def test_contrastive_hessian_matches_finite_difference_of_gradient(case, eta):
    net, bound, g = case
    H = contrastive(net, bound, g, eta).hessian
    h = 1e-5
    fd = np.array([(contrastive(net, bound, g + h * e, eta, False).gradient
                    - contrastive(net, bound, g - h * e, eta, False).gradient) / (2 * h) for e in np.eye(g.size)])
    assert np.max(np.abs(fd - H)) < 1e-6 * np.max(np.abs(H))
    np.testing.assert_array_equal(H, H.T)


def test_contrastive_vanishes_with_zero_gradient_at_a_solution(d64):
    # a task whose targets are the free equilibrium: C = 0, dC/dg = 0, Hessian PSD of rank <= M_T
    bound0 = load_task("random:5,3,2", d64).bind(d64)
    g = np.random.default_rng(2).uniform(0.5, 1.5, d64.n_edges)
    vf = OdeModel(d64, bound0).equilibrium_free(g)
    tgt = bound0.target_index
    solved = load_task({"sources": dict(bound0.task.sources),
                        "targets": {d64.nodes[i]: float(vf[i]) for i in tgt}}, d64).bind(d64)
    c = contrastive(d64, solved, g)
    assert abs(c.value) < 1e-18 and np.max(np.abs(c.gradient)) < 1e-14
    lam = np.linalg.eigvalsh(c.hessian)
    assert lam.min() > -1e-12 * lam.max()
    assert np.sum(lam > 1e-9 * lam.max()) <= 3


def test_quasistatic_rate_is_minus_rule_gradient(case):
    net, bound, g = case
    q = QuasistaticModel(net, bound)
    np.testing.assert_allclose(q.rate(g), -contrastive(net, bound, g, hessian=False).rule_gradient,
                               rtol=1e-8, atol=1e-10)


def test_hessian_top_eigenvalues(case):
    net, bound, g = case
    lam = hessian_top_eigenvalues(net, bound, g, k=4)
    full = np.linalg.eigvalsh(contrastive(net, bound, g).hessian)
    np.testing.assert_allclose(lam, full[::-1][:4])
    assert np.all(np.diff(lam) <= 0)
    with pytest.raises(ConfigError, match="`k` must be an integer >= 1"):
        hessian_top_eigenvalues(net, bound, g, k=0)
