"""The batched inner loop: per-task horizons and resets, the paper's unroll numbers, and the TBPTT
meta-gradient against finite differences."""

import numpy as np
import tensorflow as tf

from l2l import estimators
from l2l import meta
from l2l import networks
from l2l import tasks
from l2l import routing
from l2l import unroll as unroll_lib
from problems import families
from problems import quadratic


def _sgd_groups(learning_rate=0.01):
  nets = {"sgd": networks.Sgd(learning_rate)}
  return routing.NetGroups(nets, [("sgd", [0])])


def test_tasks_reset_at_their_own_horizons_with_fresh_seeds():
  family = families.Quadratic(batch_size=2, num_dims=3)
  unroll = unroll_lib.Unroll(family, _sgd_groups(), tasks.ConstantHorizon(100), num_tasks=3,
                             copies=2)
  state = unroll.init(11)
  state = state._replace(horizon=tf.constant([3, 5, 8] * 2))
  first_seeds = state.task_seed.numpy()
  assert len({tuple(s) for s in first_seeds[:3]}) == 3  # Slots draw different tasks...
  np.testing.assert_array_equal(first_seeds[:3], first_seeds[3:])  # ... shared by their copies.
  resets = []
  for _ in range(10):
    result = unroll(_sgd_groups().theta(), state, 1)
    state = result.state
    resets.append(result.reset.numpy()[:3])
  resets = np.array(resets)
  np.testing.assert_array_equal(np.argmax(resets, 0), [2, 4, 7])  # Steps 3, 5, 8.
  assert resets.sum() == 3
  np.testing.assert_array_equal(state.step.numpy(), [7, 5, 2] * 2)
  np.testing.assert_array_equal(state.draws.numpy(), [1, 1, 1] * 2)
  for slot in range(3):
    seed = tasks.fold(tasks.as_seed(11), slot, 1)
    np.testing.assert_array_equal(state.task_seed[slot], seed)
    assert not np.array_equal(state.task_seed[slot], first_seeds[slot])
    np.testing.assert_array_equal(state.config[0][slot], family.sample(tasks.fold(seed, 0))[0])


def test_each_task_plans_its_own_horizon_for_nets_that_read_it():
  from l2l.nets import celo
  family = families.Quadratic(batch_size=2, num_dims=3)
  groups = routing.NetGroups({"celo": celo.Celo(num_steps=1000)}, [("celo", [0])])
  unroll = unroll_lib.Unroll(family, groups, tasks.LogUniformHorizon(2, 6), num_tasks=4)
  state = unroll.init(3)
  for _ in range(3):
    np.testing.assert_array_equal(state.opt_state[0]["num_steps"], state.horizon)
    state = unroll(groups.theta(), state, 4).state
  assert state.draws.numpy().min() >= 1


def test_a_diverged_task_is_replaced():
  family = families.Quadratic(batch_size=2, num_dims=3)
  unroll = unroll_lib.Unroll(family, _sgd_groups(1e6), tasks.ConstantHorizon(1000), 2)
  state = unroll.init(0)
  for _ in range(8):
    result = unroll(_sgd_groups(1e6).theta(), state, 1)
    state = result.state
    assert np.isfinite(state.params[0].numpy()).all()
  assert state.draws.numpy().min() >= 1


def test_one_task_unroll_gives_the_meta_optimizers_losses():
  """The same LSTM, problem and start: the batched unroll's mean loss over 5 steps is the mean of
  the first 5 entries of MetaOptimizer's loss history."""
  make_loss = quadratic.quadratic(batch_size=3, num_dims=4)
  optimizer = meta.MetaOptimizer.from_preset("original")
  ops = optimizer.meta_loss(make_loss, len_unroll=5)
  ops.reset()
  ops.loss()
  family = tasks.from_make_loss(make_loss)
  groups = routing.NetGroups(optimizer.nets, [("coordinatewise", [0])])
  unroll = unroll_lib.Unroll(family, groups, tasks.ConstantHorizon(100), 1)
  state = unroll.init(0)
  state = state._replace(params=[tf.stack([v]) for v in ops.x],
                         config=[tf.stack([v]) for v in ops.constants])
  result = unroll(groups.theta(), state, 5)
  np.testing.assert_allclose(result.losses[0], np.mean(ops.fx_history.numpy()[:5]), rtol=1e-5)


def test_tbptt_meta_gradient_matches_finite_differences():
  """With second derivatives the estimate is the derivative of the truncation's loss; without
  (the paper's choice) it misses their part, here about 4%."""
  family = families.Quadratic(batch_size=2, num_dims=3)
  nets = {"lstm": networks.factory("CoordinateWiseDeepLSTM", {"layers": (4,), "scale": 0.1})}
  groups = routing.NetGroups(nets, [("lstm", [0])])
  unroll = unroll_lib.Unroll(family, groups, tasks.ConstantHorizon(100), 2,
                             second_derivatives=True)
  start = unroll.init(3)

  def unroll_fn(theta, state):
    result = unroll(theta, state, 6)
    return result.losses, result.state, result.reset

  estimator = estimators.TruncatedBPTT(unroll_fn)
  theta = [tf.cast(w, tf.float32) for w in groups.theta()]
  meta_loss, grads, _ = estimator.estimate(theta, estimator.init_state(start), tf.constant(0))
  rng = np.random.RandomState(0)
  direction = [tf.constant(rng.randn(*w.shape).astype(np.float32)) for w in theta]
  norm = np.sqrt(sum(float(tf.reduce_sum(d * d)) for d in direction))
  direction = [d / norm for d in direction]
  eps = 1e-2

  def loss_at(sign):
    moved = [w + sign * eps * d for w, d in zip(theta, direction)]
    return float(tf.reduce_mean(unroll_fn(moved, start)[0]))

  finite_difference = (loss_at(1) - loss_at(-1)) / (2 * eps)
  analytic = sum(float(tf.reduce_sum(g * d)) for g, d in zip(grads, direction))
  assert abs(finite_difference) > 1e-3
  np.testing.assert_allclose(analytic, finite_difference, rtol=3e-3)
  np.testing.assert_allclose(meta_loss, loss_at(0), rtol=1e-6)
  unroll.second_derivatives = False
  _, first_order, _ = estimator.estimate(theta, estimator.init_state(start), tf.constant(0))
  first_order = sum(float(tf.reduce_sum(g * d)) for g, d in zip(first_order, direction))
  assert 0.02 < abs(first_order / finite_difference - 1) < 0.08
