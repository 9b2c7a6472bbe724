"""Truncated backpropagation through time over one truncation of an unroll.

``estimate(theta, state, seed)`` runs ``unroll(theta, unroll_state)`` once at the shared weights,
under a tape, and returns the mean meta-loss over the problems and its gradient: the meta-gradient
of the 2016 paper, exact for the truncation and blind to how the weights shaped the state it
started from (the unroll's state enters each truncation as a constant).
"""

from typing import Sequence

import tensorflow as tf

from l2l.estimators.es import Estimator, EstimatorState, Theta, Unroll


class TruncatedBPTT(Estimator):
  """``estimate(theta, state, seed) -> (meta_loss, grads, state)``; ``seed`` is unused (the
  estimate is deterministic) and kept for one signature across estimators."""

  def __init__(self, unroll: Unroll):
    self.unroll = unroll

  def estimate(self, theta: Sequence[tf.Tensor], state: EstimatorState, seed: tf.Tensor
               ) -> tuple[tf.Tensor, Theta, EstimatorState]:
    del seed
    theta = list(theta)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(theta)
      losses, unroll_state, _ = self.unroll(theta, state.unroll_state)
      meta_loss = tf.reduce_mean(losses)
    grads = tape.gradient(meta_loss, theta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return meta_loss, grads, EstimatorState(unroll_state)
