"""The contract every net passes: state shapes, rows round trip (row nets), eager = tf.function, finite
second derivatives, pure ``apply`` at given weights equals the module's call, and a batch of
problems (with a copy of the weights each) equals the problems one at a time."""

import numpy as np
import pytest
import tensorflow as tf

from l2l import networks
from l2l import routing

NETS = {
    "CoordinateWiseDeepLSTM": ({"layers": (6, 5), "preprocess_name": "LogAndSign",
                                "preprocess_options": {"k": 5}, "scale": 0.1}, [[3, 4], [4]]),
    "StandardDeepLSTM": ({"output_size": 6, "layers": (5,)}, [[2, 3], [3, 2]]),
    "KernelDeepLSTM": ({"kernel_shape": [2, 2], "layers": (4,)}, [[2, 2, 3, 2]]),
    "Sgd": ({"learning_rate": 0.1}, [[3, 4], [4]]),
    "Adam": ({"learning_rate": 0.1}, [[3, 4], [4]]),
    "NNAdam": ({"learning_rate": 0.01, "layers": (5,), "initializer": None}, [[3, 4], [4]]),
}
BATCH = 3


def _setup(name):
  options, shapes = NETS[name]
  net = networks.factory(name, options)
  initial = networks.build_for(net, shapes)
  rng = np.random.RandomState(0)
  grads = [tf.constant(rng.randn(*s).astype(np.float32)) for s in shapes]
  return net, shapes, initial, grads


def test_every_registered_row_net_is_covered():
  assert set(networks.NETS) - {"Celo"} == set(NETS)


@pytest.mark.parametrize("name", sorted(NETS))
def test_state_shapes_and_rows_round_trip(name):
  net, shapes, initial, grads = _setup(name)
  rows = tf.concat([net.to_rows(g) for g in grads], 0)
  assert tf.nest.map_structure(lambda s: s.shape, initial) == tf.nest.map_structure(
      lambda s: s.shape, net.initial_state(int(rows.shape[0])))
  for g in grads:
    np.testing.assert_array_equal(net.from_rows(net.to_rows(g), g.shape), g)
  updates, state = networks.group_updates(net, grads, initial)
  assert [u.shape for u in updates] == [g.shape for g in grads]
  assert tf.nest.map_structure(lambda s: s.shape, state) == tf.nest.map_structure(
      lambda s: s.shape, initial)


@pytest.mark.parametrize("name", sorted(NETS))
def test_eager_equals_tf_function_and_pure_apply_equals_the_module(name):
  net, _, initial, grads = _setup(name)
  eager, _ = networks.group_updates(net, grads, initial)
  traced, _ = tf.function(lambda: networks.group_updates(net, grads, initial))()
  theta = [tf.identity(w) for w in net.weight_list()]
  pure, _ = networks.group_updates(net, grads, initial, theta=theta)
  for a, b, c in zip(eager, traced, pure):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(a, c)
  if theta:  # Other weights give other updates: apply really reads theta.
    shifted = [w + 0.1 for w in theta]
    other, _ = networks.group_updates(net, grads, initial, theta=shifted)
    assert max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(eager, other)) > 1e-6


@pytest.mark.parametrize("name", sorted(NETS))
def test_a_batch_of_problems_with_their_own_weights_equals_them_one_by_one(name):
  net, _, initial, grads = _setup(name)
  theta = net.weight_list()
  thetas = [[w + 0.05 * i for w in theta] for i in range(BATCH)]
  problem_grads = [[g * (i + 1.0) for g in grads] for i in range(BATCH)]
  stacked_state = tf.nest.map_structure(lambda s: tf.stack([s] * BATCH), initial)
  batched, batched_state = networks.group_updates(
      net, [tf.stack(gs) for gs in zip(*problem_grads)], stacked_state,
      theta=[tf.stack(ws) for ws in zip(*thetas)] if theta else [], batch_dims=1)
  for i in range(BATCH):
    single, single_state = networks.group_updates(net, problem_grads[i], initial,
                                                  theta=thetas[i])
    for a, b in zip(batched, single):
      np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-7)
    tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-7),
                          batched_state, single_state)


@pytest.mark.parametrize("name", sorted(NETS))
def test_second_derivatives_are_finite(name):
  net, _, initial, grads = _setup(name)
  x = [tf.Variable(g) for g in grads]
  theta = net.weight_list()
  with tf.GradientTape() as outer:
    with tf.GradientTape() as inner:
      loss = tf.add_n([tf.reduce_sum(tf.square(v)) for v in x])
    inner_grads = inner.gradient(loss, x)
    updates, _ = networks.group_updates(net, inner_grads, initial)
    meta_loss = tf.add_n([tf.reduce_sum(tf.square(v + u)) for v, u in zip(x, updates)])
  meta_grads = outer.gradient(meta_loss, theta + x)
  for g in meta_grads:
    assert g is not None and bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(g))))


def _celo_setup():
  net = networks.factory("Celo", {"num_steps": 20})
  shapes = [[4, 3], [3], []]
  rng = np.random.RandomState(1)
  for w in net.weight_list():  # Non-zero weights everywhere, so that every weight matters.
    w.assign(np.asarray(rng.randn(*w.shape), np.float32) * 0.3)
  params = [tf.constant(np.asarray(rng.randn(*s), np.float32)) for s in shapes]
  grads = [tf.constant(np.asarray(rng.randn(*s), np.float32)) for s in shapes]
  return net, shapes, params, grads, tf.constant(2.5)


def test_the_tensor_net_celo_passes_the_same_contract():
  """State shapes, eager = tf.function, pure apply = the module, batched = one by one (rows do
  not apply: Celo sees whole tensors)."""
  net, shapes, params, grads, loss = _celo_setup()
  initial = net.initial_state(shapes)
  eager, state = net.updates(params, grads, loss, initial)
  assert tf.nest.map_structure(lambda s: s.shape, state) == tf.nest.map_structure(
      lambda s: s.shape, initial)
  traced, _ = tf.function(lambda: net.updates(params, grads, loss, initial))()
  theta = [tf.identity(w) for w in net.weight_list()]
  pure, _ = net.apply(theta, params, grads, loss, initial)
  shifted, _ = net.apply([w + 0.1 for w in theta], params, grads, loss, initial)
  for a, b, c, d in zip(eager, traced, pure, shifted):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(a, c)
    assert float(tf.reduce_max(tf.abs(a - d))) > 1e-9
  groups = routing.NetGroups({"celo": net}, [("celo", [0, 1, 2])])
  thetas = [[w + 0.05 * i for w in theta] for i in range(BATCH)]
  stacked_state = groups.batched_initial_state(shapes, BATCH)
  batched, _ = groups.updates(
      [tf.stack([p * (i + 1.0) for i in range(BATCH)]) for p in params],
      [tf.stack([g * (i + 1.0) for i in range(BATCH)]) for g in grads],
      tf.stack([loss * (i + 1.0) for i in range(BATCH)]), stacked_state,
      theta=[tf.stack(ws) for ws in zip(*thetas)], batch_dims=1)
  for i in range(BATCH):
    single, _ = net.apply(thetas[i], [p * (i + 1.0) for p in params],
                          [g * (i + 1.0) for g in grads], loss * (i + 1.0), initial)
    for a, b in zip(batched, single):
      np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-9)


def test_celo_has_finite_second_derivatives():
  net, shapes, params, _, _ = _celo_setup()
  x = [tf.Variable(p) for p in params]
  with tf.GradientTape() as outer:
    with tf.GradientTape() as inner:
      loss = tf.add_n([tf.reduce_sum(tf.square(v)) for v in x])
    updates, _ = net.updates(x, inner.gradient(loss, x), loss, net.initial_state(shapes))
    meta_loss = tf.add_n([tf.reduce_sum(tf.square(v + u)) for v, u in zip(x, updates)])
  for g in outer.gradient(meta_loss, net.weight_list() + x):
    assert g is not None and bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(g))))
