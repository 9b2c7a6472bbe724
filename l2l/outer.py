"""The outer learner: what meta-training does with a meta-gradient estimate.

It owns the outer optimizer (Adam, or AdamW: Adam plus decoupled weight decay) on the learned
optimizer's weights, clipping to a global norm, and the policy for non-finite estimates:

- ``"skip"``: an update whose meta-loss or gradient is NaN / Inf is not applied;
- ``"cap"``: before the estimate, each problem's meta-loss is replaced by ``min(loss, cap)``, and
  NaN by ``cap``, as learned_optimization does for ES / PES (one diverged particle then counts as
  a bad result instead of poisoning the estimate); an update that is still non-finite is skipped.

Either way ``nonfinite`` counts the problems whose losses were not finite (capped) or the updates
skipped. Under a ``tf.distribute`` strategy, ``apply`` is where the replicas' estimates are
all-reduced (mean) before the update.
"""

from typing import NamedTuple, Sequence

import sonnet as snt
import tensorflow as tf

POLICIES = ("skip", "cap")


class OuterStep(NamedTuple):
  """What one outer update did."""
  applied: tf.Tensor  # bool: the weights were updated.
  grad_norm: tf.Tensor  # global norm of the (mean) estimate, before clipping.


class OuterLearner(tf.Module):
  """``apply(meta_loss, grads) -> OuterStep`` on ``weights``; see the module docstring."""

  def __init__(self, weights: Sequence[tf.Variable], learning_rate: float = 1e-3,
               weight_decay: float = 0.0, clip_norm: float | None = None,
               nonfinite: str = "skip", loss_cap: float = 20.0):
    super().__init__(name="outer_learner")
    if nonfinite not in POLICIES:
      raise ValueError(f"Unknown non-finite policy {nonfinite!r}; choose one of {POLICIES}.")
    if clip_norm is not None and not clip_norm > 0:
      raise ValueError(f"clip_norm must be positive (or None for no clipping), got {clip_norm}.")
    if not learning_rate > 0 or weight_decay < 0:
      raise ValueError(f"Need learning_rate > 0 and weight_decay >= 0, got {learning_rate} and "
                       f"{weight_decay}.")
    self.weights = list(weights)
    self.optimizer = snt.optimizers.Adam(learning_rate)
    self.learning_rate, self.weight_decay = learning_rate, weight_decay
    self.clip_norm, self.policy, self.loss_cap = clip_norm, nonfinite, loss_cap
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="outer_step")
    self.nonfinite = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite")

  def cap_losses(self, losses: tf.Tensor) -> tf.Tensor:
    """The per-problem meta-losses the estimate should use under the policy (pure: the caller
    counts the non-finite ones, ``count_capped``)."""
    if self.policy != "cap":
      return losses
    return tf.where(tf.math.is_finite(losses), tf.minimum(losses, self.loss_cap),
                    tf.cast(self.loss_cap, losses.dtype))

  def count_capped(self, count: tf.Tensor) -> None:
    """Adds ``count`` problems whose meta-loss was capped."""
    if self.policy == "cap":
      self.nonfinite.assign_add(tf.cast(count, tf.int64))

  def apply(self, meta_loss: tf.Tensor, grads: Sequence[tf.Tensor]) -> OuterStep:
    """One update from an estimate (mean over replicas first, under a strategy)."""
    grads = list(grads)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
      meta_loss, *grads = context.all_reduce(tf.distribute.ReduceOp.MEAN, [meta_loss, *grads])
    grad_norm = tf.linalg.global_norm(grads)
    finite = tf.math.is_finite(meta_loss) & tf.math.is_finite(grad_norm)

    def update():
      clipped = grads
      if self.clip_norm is not None:
        clipped, _ = tf.clip_by_global_norm(grads, self.clip_norm, use_norm=grad_norm)
      if self.weight_decay:
        for w in self.weights:
          w.assign_sub(self.learning_rate * self.weight_decay * w)
      self.optimizer.apply(clipped, self.weights)
      return tf.constant(True)

    def skip():
      self.nonfinite.assign_add(1)
      return tf.constant(False)

    applied = tf.cond(finite, update, skip)
    self.step.assign_add(1)
    return OuterStep(applied, grad_norm)
