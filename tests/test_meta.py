"""MetaOptimizer: unrolls, truncated BPTT, net assignments, meta-gradients, save / load."""

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

import l2l
from problems import quadratic

LINEAR = {"cw": {"net": "CoordinateWiseDeepLSTM", "net_options": {"layers": []}}}


def test_default_is_the_original_preset():
  assert l2l.MetaOptimizer().config == l2l.PRESETS["original"]
  with pytest.raises(ValueError, match="Unknown preset 'adam'"):
    l2l.MetaOptimizer.from_preset("adam")


def test_unpacks_as_the_original_and_carries_state_across_unrolls():
  optimizer = l2l.MetaOptimizer(sgd={"net": "Sgd", "net_options": {"learning_rate": 0.1}})
  loss, update, reset, fx, x, constants = optimizer.meta_loss(quadratic.simple(), 2)
  assert constants == []
  value = loss()  # x: 1 -> 0.8 -> 0.64; meta-loss = 1 + 0.64 + 0.4096.
  np.testing.assert_allclose(value, 1 + 0.8 ** 2 + 0.64 ** 2, rtol=1e-6)
  np.testing.assert_allclose(fx, 0.64 ** 2, rtol=1e-6)
  np.testing.assert_allclose(x[0], 1.0)  # Not carried until update().
  update()
  np.testing.assert_allclose(x[0], 0.64, rtol=1e-6)
  np.testing.assert_allclose(loss(), 0.64 ** 2 + 0.512 ** 2 + 0.4096 ** 2, rtol=1e-5)
  reset()
  np.testing.assert_allclose(x[0], 1.0)


def test_net_assignments_route_each_variable_to_its_net():
  optimizer = l2l.MetaOptimizer(a={"net": "Sgd", "net_options": {"learning_rate": 0.1}},
                                b={"net": "Sgd", "net_options": {"learning_rate": 0.2}})
  ops = optimizer.meta_loss(quadratic.simple_multi_optimizer(3), 1,
                            net_assignments=[("a", ["x_0", "x_2"]), ("b", ["x_1"])])
  ops.loss()
  ops.update()
  np.testing.assert_allclose([v.numpy() for v in ops.x], [0.8, 0.6, 0.8], rtol=1e-6)


def test_bad_net_assignments_are_explained():
  optimizer = l2l.MetaOptimizer(a={"net": "Sgd"}, b={"net": "Sgd"})
  problem = quadratic.simple_multi_optimizer(2)
  with pytest.raises(ValueError, match="has 2 nets .* pass net_assignments"):
    optimizer.meta_loss(problem, 1)
  with pytest.raises(ValueError, match=r"Variables \['x_1'\] are not assigned to any net"):
    optimizer.meta_loss(problem, 1, net_assignments=[("a", ["x_0"])])
  with pytest.raises(ValueError, match=r"names variable 'y'; the problem's trainable variables "
                                       r"are \['x_0', 'x_1'\]"):
    optimizer.meta_loss(problem, 1, net_assignments=[("a", ["x_0", "y"])])
  with pytest.raises(ValueError, match=r"names net 'c'"):
    optimizer.meta_loss(problem, 1, net_assignments=[("c", ["x_0", "x_1"])])


def test_one_net_call_per_net_per_step(monkeypatch):
  optimizer = l2l.MetaOptimizer(**LINEAR)
  ops = optimizer.meta_loss(quadratic.simple_multi_optimizer(4), 5)
  calls = []
  net = optimizer.nets["cw"]
  original = type(net).__call__
  monkeypatch.setattr(type(net), "__call__", lambda self, *a: calls.append(a[0].shape) or
                      original(self, *a))
  tf.function(ops.loss)()
  assert calls == [tf.TensorShape([4, 1])]  # Traced once in the loop body, all 4 coordinates.


def _linear_meta_gradient(w, b, steps):
  """d meta-loss / d (w, b) for x_{t+1} = x_t + w g_t + b on x², g_t = 2 x_t held constant."""
  x, dx_dw, dx_db, gw, gb = 1.0, 0.0, 0.0, 0.0, 0.0
  for _ in range(steps):
    gw, gb = gw + 2 * x * dx_dw, gb + 2 * x * dx_db
    g = 2 * x
    x, dx_dw, dx_db = x + w * g + b, dx_dw + g, dx_db + 1
  return gw + 2 * x * dx_dw, gb + 2 * x * dx_db


def test_meta_gradient_without_second_derivatives_matches_hand_computation():
  optimizer = l2l.MetaOptimizer(**LINEAR)
  ops = optimizer.meta_loss(quadratic.simple(), 3)
  linear = optimizer.nets["cw"]  # Its output layer: w [1, 1], b [1, 1].
  linear.w.assign([[-0.2]])
  linear.b.assign([[0.05]])

  @tf.function  # Inside the user's own tf.function and tape.
  def grads():
    with tf.GradientTape() as tape:
      loss = ops.loss()
    return tape.gradient(loss, [linear.w, linear.b])

  gw, gb = grads()
  ew, eb = _linear_meta_gradient(-0.2, 0.05, 3)
  np.testing.assert_allclose([float(gw[0, 0]), float(gb[0, 0])], [ew, eb], rtol=1e-5)


def test_second_derivatives_match_finite_differences():
  optimizer = l2l.MetaOptimizer(**LINEAR)
  ops = optimizer.meta_loss(quadratic.simple(), 3, second_derivatives=True)
  linear = optimizer.nets["cw"]  # Its output layer: w [1, 1], b [1, 1].
  linear.b.assign([[0.05]])

  def meta_loss_at(w):
    linear.w.assign([[w]])
    return float(ops.loss())

  linear.w.assign([[-0.2]])
  with tf.GradientTape() as tape:
    loss = ops.loss()
  analytic = float(tape.gradient(loss, linear.w)[0, 0])
  eps = 1e-3
  numeric = (meta_loss_at(-0.2 + eps) - meta_loss_at(-0.2 - eps)) / (2 * eps)
  np.testing.assert_allclose(analytic, numeric, rtol=2e-3)
  assert abs(analytic - _linear_meta_gradient(-0.2, 0.05, 3)[0]) > 1e-2  # Second order differs.


def test_meta_minimize_learns_on_the_quadratic():
  tf.random.set_seed(1)
  optimizer = l2l.MetaOptimizer.from_preset("quadratic")
  make_loss = quadratic.quadratic(batch_size=16, num_dims=4)
  step, update, reset, fx, x = optimizer.meta_minimize(make_loss, 10, learning_rate=0.01)
  train = tf.function(lambda: (step(), update())[0])
  finals = []
  for _ in range(30):
    reset()
    train()
    train()
    finals.append(float(fx))
  assert np.mean(finals[-5:]) < 0.5 * np.mean(finals[:5])


@pytest.mark.parametrize("estimator", ["es", "pes"])
def test_meta_minimize_with_es_and_pes_learns_on_the_quadratic(estimator):
  """Forward unrolls only: 40 problems of 5 steps of 10, the final loss falls by more than 2x."""
  tf.random.set_seed(0)
  optimizer = l2l.MetaOptimizer.from_preset("original")
  ops = optimizer.meta_minimize(quadratic.quadratic(batch_size=16), 10, learning_rate=0.003,
                                estimator=estimator, num_particles=4)
  assert ops.meta_loss is None and ops.x[0].shape == (16, 10)
  train = tf.function(lambda: (ops.step(), ops.update())[0])
  finals = []
  for _ in range(40):
    ops.reset()
    for _ in range(5):
      train()
    finals.append(float(ops.fx))
  assert bool(ops.applied) and float(ops.grad_norm) > 0
  assert np.mean(finals[-5:]) < 0.5 * np.mean(finals[:5])


def test_meta_minimize_rejects_unknown_estimators_and_meaningless_options():
  optimizer = l2l.MetaOptimizer()
  with pytest.raises(ValueError, match=r"Unknown estimator 'reinforce'; choose one of \('tbptt'"):
    optimizer.meta_minimize(quadratic.simple(), 3, estimator="reinforce")
  with pytest.raises(ValueError, match="second_derivatives applies to estimator='tbptt'"):
    optimizer.meta_minimize(quadratic.simple(), 3, estimator="pes", second_derivatives=True)


def test_save_and_load_restore_the_same_optimizer(tmp_path):
  optimizer = l2l.MetaOptimizer()
  ops = optimizer.meta_loss(quadratic.simple(), 3)
  for v in optimizer.trainable_variables:
    v.assign(tf.random.normal(v.shape, stddev=0.3))
  expected = float(ops.loss())
  optimizer.save(str(tmp_path))
  loaded = l2l.MetaOptimizer.load(str(tmp_path))
  assert loaded.config == optimizer.config
  np.testing.assert_allclose(float(loaded.meta_loss(quadratic.simple(), 3).loss()), expected,
                             rtol=1e-6)
  with pytest.raises(FileNotFoundError, match="No saved optimizer"):
    l2l.MetaOptimizer.load(str(tmp_path / "missing"))


def test_problem_without_trainable_variables_points_to_make_loss():
  net = snt.Linear(1)
  x = tf.ones([1, 2])
  net(x)
  with pytest.raises(ValueError, match="Build every module and variable inside make_loss"):
    l2l.MetaOptimizer().meta_loss(lambda: tf.reduce_sum(net(x)), 5)


@pytest.mark.parametrize("net, baseline", [
    ({"net": "Sgd", "net_options": {"learning_rate": 0.05}}, snt.optimizers.SGD(0.05)),
    ({"net": "Adam", "net_options": {"learning_rate": 0.1}}, snt.optimizers.Adam(0.1))])
def test_hand_designed_nets_inside_the_meta_optimizer_reproduce_their_optimizer(net, baseline):
  optimizer = l2l.MetaOptimizer(hand=net)
  ops = optimizer.meta_loss(quadratic.quadratic(batch_size=4, num_dims=3), 5)
  w, y = (tf.constant(c) for c in ops.constants)
  x = tf.Variable(ops.x[0])
  losses = []
  for _ in range(10):  # Plain TF on a real variable, over the unroll boundary.
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.reduce_sum(tf.square(tf.reduce_sum(w * x[:, None, :], -1) - y), 1))
    baseline.apply(tape.gradient(loss, [x]), [x])
    losses.append(float(loss))
  unroll = tf.function(lambda: (ops.loss(), ops.update())[0])
  unroll()
  first = ops.fx_history.numpy()
  unroll()
  rtol = 0 if net["net"] == "Sgd" else 5e-5  # SGD: the same floats; Adam: float32 rounding.
  np.testing.assert_allclose(np.concatenate([first, ops.fx_history.numpy()[1:]])[:10], losses,
                             rtol=rtol)
  np.testing.assert_allclose(ops.x[0], x, rtol=rtol)
