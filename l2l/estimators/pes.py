"""Persistent evolution strategies (Vicol, Metz, Sohl-Dickstein, ICML 2021).

Like truncated ES, each call runs one truncation of every particle's unroll with a fresh
antithetic perturbation, but the estimate weighs the pair's loss difference by the *sum* of all
perturbations the pair has used since its task was reset: the loss of this truncation depends on
every earlier perturbation through the unroll's state, and summing them makes the estimate
unbiased for the gradient of the meta-loss smoothed with an independent perturbation per
truncation — with memory constant in the horizon, and no backpropagation through the unroll.
"""

from typing import Any, Sequence

import tensorflow as tf

from l2l.estimators.es import EstimatorState, Theta, TruncatedES, antithetic_noise, es_gradient
from l2l.estimators.es import perturb


class PES(TruncatedES):
  """``estimate(theta, state, seed) -> (meta_loss, grads, state)``; the accumulated
  perturbations of a pair restart at zero when its task is reset."""

  def init_state(self, unroll_state: Any, theta: Sequence[tf.Tensor] | None = None
                 ) -> EstimatorState:
    """Needs ``theta`` for the shapes of the accumulators."""
    if theta is None:
      raise ValueError("PES.init_state needs theta, for the shapes of its accumulators.")
    return EstimatorState(unroll_state,
                          [tf.zeros([self.num_pairs, *leaf.shape], leaf.dtype) for leaf in theta])

  def estimate(self, theta: Sequence[tf.Tensor], state: EstimatorState, seed: tf.Tensor
               ) -> tuple[tf.Tensor, Theta, EstimatorState]:
    noise = antithetic_noise(theta, self.num_pairs, self.sigma, seed)
    accumulated = [a + eps for a, eps in zip(state.accumulated, noise)]
    losses, unroll_state, reset = self.unroll(perturb(theta, noise), state.unroll_state)
    grads = es_gradient(losses, accumulated, self.sigma)
    keep = 1.0 - tf.cast(reset[:self.num_pairs], theta[0].dtype)  # Pairs share their task.
    accumulated = [a * tf.reshape(keep, [-1] + [1] * (a.shape.rank - 1)) for a in accumulated]
    return tf.reduce_mean(losses), grads, EstimatorState(unroll_state, accumulated)
