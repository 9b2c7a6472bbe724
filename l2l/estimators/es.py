"""Antithetic evolution strategies over a truncation of an unroll (or a whole unroll).

The meta-parameters ``theta`` are a list of tensors. An estimator evaluates ``2P`` particles at
once: ``P`` antithetic pairs ``theta + eps_i`` and ``theta - eps_i`` with ``eps_i ~ N(0, σ² I)``,
stacked on a leading particle axis, through one call of the user's ``unroll``:

    unroll(thetas, unroll_state) -> (losses [2P], unroll_state, reset [2P])

which runs every particle's own inner problem for one truncation (the particle axis leads every
leaf of ``unroll_state`` too) and returns each particle's meta-loss for it, and which particles'
tasks reached their horizon and were reset. The estimate of the gradient of the Gaussian-smoothed
meta-loss is

    g = 1 / (2 σ² P) · Σ_i (L_i⁺ − L_i⁻) · eps_i,

unbiased when every particle starts its truncation from a fresh task (a whole unroll, "full ES");
over truncations of a longer unroll it ignores how earlier perturbations shaped the state (the
bias ``PES`` removes). The noise is drawn with stateless ops from an explicit seed, so an estimate
is reproducible and can be re-run (a scheduled function may run twice) with the same result.
"""

from typing import Any, Callable, NamedTuple, Sequence

import tensorflow as tf

from l2l import tasks

Theta = list[tf.Tensor]
Unroll = Callable[[Theta, Any], tuple[tf.Tensor, Any, tf.Tensor]]


class EstimatorState(NamedTuple):
  """What an estimator carries between calls: every particle's unroll state, and (PES) the sum
  of each pair's perturbations since its task was reset, shaped like theta with a leading P.
  A named tuple, so that it passes through ``tf.function`` and ``tf.nest``."""
  unroll_state: Any
  accumulated: Theta | tuple = ()


def antithetic_noise(theta: Sequence[tf.Tensor], num_pairs: int, sigma: float,
                     seed: int | tf.Tensor) -> Theta:
  """``eps`` for ``num_pairs`` pairs: one ``[P, *leaf.shape]`` tensor per leaf, N(0, σ²), from
  an integer or ``int64 [2]`` stateless seed."""
  seed = tasks.as_seed(seed)
  return [sigma * tf.random.stateless_normal([num_pairs, *leaf.shape], seed=tasks.fold(seed, i),
                                             dtype=leaf.dtype)
          for i, leaf in enumerate(theta)]


def perturb(theta: Sequence[tf.Tensor], noise: Sequence[tf.Tensor]) -> Theta:
  """``[theta + eps_1 … theta + eps_P, theta − eps_1 … theta − eps_P]`` per leaf: [2P, ...]."""
  return [tf.concat([leaf + eps, leaf - eps], 0) for leaf, eps in zip(theta, noise)]


def es_gradient(losses: tf.Tensor, directions: Sequence[tf.Tensor], sigma: float) -> Theta:
  """``1 / (2σ²P) Σ_i (L_i⁺ − L_i⁻) d_i`` per leaf, from the 2P losses (pairs' + halves first)
  and the P directions (the noise for ES, its running sum for PES)."""
  positive, negative = tf.split(losses, 2)
  difference = positive - negative
  num_pairs = tf.cast(tf.shape(difference)[0], losses.dtype)
  return [tf.tensordot(tf.cast(difference, d.dtype), d, 1) / (2.0 * sigma ** 2 * num_pairs)
          for d in directions]


class Estimator:
  """What every estimator has: ``init_state`` around the problems' initial unroll state."""

  def init_state(self, unroll_state: Any, theta: Sequence[tf.Tensor] | None = None
                 ) -> EstimatorState:
    """The estimator's state around the initial unroll state (``theta``: for PES's shapes)."""
    del theta
    return EstimatorState(unroll_state)


class TruncatedES(Estimator):
  """Antithetic ES on one truncation per call: ``estimate(theta, state, seed)``.

  With an ``unroll`` that resets every task at the end of each call, this is ES over whole
  unrolls; over truncations of longer unrolls it is truncated ES (biased, see the module
  docstring).
  """

  def __init__(self, unroll: Unroll, num_pairs: int, sigma: float = 0.01):
    if num_pairs < 1 or not sigma > 0:
      raise ValueError(f"ES needs num_pairs >= 1 and sigma > 0, got {num_pairs} and {sigma}.")
    self.unroll, self.num_pairs, self.sigma = unroll, num_pairs, sigma


  def estimate(self, theta: Sequence[tf.Tensor], state: EstimatorState, seed: tf.Tensor
               ) -> tuple[tf.Tensor, Theta, EstimatorState]:
    """(mean meta-loss over the particles, gradient estimate, next state)."""
    noise = antithetic_noise(theta, self.num_pairs, self.sigma, seed)
    losses, unroll_state, _ = self.unroll(perturb(theta, noise), state.unroll_state)
    return (tf.reduce_mean(losses), es_gradient(losses, noise, self.sigma),
            EstimatorState(unroll_state))
