"""The outer learner: the non-finite policies, clipping, AdamW's decoupled decay."""

import numpy as np
import pytest
import tensorflow as tf

from l2l import outer


def test_cap_policy_caps_and_counts_and_skip_policy_skips_and_counts():
  w = tf.Variable([1.0, -2.0])
  capping = outer.OuterLearner([w], 0.1, nonfinite="cap", loss_cap=20.0)
  np.testing.assert_array_equal(
      capping.cap_losses(tf.constant([1.0, np.inf, np.nan, 30.0])), [1.0, 20.0, 20.0, 20.0])
  capping.count_capped(tf.constant(3))
  assert int(capping.nonfinite) == 3
  skipping = outer.OuterLearner([w], 0.1, nonfinite="skip")
  np.testing.assert_array_equal(skipping.cap_losses(tf.constant([np.nan])), [np.nan])
  step = skipping.apply(tf.constant(1.0), [tf.constant([np.nan, 1.0])])
  assert not bool(step.applied) and int(skipping.nonfinite) == 1
  np.testing.assert_array_equal(w, [1.0, -2.0])
  with pytest.raises(ValueError, match="Unknown non-finite policy 'ignore'"):
    outer.OuterLearner([w], nonfinite="ignore")


def test_adam_step_with_clipping_and_decoupled_weight_decay():
  w = tf.Variable([1.0, -2.0])
  learner = outer.OuterLearner([w], 0.1, weight_decay=0.5, clip_norm=1.0)
  step = learner.apply(tf.constant(0.0), [tf.constant([3.0, 4.0])])
  assert bool(step.applied) and float(step.grad_norm) == pytest.approx(5.0)
  # Decay first (w -= 0.1 * 0.5 * w), then Adam's first step: -0.1 * sign(g).
  np.testing.assert_allclose(w, [0.95 - 0.1, -1.9 - 0.1], rtol=1e-5)
  assert int(learner.step) == 1
