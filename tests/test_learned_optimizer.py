"""A trained optimizer on user models: snt-style apply and Keras, against the meta-training unroll."""

import keras
import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

import l2l
from l2l import variables as variables_lib
from problems import quadratic


def _save_random(path, **net_config):
  """Saves a MetaOptimizer of ``net_config`` with random, non-trivial weights."""
  optimizer = l2l.MetaOptimizer(**net_config)
  optimizer.meta_loss(quadratic.simple(), 1)
  tf.random.set_seed(1)
  for v in optimizer.trainable_variables:
    v.assign(tf.random.normal(v.shape, stddev=0.5))
  optimizer.save(str(path))
  return path


@pytest.fixture(scope="module")
def saved_lstm(tmp_path_factory):
  """A saved original-preset-like optimizer (large output scale)."""
  return _save_random(tmp_path_factory.mktemp("lstm"), cw={
      "net": "CoordinateWiseDeepLSTM", "net_options": {
          "layers": [8, 8], "preprocess_name": "LogAndSign", "preprocess_options": {"k": 5},
          "scale": 0.1}})


@pytest.fixture(scope="module")
def saved_nn_adam(tmp_path_factory):
  """A saved NNAdam (one LSTM over all coordinates' statistics)."""
  return _save_random(tmp_path_factory.mktemp("nn_adam"), nn={
      "net": "NNAdam", "net_options": {"learning_rate": 0.1, "layers": [8]}})


@pytest.mark.parametrize("saved", ["saved_lstm", "saved_nn_adam"])
def test_apply_reproduces_the_meta_training_unroll(saved, request):
  """T steps of LearnedOptimizer.apply on real variables = one unroll of the MetaOptimizer."""
  saved = request.getfixturevalue(saved)
  make_loss = quadratic.quadratic(batch_size=3, num_dims=4)
  ops = l2l.MetaOptimizer.load(str(saved)).meta_loss(make_loss, 6)
  ops.reset()
  record = variables_lib.record_variables(make_loss)
  for mine, theirs in zip(record.constants, ops.constants):
    mine.assign(theirs)  # The same problem: W and y.
  model = [tf.Variable(v) for v in ops.x]  # The same start.
  start = [v.numpy() for v in model]
  ops.loss()
  ops.update()
  optimizer = l2l.LearnedOptimizer.load(str(saved))
  step = tf.function(lambda: optimizer.apply(_grads(make_loss, record, model), model))
  for _ in range(6):
    step()
  for mine, unrolled, x0 in zip(model, ops.x, start):
    assert np.abs(mine.numpy() - x0).max() > 1e-3  # It moved.
    np.testing.assert_allclose(mine.numpy(), unrolled.numpy(), rtol=1e-5, atol=1e-6)
  optimizer.reset()
  for state, initial in zip(tf.nest.flatten(optimizer.states),
                            tf.nest.flatten(optimizer._initial_states)):
    np.testing.assert_array_equal(state.numpy(), initial.numpy())


def _grads(make_loss, record, model):
  with tf.GradientTape() as tape:
    loss = variables_lib.loss_with_custom_variables(make_loss, record, model)
  return tape.gradient(loss, model)


def test_sgd_net_on_a_sonnet_mlp_is_sgd():
  mlp = snt.nets.MLP([5, 3])
  x = tf.random.normal([4, 2])
  mlp(x)
  reference = [tf.Variable(v) for v in mlp.trainable_variables]
  optimizer = l2l.LearnedOptimizer(l2l.MetaOptimizer(
      cw={"net": "Sgd", "net_options": {"learning_rate": 0.1}}).nets)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(mlp(x) ** 2)
  grads = tape.gradient(loss, mlp.trainable_variables)
  optimizer.apply(grads, mlp.trainable_variables)
  for v, r, g in zip(mlp.trainable_variables, reference, grads):
    np.testing.assert_allclose(v.numpy(), r.numpy() - 0.1 * g.numpy(), rtol=1e-6)
  with pytest.raises(ValueError, match="apply got 1 updates for 4 parameters"):
    optimizer.apply(grads[:1], mlp.trainable_variables)


def test_several_nets_need_net_for():
  nets = l2l.MetaOptimizer(a={"net": "Sgd"}, b={"net": "Sgd"}).nets
  with pytest.raises(ValueError, match="pass net_for=lambda variable: key"):
    l2l.LearnedOptimizer(nets)
  optimizer = l2l.LearnedOptimizer(nets, net_for=lambda v: "c")
  with pytest.raises(ValueError, match=r"returned 'c'; the nets are \['a', 'b'\]"):
    optimizer.apply([tf.ones([2])], [tf.Variable(tf.ones([2]))])


def test_keras_optimizer_matches_apply(saved_lstm):
  keras.utils.set_random_seed(0)
  data = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
  target = data.sum(1, keepdims=True)
  models = []
  for _ in range(2):
    keras.utils.set_random_seed(0)
    models.append(keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                                    keras.layers.Dense(1)]))
  keras_model, snt_model = models
  keras_model.compile(optimizer=l2l.KerasLearnedOptimizer.load(str(saved_lstm)), loss="mse")
  history = keras_model.fit(data, target, batch_size=16, epochs=5, shuffle=False, verbose=0)
  optimizer = l2l.LearnedOptimizer.load(str(saved_lstm))
  for _ in range(5):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean((snt_model(data) - target) ** 2)
    optimizer.apply(tape.gradient(loss, snt_model.trainable_variables),
                    snt_model.trainable_variables)
  for a, b in zip(keras_model.trainable_variables, snt_model.trainable_variables):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  assert history.history["loss"][-1] != history.history["loss"][0]


def _keras_model(optimizer):
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                            keras.layers.Dense(1)])
  model.compile(optimizer=optimizer, loss="mse")
  return model


def test_keras_model_saved_and_loaded_trains_on_as_if_never_interrupted(saved_lstm, tmp_path):
  data = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
  target = data.sum(1, keepdims=True)
  fit = dict(batch_size=16, shuffle=False, verbose=0)
  uninterrupted = _keras_model(l2l.KerasLearnedOptimizer.load(str(saved_lstm)))
  uninterrupted.fit(data, target, epochs=5, **fit)
  first = _keras_model(l2l.KerasLearnedOptimizer.load(str(saved_lstm)))
  first.fit(data, target, epochs=3, **fit)
  first.save(tmp_path / "m.keras")
  loaded = keras.models.load_model(tmp_path / "m.keras")  # No custom_objects needed.
  assert isinstance(loaded.optimizer, l2l.KerasLearnedOptimizer)
  assert int(loaded.optimizer.iterations) == 6
  loaded.fit(data, target, epochs=2, **fit)
  for a, b in zip(uninterrupted.trainable_variables, loaded.trainable_variables):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
  # Without the saved state (fresh LSTM states) the same 2 epochs end elsewhere.
  fresh = _keras_model(l2l.KerasLearnedOptimizer.load(str(saved_lstm)))
  fresh.set_weights(first.get_weights())
  fresh.fit(data, target, epochs=2, **fit)
  assert max(np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in
             zip(uninterrupted.trainable_variables, fresh.trainable_variables)) > 1e-5


def test_keras_optimizer_config_rebuilds_the_nets():
  optimizer = l2l.KerasLearnedOptimizer(l2l.MetaOptimizer.from_preset("nnadam").nets)
  config = optimizer.get_config()
  assert config["nets"] == l2l.PRESETS["nnadam"]
  rebuilt = l2l.KerasLearnedOptimizer.from_config(config)
  assert type(rebuilt._nets["nnadam"]).__name__ == "NNAdam"
  several = l2l.KerasLearnedOptimizer(l2l.MetaOptimizer(a={"net": "Sgd"}, b={"net": "Sgd"}).nets,
                                      net_for=lambda v: "a")
  with pytest.raises(ValueError, match="several nets and a net_for function cannot be serialized"):
    several.get_config()


def test_apply_refuses_other_variables_than_its_first_call():
  optimizer = l2l.LearnedOptimizer(l2l.MetaOptimizer(
      cw={"net": "Adam", "net_options": {"learning_rate": 0.1}}).nets)
  a, b = tf.Variable(tf.ones([2]), name="a"), tf.Variable(tf.ones([2]), name="b")
  optimizer.apply([tf.ones([2])], [a])
  with pytest.raises(ValueError, match=r"apply got 1 variables \['b:0'\], not the 1 it was first "
                     r"called with \['a:0'\]"):
    optimizer.apply([tf.ones([2])], [b])  # Same shape: would silently take a's Adam state.
  with pytest.raises(ValueError, match="not the 1 it was first called with"):
    optimizer.apply([tf.ones([2]), tf.ones([2])], [a, b])
  optimizer.apply([tf.ones([2])], [a])  # The first list still works.


def test_embedding_gradients_arrive_as_indexed_slices_and_are_applied_densely():
  embed = snt.Embed(5, 3)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(embed(tf.constant([1, 1, 3])) ** 2)
  (grad,) = tape.gradient(loss, embed.trainable_variables)
  assert isinstance(grad, tf.IndexedSlices)
  before = embed.embeddings.numpy()
  optimizer = l2l.LearnedOptimizer.load("celo", num_steps=10)
  tf.function(lambda: optimizer.apply([grad], embed.trainable_variables, loss=loss))()
  moved = np.abs(embed.embeddings.numpy() - before).max(axis=1) > 0
  assert moved[[1, 3]].all()  # The looked-up rows move (Celo also moves rows without gradient).
