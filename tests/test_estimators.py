"""ES and PES against the smoothed meta-gradient computed independently, by 1-D quadrature.

The learned optimizer has one parameter, theta, the log step size of SGD on f(x) = a x² / 2 from
x0 = 1: x_t = x0 r^t with r = 1 − a·exp(theta). The meta-loss of a horizon of T = n·K steps is the
sum of f over its steps, run in n truncations of K steps. With an independent perturbation
eps_k ~ N(0, σ²) per truncation k, the smoothed meta-loss factorises:

    E[L] = a x0² / 2 · Σ_k A^(k−1) B,   A = E[r(theta + eps)^(2K)],   B = E[Σ_j≤K r(theta + eps)^(2j)],

so its gradient Σ_k ((k−1) A^(k−2) A' B + A^(k−1) B') needs only 1-D Gaussian expectations. PES
is unbiased for it; truncated ES only sees the last factor's dependence, Σ_k A^(k−1) B'.

Measured (40 horizons × 500 pairs, σ = 0.1, step size 0.1): ES over whole 20-step unrolls
−2.307 ± 0.024 (exact −2.3134); PES over 4 truncations of 5 −2.312 ± 0.020 (exact −2.3061);
truncated ES −1.207 ± 0.010, which is what it estimates (−1.2042), not the gradient.
"""

import numpy as np
import pytest
import tensorflow as tf

from l2l import estimators

A_CURVATURE, X0, SIGMA = 1.0, 1.0, 0.1
THETA = np.log(0.1)  # Step size 0.1: r = 0.9.


def _expectations(theta: float, power_fn):
  """E[φ(theta + eps)] and its theta-derivative by Gauss–Hermite quadrature (101 points)."""
  z, w = np.polynomial.hermite_e.hermegauss(101)
  w = w / w.sum()
  step = np.exp(theta + SIGMA * z)
  r = 1.0 - A_CURVATURE * step
  value, derivative = power_fn(r)
  return np.sum(w * value), np.sum(w * derivative * (-A_CURVATURE * step))


def _powers(exponents):
  """φ(r) = Σ r^e over ``exponents`` and dφ/dr."""
  return lambda r: (sum(r ** e for e in exponents), sum(e * r ** (e - 1) for e in exponents))


def smoothed_gradients(truncation: int, num_truncations: int) -> tuple[float, float]:
  """(gradient of the per-truncation-smoothed meta-loss, what truncated ES estimates)."""
  a, da = _expectations(THETA, _powers([2 * truncation]))
  b, db = _expectations(THETA, _powers(range(2, 2 * truncation + 1, 2)))
  scale = A_CURVATURE * X0 ** 2 / 2
  exact = scale * sum((k - 1) * a ** max(k - 2, 0) * da * b + a ** (k - 1) * db
                      for k in range(1, num_truncations + 1))
  truncated = scale * sum(a ** (k - 1) * db for k in range(1, num_truncations + 1))
  return exact, truncated


def _sgd_unroll(truncation: int, horizon: int):
  """Every particle runs SGD with step exp(theta_i) for ``truncation`` steps from its own x."""
  def unroll(thetas, state):
    x, t = state
    step = tf.exp(thetas[0])
    loss = tf.zeros_like(x)
    for _ in range(truncation):
      x = x - step * A_CURVATURE * x
      loss += A_CURVATURE * x ** 2 / 2
    t = t + truncation
    reset = t >= horizon
    return loss, (tf.where(reset, X0, x), tf.where(reset, 0, t)), reset
  return unroll


def _horizon_estimates(estimator, truncation, num_truncations, repeats):
  """The sum over one horizon's truncations of the estimates, for ``repeats`` horizons."""
  theta = [tf.constant(THETA, tf.float32)]
  particles = 2 * estimator.num_pairs
  start = (tf.fill([particles], X0), tf.zeros([particles], tf.int32))
  if isinstance(estimator, estimators.PES):
    state = estimator.init_state(start, theta)
  else:
    state = estimator.init_state(start)
  estimate = tf.function(estimator.estimate)
  sums = []
  for repeat in range(repeats):
    total = 0.0
    for k in range(num_truncations):
      _, (grad,), state = estimate(theta, state, tf.constant(repeat * 1000 + k))
      total += float(grad)
    sums.append(total)
  return np.mean(sums), np.std(sums) / np.sqrt(repeats)


def test_es_over_whole_unrolls_matches_the_smoothed_gradient():
  exact, _ = smoothed_gradients(20, 1)  # One truncation of the whole horizon.
  es = estimators.TruncatedES(_sgd_unroll(20, 20), num_pairs=500, sigma=SIGMA)
  mean, error = _horizon_estimates(es, 20, 1, 40)
  assert exact == pytest.approx(-2.3134, abs=1e-4)
  assert abs(mean - exact) < 3 * error and error < 0.05 * abs(exact)


def test_pes_is_unbiased_over_truncations_and_truncated_es_is_not():
  """4 truncations of 5 steps: the classic demonstration of the PES paper."""
  exact, truncated = smoothed_gradients(5, 4)
  assert exact == pytest.approx(-2.3061, abs=1e-4)
  assert truncated == pytest.approx(-1.2042, abs=1e-4)  # It misses nearly half the gradient.
  pes = estimators.PES(_sgd_unroll(5, 20), num_pairs=500, sigma=SIGMA)
  mean, error = _horizon_estimates(pes, 5, 4, 40)
  assert abs(mean - exact) < 3 * error and error < 0.1 * abs(exact)
  tes = estimators.TruncatedES(_sgd_unroll(5, 20), num_pairs=500, sigma=SIGMA)
  mean, error = _horizon_estimates(tes, 5, 4, 40)
  assert abs(mean - truncated) < 3 * error  # Truncated ES estimates the wrong thing...
  assert abs(mean - exact) > 10 * error  # ... far from the true smoothed gradient.


def test_noise_is_antithetic_reproducible_and_differs_across_seeds():
  theta = [tf.zeros([2, 3]), tf.zeros([])]
  noise = estimators.antithetic_noise(theta, 4, 0.5, tf.constant(7))
  assert [n.shape for n in noise] == [(4, 2, 3), (4,)]
  again = estimators.antithetic_noise(theta, 4, 0.5, tf.constant(7))
  other = estimators.antithetic_noise(theta, 4, 0.5, tf.constant(8))
  np.testing.assert_array_equal(noise[0], again[0])
  assert np.abs(noise[0] - other[0]).min() > 0
  particles = estimators.perturb(theta, noise)
  np.testing.assert_array_equal(particles[0][:4], -particles[0][4:])


def test_es_gradient_of_a_linear_loss_is_exact_with_one_pair_in_one_dimension():
  """For L(θ) = 3θ and eps = σ: (L⁺ − L⁻) eps / (2σ²) = 3 exactly."""
  noise = [tf.constant([0.1])]
  losses = tf.constant([3.0 * 0.1, -3.0 * 0.1])
  (grad,) = estimators.es_gradient(losses, noise, 0.1)
  np.testing.assert_allclose(grad, 3.0, rtol=1e-6)
