"""Nested optimizer updates: the seed's worked examples, independent numpy checks, bad input."""

import numpy as np
import pytest
import tensorflow as tf

import l2l

# The worked examples' printed outputs carry ~3 significant figures or all float32 digits.
DOC_RTOL = 5e-3


def _np(x):
  if isinstance(x, dict):
    return {k: _np(v) for k, v in x.items()}
  return np.asarray(x)


def _assert_tree_close(actual, expected, rtol=1e-6, atol=0.0):
  actual, expected = _np(actual), _np(expected)
  if isinstance(expected, dict):
    assert set(actual) == set(expected)
    for k in expected:
      _assert_tree_close(actual[k], expected[k], rtol, atol)
  else:
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def c(**leaves):
  return {k: tf.constant(v, tf.float32) for k, v in leaves.items()}


# --- seed 003 worked examples ------------------------------------------------------------------


def test_doc_adam_step_broadcast_moments():
  delta, mw, vw = l2l.adam_step(c(a=[0., 1., 2.], b=[3., 4., 5.]), tf.constant([1., 4., 9.]),
                                tf.constant([0.]), tf.constant([3.4]), beta1=0.87, beta2=0.976,
                                epsilon=1e-5)
  _assert_tree_close(delta, dict(a=[6.49e+04, 1.74e+01, 1.95e+01], b=[2.02, 4.82, 8.17]), DOC_RTOL)
  _assert_tree_close(mw, dict(a=[0.87, 3.61, 8.09], b=[1.26, 4., 8.48]), DOC_RTOL)
  _assert_tree_close(vw, dict(a=[0., 0.024, 0.096], b=[0.216, 0.384, 0.6]), DOC_RTOL)


def test_doc_adam_step_nested_moments():
  delta, mw, vw = l2l.adam_step(c(a=[0., 1., 2.], b=[3., 4., 5.]), c(a=[0.] * 3, b=[0.] * 3),
                                c(a=[0.], b=[0.]), tf.constant([3.4]), beta1=0.87, beta2=0.976,
                                epsilon=1e-5)
  _assert_tree_close(delta, dict(a=[0., 0.626, 0.626], b=[0.626, 0.626, 0.626]), DOC_RTOL)
  _assert_tree_close(mw, dict(a=[0., 0.13, 0.26], b=[0.39, 0.52, 0.65]), DOC_RTOL)
  _assert_tree_close(vw, dict(a=[0., 0.024, 0.096], b=[0.216, 0.384, 0.6]), DOC_RTOL)


def test_doc_adam_update_odd_argument_order():
  # As written in the doc: w.adam_update(dcdw, mw_tm1, vw_tm1, lr, step) puts zeros in the lr slot.
  w = c(a=[1., 2., 3.], b=[4., 5., 6.])
  dcdw, mw_tm1, vw_tm1, lr = (tf.constant([1., 0.2, 0.4]), tf.constant([0., 0., 0.]),
                              tf.constant([0.]), tf.constant(0.01))
  w_new, mw, vw = l2l.adam_update(w, dcdw, mw_tm1, vw_tm1, lr, 2)
  _assert_tree_close(w_new, dict(a=[1., 2., 3.], b=[4., 5., 6.]), 0.0)
  for leaf in ("a", "b"):
    _assert_tree_close(mw[leaf], [0.1, 0.02, 0.04], 1e-6)
    _assert_tree_close(vw[leaf], [0.01099, 0.01003, 0.01015], 1e-6)


def test_doc_adam_update_nested():
  w = c(a=[1., 2., 3.], b=[4., 5., 6.])  # The doc builds x but updates w.
  w_new, mw, vw = l2l.adam_update(
      w, c(a=[0.1, 0.3, 0.3], b=[0.3, 0.2, 0.2]), tf.constant(0.001), c(a=[0.] * 3, b=[0.] * 3),
      c(a=[0.], b=[0.]), 3, beta1=0.9, beta2=0.999, epsilon=1e-7, stop_gradients=False)
  _assert_tree_close(w_new, dict(a=[0.99936122, 1.99936116, 2.99936128],
                                 b=[3.99936128, 4.99936104, 5.99936104]), 1e-7)
  _assert_tree_close(mw, dict(a=[0.01, 0.03, 0.03], b=[0.03, 0.02, 0.02]), 1e-6)
  _assert_tree_close(vw, dict(a=[1.00000016e-05, 9.00000086e-05, 9.00000086e-05],
                              b=[9.00000086e-05, 4.00000063e-05, 4.00000063e-05]), 1e-6)


def test_doc_gradient_descent_update():
  w = c(a=[1., 2., 3.], b=[3.48, 5.72, 1.98])
  _assert_tree_close(l2l.gradient_descent_update(w, tf.constant([0.5, 0.2, 0.1]), tf.constant(0.3)),
                     dict(a=[0.85, 1.94, 2.97], b=[3.33, 5.66, 1.95]), DOC_RTOL)
  _assert_tree_close(
      l2l.gradient_descent_update(w, c(a=[0.5, 0.2, 0.1], b=[2., 3.42, 1.69]), tf.constant(0.3)),
      dict(a=[0.85, 1.94, 2.97], b=[2.88, 4.69, 1.47]), DOC_RTOL)


def test_doc_lamb_update_odd_argument_order():
  w = c(a=[1., 2., 3.], b=[4., 5., 6.])
  dcdw, mw_tm1, vw_tm1, lr = (tf.constant([3., 4., 5.]), tf.constant([0., 0., 0.]),
                              tf.constant([0.]), tf.constant(1.))
  w_new, mw, vw = l2l.lamb_update(w, dcdw, mw_tm1, vw_tm1, lr, tf.constant([2]))
  _assert_tree_close(w_new, dict(a=[1., 2., 3.], b=[4., 5., 6.]), 0.0)
  for leaf in ("a", "b"):
    _assert_tree_close(mw[leaf], [0.3, 0.4, 0.5], 1e-6)
    _assert_tree_close(vw[leaf], [1.01, 1.01, 1.02], DOC_RTOL)


def test_doc_lamb_update_nested():
  w_new, mw, vw = l2l.lamb_update(
      c(a=[1., 3., 5.], b=[3., 4., 2.]), c(a=[0.2, 0.3, 0.6], b=[0.6, 0.4, 0.7]), tf.constant(0.5),
      c(a=[0.] * 3, b=[0.] * 3), c(a=[0.], b=[0.]), tf.constant([3.4]), beta1=0.9, beta2=0.999,
      epsilon=1e-7, max_trust_ratio=10, decay_lambda=0, stop_gradients=True)
  _assert_tree_close(w_new, dict(a=[-0.708, 1.29, 3.29], b=[1.45, 2.45, 0.445]), DOC_RTOL)
  _assert_tree_close(mw, dict(a=[0.02, 0.03, 0.06], b=[0.06, 0.04, 0.07]), 1e-6)
  _assert_tree_close(vw, dict(a=[4.0e-05, 9.0e-05, 3.6e-04], b=[0.00036, 0.00016, 0.00049]), 1e-6)
  assert w_new["a"].dtype == tf.float32  # ivy promotes to float64 here; we keep w's dtype.


def test_doc_lars_update():
  w = c(a=[3.2, 2.6, 1.3], b=[1.4, 3.1, 5.1])
  _assert_tree_close(l2l.lars_update(w, tf.constant([0.2, 0.4, 0.1]), tf.constant(0.1)),
                     dict(a=[3.01132035, 2.22264051, 1.2056601],
                          b=[1.1324538, 2.56490755, 4.96622658]), 1e-6)
  _assert_tree_close(l2l.lars_update(w, c(a=[0.2, 0.4, 0.1], b=[0.3, 0.1, 0.2]), tf.constant(0.1)),
                     dict(a=[3.01132035, 2.22264051, 1.2056601],
                          b=[0.90848625, 2.93616199, 4.77232409]), 1e-6)


def test_doc_optimizer_update_and_stop_gradient():
  w = c(a=[0., 1., 2.], b=[3., 4., 5.])
  for grad, lr in ((tf.constant([0., 0., 0.]), 3e-4), (c(a=[0.] * 3, b=[0.] * 3), 3e-4),
                   (c(a=[0.] * 3, b=[0.] * 3), tf.constant([3e-4]))):
    _assert_tree_close(l2l.optimizer_update(w, grad, lr), w, 0.0)
  _assert_tree_close(l2l.stop_gradient(w, preserve_type=False), w, 0.0)
  _assert_tree_close(l2l.stop_gradient(w, preserve_type=True), w, 0.0)


# --- independent checks --------------------------------------------------------------------------


def _adam_np(g, m, v, step, b1=0.9, b2=0.999, eps=1e-7):
  m = b1 * m + (1 - b1) * g
  v = b2 * v + (1 - b2) * g * g
  alpha = np.sqrt(1 - b2 ** step) / (1 - b1 ** step + eps)
  return alpha * m / (np.sqrt(v) + eps), m, v


def test_adam_update_float64_matches_numpy_over_steps():
  rng = np.random.default_rng(1)
  w = {"layer": {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=(2,))}}
  m = {"layer": {"w": np.zeros((3, 2)), "b": np.zeros(2)}}
  v = {"layer": {"w": np.zeros((3, 2)), "b": np.zeros(2)}}
  w_ref = {k: x.copy() for k, x in w["layer"].items()}
  m_ref = {k: x.copy() for k, x in m["layer"].items()}
  v_ref = {k: x.copy() for k, x in v["layer"].items()}
  for step in range(1, 4):
    g = {"layer": {k: rng.normal(size=x.shape) for k, x in w_ref.items()}}
    w, m, v = l2l.adam_update(w, g, 0.01, m, v, step)
    for k in w_ref:
      d, m_ref[k], v_ref[k] = _adam_np(g["layer"][k], m_ref[k], v_ref[k], step)
      w_ref[k] = w_ref[k] - 0.01 * d
  for k in w_ref:
    assert w["layer"][k].dtype == tf.float64
    np.testing.assert_allclose(w["layer"][k], w_ref[k], rtol=1e-12)
    np.testing.assert_allclose(m["layer"][k], m_ref[k], rtol=1e-12)


def test_lars_with_weight_decay_is_standard_lars():
  rng = np.random.default_rng(2)
  w, g, lam, lr = rng.normal(size=5), rng.normal(size=5), 0.01, 0.1
  trust = np.linalg.norm(w) / (np.linalg.norm(g) + lam * np.linalg.norm(w))
  expected = w - lr * trust * (g + lam * w)
  np.testing.assert_allclose(l2l.lars_update(w, g, lr, decay_lambda=lam), expected, rtol=1e-10)


def test_lamb_with_weight_decay_applies_decay_to_weights():
  rng = np.random.default_rng(3)
  w, g, lam, lr = rng.normal(size=4), rng.normal(size=4), 0.1, 0.05
  d, _, _ = _adam_np(g, 0.0, 0.0, 1)
  u = d + lam * w
  r = min(np.linalg.norm(w) / np.linalg.norm(u), 10)
  w_new, _, _ = l2l.lamb_update(w, g, lr, 0.0, 0.0, 1, decay_lambda=lam)
  np.testing.assert_allclose(w_new, w - lr * r * u, rtol=1e-12)


def test_lamb_leaves_zero_weights_unchanged_and_caps_trust_ratio():
  w = {"zero": np.zeros(3, np.float32), "big": np.full(3, 1e6, np.float32)}
  w_new, _, _ = l2l.lamb_update(w, np.ones(3, np.float32), 1.0, 0.0, 0.0, 1, max_trust_ratio=10)
  np.testing.assert_array_equal(w_new["zero"], 0.0)
  d, _, _ = _adam_np(np.ones(3), 0.0, 0.0, 1)
  np.testing.assert_allclose(w_new["big"], 1e6 - 10 * d, rtol=1e-6)


def test_per_leaf_learning_rate_dict():
  w = c(a=[1., 1.], b=[1., 1.])
  out = l2l.gradient_descent_update(w, 1.0, {"a": 0.1, "b": 0.5})
  _assert_tree_close(out, dict(a=[0.9, 0.9], b=[0.5, 0.5]))


def test_single_tensor_in_single_tensor_out_and_lists():
  out = l2l.gradient_descent_update(tf.constant([1., 2.]), tf.constant([1., 1.]), 0.5)
  assert isinstance(out, tf.Tensor)
  np.testing.assert_allclose(out, [0.5, 1.5])
  out = l2l.gradient_descent_update([tf.constant(1.), tf.constant(2.)], [1., 2.], 0.5)
  assert isinstance(out, list) and len(out) == 2
  np.testing.assert_allclose([out[0], out[1]], [0.5, 1.0])


def test_float32_stays_float32_with_python_and_numpy_arguments():
  w = {"a": tf.constant([1., 2.])}
  for out in (l2l.lars_update(w, np.array([0.1, 0.2]), 0.1, decay_lambda=0.01),
              l2l.lamb_update(w, np.array([0.1, 0.2]), 0.1, 0.0, 0.0, 1)[0],
              l2l.adam_update(w, np.array([0.1, 0.2]), 0.1, 0.0, 0.0, 1)[0]):
    assert out["a"].dtype == tf.float32


def test_stop_gradients_only_detaches():
  w = tf.Variable([1., 2.])
  for stop in (True, False):
    with tf.GradientTape() as tape:
      out = l2l.lars_update({"w": w}, {"w": w * 0.5}, 0.1, stop_gradients=stop)["w"]
      loss = tf.reduce_sum(out)
    grad = tape.gradient(loss, w)
    assert (grad is None) == stop
    np.testing.assert_allclose(out, l2l.lars_update({"w": w}, {"w": w * 0.5}, 0.1)["w"])


def test_updates_inside_tf_function_match_eager():
  w, g = c(a=[1., 2.], b=[3., 4.]), c(a=[0.1, 0.2], b=[0.3, 0.4])
  fn = lambda w, g: l2l.lamb_update(w, g, 0.1, 0.0, 0.0, 2, decay_lambda=0.01)
  for compiled, eager in zip(tf.function(fn)(w, g), fn(w, g)):
    _assert_tree_close(compiled, eager, 1e-6)


# --- bad input -----------------------------------------------------------------------------------


def test_mismatched_structure_names_the_key_chain():
  w = {"layer": {"w": tf.ones(2), "b": tf.ones(2)}}
  with pytest.raises(ValueError, match=r"\['layer/b'\] of w are missing from dcdw"):
    l2l.gradient_descent_update(w, {"layer": {"w": tf.ones(2)}}, 0.1)
  with pytest.raises(ValueError, match=r"\['layer/c'\] of mw_tm1 are not in w"):
    l2l.adam_update(w, 1.0, 0.1, {"layer": {"w": 0., "b": 0., "c": 0.}}, 0.0, 1)


def test_structured_argument_for_single_tensor_is_rejected():
  with pytest.raises(ValueError, match="dcdw is a nested structure but w is a single tensor"):
    l2l.gradient_descent_update(tf.ones(2), {"a": tf.ones(2)}, 0.1)


def test_empty_structure_is_rejected():
  with pytest.raises(ValueError, match="w is an empty structure"):
    l2l.gradient_descent_update({}, 1.0, 0.1)
