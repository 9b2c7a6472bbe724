"""Variable interception: record, substitute, re-initialise, and each pitfall of the mechanism."""

import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

from l2l import variables
from problems import quadratic


def mlp_problem():
  x = tf.ones([4, 3])

  def make_loss():
    net = snt.nets.MLP([5, 1], name="mlp")
    scale = tf.Variable(lambda: tf.constant(2.0), trainable=False, name="scale")
    return tf.reduce_mean(net(x)) * scale

  return make_loss


def test_record_separates_trainable_and_constants():
  record = variables.record_variables(quadratic.quadratic(batch_size=3, num_dims=2))
  assert [v.name for v in record.trainable] == ["x:0"]
  assert [v.name for v in record.constants] == ["w:0", "y:0"]
  assert all(not v.trainable for v in record.variables)
  record = variables.record_variables(mlp_problem())
  assert record.trainable_names() == ["mlp/linear_0/w", "mlp/linear_0/b", "mlp/linear_1/w",
                                      "mlp/linear_1/b"]
  assert [v.name for v in record.constants] == ["scale:0"]


def test_substitution_gives_the_loss_of_the_supplied_tensors_and_its_gradients():
  make_loss = quadratic.quadratic(batch_size=3, num_dims=2)
  record = variables.record_variables(make_loss)
  w, y = (v.numpy() for v in record.constants)
  x = tf.constant(np.random.default_rng(0).normal(size=(3, 2)), tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = variables.loss_with_custom_variables(make_loss, record, [x])
  expected = np.mean(np.sum((np.einsum("bij,bj->bi", w, x.numpy()) - y) ** 2, 1))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  residual = np.einsum("bij,bj->bi", w, x.numpy()) - y
  np.testing.assert_allclose(tape.gradient(loss, x),
                             2 * np.einsum("bij,bi->bj", w, residual) / 3, rtol=1e-5)


def test_substitution_works_for_sonnet_modules_inside_tf_function():
  make_loss = mlp_problem()
  record = variables.record_variables(make_loss)
  zeros = [tf.zeros_like(v) for v in record.trainable]
  loss = tf.function(lambda xs: variables.loss_with_custom_variables(make_loss, record, xs))(zeros)
  assert float(loss) == 0.0


def test_module_cached_outside_make_loss_is_a_clear_error():
  x = tf.ones([2, 3])
  cache = {}

  def make_loss():  # Builds its module once and then reuses it: substitution would miss it.
    if "net" not in cache:
      cache["net"] = snt.Linear(1)
    return tf.reduce_sum(cache["net"](x))

  record = variables.record_variables(make_loss)
  with pytest.raises(ValueError, match=r"created 0 variables, 2 when it was recorded.* build every "
                                       r"module and variable inside make_loss"):
    variables.loss_with_custom_variables(make_loss, record, [tf.zeros([3, 1]), tf.zeros([1])])


def test_module_built_before_make_loss_is_a_clear_error():
  net = snt.Linear(1, name="outside")
  net(tf.ones([2, 3]))

  def make_loss():
    x = tf.Variable(lambda: tf.ones([2, 3]), name="x")
    return tf.reduce_sum(net(x))

  with pytest.raises(ValueError, match=r"reads trainable variables \['outside/w:0', 'outside/b:0'\] "
                                       r"that it did not create.* Build every module and variable "
                                       r"inside make_loss"):
    variables.record_variables(make_loss)


def test_lazily_created_global_state_is_a_clear_error():
  def make_loss():  # The global generator's state variable is created on the first call only.
    x = tf.Variable(lambda: tf.ones([3]), name="x")
    return tf.reduce_sum(tf.square(x + tf.random.get_global_generator().normal([3])))

  tf.random.set_global_generator(None)  # So that the first make_loss call creates it.
  record = variables.record_variables(make_loss)
  with pytest.raises(ValueError, match=r"created 1 variables, 2 when it was recorded.*"
                                       r"tf.random.get_global_generator\(\)"):
    variables.loss_with_custom_variables(make_loss, record, [tf.zeros([3])])


def test_shape_and_dtype_are_checked():
  make_loss = quadratic.quadratic(batch_size=3, num_dims=2)
  record = variables.record_variables(make_loss)
  with pytest.raises(ValueError, match=r"has shape \(3, 2\), the tensor supplied for it \(2, 3\)"):
    variables.loss_with_custom_variables(make_loss, record, [tf.zeros([2, 3])])
  with pytest.raises(ValueError, match="has dtype float32, the tensor supplied for it float64"):
    variables.loss_with_custom_variables(make_loss, record, [tf.zeros([3, 2], tf.float64)])


def test_record_inside_tf_function_is_refused():
  with pytest.raises(RuntimeError, match="eagerly"):
    tf.function(lambda: variables.record_variables(quadratic.simple()))()


def test_reinitialize_draws_a_fresh_problem_inside_tf_function():
  make_loss = quadratic.quadratic(batch_size=3, num_dims=2)
  record = variables.record_variables(make_loss)
  before = [v.numpy() for v in record.variables]
  tf.function(lambda: variables.reinitialize(make_loss, record))()
  after = [v.numpy() for v in record.variables]
  assert all(not np.allclose(a, b) for a, b in zip(before, after))
  targets = [tf.Variable(tf.zeros([3, 2]))]
  variables.reinitialize(make_loss, record, trainable_targets=targets)
  assert np.abs(targets[0].numpy()).max() > 0  # The fresh x went to the target.
  np.testing.assert_array_equal(record.trainable[0].numpy(), after[0])


def test_duplicate_names_are_rejected_for_assignment():
  def make_loss():
    a = tf.Variable(lambda: tf.ones([]), name="x")
    b = tf.Variable(lambda: tf.ones([]), name="x")
    return a * b
  with pytest.raises(ValueError, match=r"duplicate names \['x'\]"):
    variables.record_variables(make_loss).trainable_names()


def test_substituted_gradients_equal_real_variable_gradients():
  x = tf.random.stateless_normal([4, 3], seed=[0, 1])
  init = lambda shape, dtype: tf.random.stateless_normal(shape, [len(shape), shape[-1]], dtype=dtype)

  def make_loss():
    hidden = tf.tanh(snt.Linear(5, w_init=init, b_init=init, name="l1")(x))
    return tf.reduce_mean(tf.square(snt.Linear(1, w_init=init, b_init=init, name="l2")(hidden)))

  with tf.GradientTape() as tape:  # Plain TF: real trainable variables.
    real_loss = make_loss()
  real_variables = tape.watched_variables()
  real_grads = tape.gradient(real_loss, real_variables)
  record = variables.record_variables(make_loss)
  tensors = [tf.constant(v) for v in record.trainable]
  with tf.GradientTape() as tape:
    tape.watch(tensors)
    loss = variables.loss_with_custom_variables(make_loss, record, tensors)
  assert [v.shape for v in real_variables] == [t.shape for t in tensors]
  np.testing.assert_allclose(loss, real_loss, rtol=1e-6)
  for grad, real in zip(tape.gradient(loss, tensors), real_grads):
    np.testing.assert_allclose(grad, real, rtol=1e-6)


def test_variable_only_api_on_a_substituted_variable_is_explained():
  def make_loss():
    x = tf.Variable(lambda: tf.ones([2]), name="x")
    x.assign_add(tf.ones([2]))
    return tf.reduce_sum(x)

  record = variables.record_variables(make_loss)
  with pytest.raises(TypeError, match=r"tf.Variable-only API on a substituted variable .*"
                                      r"assign_add.*module attributes such as lin.w"):
    variables.loss_with_custom_variables(make_loss, record, [tf.zeros([2])])


def test_reinitialize_draws_fresh_sonnet_module_weights():
  x = tf.ones([2, 3])
  make_loss = lambda: tf.reduce_sum(snt.Linear(4, name="lin")(x))
  record = variables.record_variables(make_loss)
  before = record.trainable[0].numpy()
  variables.reinitialize(make_loss, record)
  after = record.trainable[0].numpy()
  assert after.shape == (3, 4) and not np.allclose(before, after)
