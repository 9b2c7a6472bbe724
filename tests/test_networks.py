"""Optimizer nets and preprocessing against numpy and hand-written references."""

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from l2l import networks, preprocess


def test_log_and_sign_matches_the_formula():
  g = np.array([[1e-8], [-1e-3], [0.5], [-20.0]], np.float32)
  out = preprocess.LogAndSign(k=5)(tf.constant(g)).numpy()
  eps = np.finfo(np.float32).eps
  np.testing.assert_allclose(out[:, 0], np.maximum(np.log(np.abs(g[:, 0]) + eps) / 5, -1),
                             rtol=1e-6)
  np.testing.assert_allclose(out[:, 1], np.clip(g[:, 0] * np.exp(5), -1, 1), rtol=1e-6)


def test_clamp_bounds():
  x = tf.constant([-3.0, 0.5, 3.0])
  np.testing.assert_array_equal(preprocess.Clamp(-1.0, 1.0)(x), [-1.0, 0.5, 1.0])
  np.testing.assert_array_equal(preprocess.Clamp(min_value=0.0)(x), [0.0, 0.5, 3.0])


def test_lstm_stack_computes_what_sonnet_lstms_compute():
  stack = networks.LSTMStack([5, 3])
  reference = snt.DeepRNN([snt.LSTM(5), snt.LSTM(3)])
  inputs = tf.random.normal([6, 2], seed=1)
  reference(inputs, reference.initial_state(6))
  stack(tf.transpose(inputs), stack.initial_state(6))
  for w, b, lstm in zip(stack.w, stack.b, reference.submodules):
    i, f, g, o = tf.split(lstm.b, 4)
    np.testing.assert_array_equal(b[:, 0], tf.concat([i, f, o, g], 0))  # Forget bias 1, as snt.
    i, f, g, o = tf.split(tf.concat([lstm.input_to_hidden, lstm.hidden_to_hidden], 0), 4, 1)
    w.assign(tf.transpose(tf.concat([i, f, o, g], 1)))  # Our gate order: i, f, o | g.
  state, reference_state = stack.initial_state(6), reference.initial_state(6)
  for t in range(3):
    step_inputs = inputs * (t + 1.0)
    out, state = stack(tf.transpose(step_inputs), state)
    expected, reference_state = reference(step_inputs, reference_state)
    np.testing.assert_allclose(tf.transpose(out), expected, rtol=1e-5, atol=1e-6)
  for (h, c), expected in zip(state, reference_state):
    np.testing.assert_allclose(tf.transpose(c), expected.cell, rtol=1e-5, atol=1e-6)


def test_factory_builds_by_name_and_rejects_unknown_names():
  net = networks.factory("CoordinateWiseDeepLSTM", {"layers": (4,), "scale": 0.5})
  out, state = net(tf.ones([7, 1]), net.initial_state(7))
  assert out.shape == (7, 1) and state[0][0].shape == (4, 7)  # (hidden, cell) [4, N].
  with pytest.raises(ValueError, match=r"Unknown net 'Lstm'; choose one of \['Adam', "):
    networks.factory("Lstm")
  with pytest.raises(ValueError, match="Unknown preprocess_name 'log'"):
    networks.factory("CoordinateWiseDeepLSTM", {"preprocess_name": "log"})


def test_sgd_and_adam_nets_are_sgd_and_adam():
  g = tf.constant([[0.5], [-2.0]])
  out, _ = networks.Sgd(learning_rate=0.1)(g, ())
  np.testing.assert_allclose(out, [[-0.05], [0.2]])
  net = networks.Adam(learning_rate=0.1)
  state = net.initial_state(2)
  m = v = np.zeros([2, 1])
  for t in range(1, 4):
    grad = g.numpy() * t
    out, state = net(tf.constant(grad), state)
    m = 0.9 * m + 0.1 * grad
    v = 0.999 * v + 0.001 * grad ** 2
    expected = -0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(out, expected, rtol=1e-4)


def test_kernel_rows_round_trip_and_shape_check():
  net = networks.KernelDeepLSTM([3, 3], layers=(4,))
  x = tf.reshape(tf.range(3 * 3 * 2 * 5, dtype=tf.float32), [3, 3, 2, 5])
  rows = net.to_rows(x)
  assert rows.shape == (10, 9)
  np.testing.assert_array_equal(rows[1], tf.reshape(x[:, :, 0, 1], [-1]))
  np.testing.assert_array_equal(net.from_rows(rows, x.shape), x)
  out, _ = net(rows, net.initial_state(10))
  assert out.shape == (10, 9)
  with pytest.raises(ValueError, match=r"takes conv kernels \[height, width, in, out\]"):
    net.to_rows(tf.zeros([5, 5]))


def test_save_and_load_round_trip(tmp_path):
  options = {"layers": (3,), "preprocess_name": "LogAndSign", "preprocess_options": {"k": 5}}
  net = networks.factory("CoordinateWiseDeepLSTM", options)
  g = tf.constant([[0.1], [-0.2]])
  expected, _ = net(g, net.initial_state(2))
  path = str(tmp_path / "net")
  networks.save(net, path)
  loaded = networks.factory("CoordinateWiseDeepLSTM", options, net_path=path)
  np.testing.assert_array_equal(loaded(g, loaded.initial_state(2))[0], expected)
  with pytest.raises(FileNotFoundError, match="No net checkpoint"):
    networks.factory("CoordinateWiseDeepLSTM", options, net_path=str(tmp_path / "missing"))


def _adam_reference(gradients, rates, beta1s, beta2=0.999, epsilon=1e-8):
  """numpy Adam with a step size and momentum per step; bias correction by the product of the
  momentum factors used."""
  m = v = 0.0
  power1, power2, updates = 1.0, 1.0, []
  for g, rate, beta1 in zip(gradients, rates, beta1s):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g ** 2
    power1, power2 = power1 * beta1, power2 * beta2
    updates.append(-rate * (m / (1 - power1)) / (np.sqrt(v / (1 - power2)) + epsilon))
  return updates


def _run(net, gradients):
  state, updates = net.initial_state(gradients[0].shape[0]), []
  for g in gradients:
    update, state = net(tf.constant(g), state)
    updates.append(update.numpy())
  return updates


def test_nn_adam_starts_as_adam_and_follows_its_outputs():
  rng = np.random.RandomState(0)
  gradients = [(rng.randn(6, 1) * [[1], [1], [1], [1e-3], [10], [0]]).astype(np.float32)
               for _ in range(4)]
  net = networks.NNAdam(learning_rate=0.01)
  expected = _adam_reference(gradients, [0.01] * 4, [0.9] * 4)
  np.testing.assert_allclose(_run(net, gradients), expected, rtol=1e-4, atol=1e-9)
  # Outputs a = log 3, b = logit(0.5) - logit(0.9): step size 0.03, momentum 0.5.
  net.b.assign([[np.log(3.0)], [-np.log(9.0)]])
  expected = _adam_reference(gradients, [0.03] * 4, [0.5] * 4)
  np.testing.assert_allclose(_run(net, gradients), expected, rtol=1e-4, atol=1e-9)


def test_nn_adam_features_are_scale_free():
  """Gradients 1000x larger: the same hyperparameters, so the same (scale-free) Adam updates."""
  rng = np.random.RandomState(1)
  gradients = [rng.randn(50, 1).astype(np.float32) for _ in range(5)]
  net = networks.NNAdam(learning_rate=0.01)
  net(tf.zeros([50, 1]), net.initial_state(50))
  net.w.assign(tf.random.normal([2, 20], seed=2))
  small, large = _run(net, gradients), _run(net, [1000 * g for g in gradients])
  np.testing.assert_allclose(small, large, rtol=1e-4)
  assert not np.allclose(small, _run(networks.NNAdam(learning_rate=0.01), gradients), rtol=1e-2)


def test_nn_adam_second_derivatives_match_finite_differences():
  """d(sum of losses over 4 steps)/d(output bias), through the optimizee's gradients, with a
  coordinate whose squared gradient underflows to 0 (sqrt'(0) = inf made this NaN)."""
  a = tf.constant([1.0, 3.0, 0.5, 2.0, 1e-25])

  def objective(net):
    x, state, total = tf.constant([[1.0], [-2.0], [0.5], [1.5], [0.3]]), net.initial_state(5), 0.0
    for _ in range(4):
      with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(a[:, None] * x ** 2) + x[0, 0] * x[1, 0]
      update, state = net(tape.gradient(loss, x), state)
      total, x = total + loss, x + update
    return total

  net = networks.NNAdam(learning_rate=1.0)
  objective(net)
  net.w.assign(tf.random.normal([2, 20], stddev=0.3, seed=3))
  with tf.GradientTape() as tape:
    value = objective(net)
  gradient = tape.gradient(value, net.b).numpy()[:, 0]
  assert np.all(np.isfinite(gradient))
  bias, h = net.b.numpy(), 3e-3
  for i in range(2):
    shifted = []
    for sign in (1, -1):
      net.b.assign(bias + sign * h * np.eye(2)[:, i:i + 1])
      shifted.append(float(objective(net)))
    net.b.assign(bias)
    np.testing.assert_allclose(gradient[i], (shifted[0] - shifted[1]) / (2 * h), rtol=1e-2)
