"""Celo against trajectories recorded with its authors' code and its published weights.

The fixtures (``tests/fixtures/celo``): ``celo_trajectory*.npz`` train a small MLP for 50 steps
(one with biases starting at exactly 0); ``celo_shapes_fixture.npz`` drives tensors of shapes
(3,3,4,8), (5,7,7), (6,6), () and (9,1) with random gradients, one gradient entry of 5000 (the
±1000 clip) and a loss spike. Each records, per step, the gradients and loss fed in and the
parameters after the step (and, for the trajectories, the scheduler's inputs, the learning-rate
multiplier and every accumulator).
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import l2l
from l2l.nets import celo

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "celo")
TRAJECTORIES = ("celo_trajectory.npz", "celo_trajectory_zero_bias.npz", "celo_shapes_fixture.npz")


def _fixture(name: str) -> dict[str, np.ndarray]:
  with np.load(os.path.join(FIXTURES, name)) as arrays:
    return dict(arrays)


def _published(num_steps: int) -> celo.Celo:
  return l2l.MetaOptimizer.load("celo", num_steps=num_steps).nets["celo"]


def test_shipped_weights_are_the_published_ones():
  net = _published(1000)
  for name, value in celo.published_weights(_fixture("celo_theta.npz")).items():
    np.testing.assert_array_equal(getattr(net, name).numpy(), value, err_msg=name)
  assert net.num_steps == 1000 and _published(77).num_steps == 77


@pytest.mark.parametrize("shape, dims", [((8, 16), (1, 0)), ((16, 4), (0, 1)),
                                         ((3, 3, 4, 8), (3, 2)), ((5, 7, 7), (2, 1)),
                                         ((9, 1), (0, 1)), ((7,), None), ((), None)])
def test_factored_dims_follow_a_stable_sort(shape, dims):
  assert celo.factored_dims(shape) == dims


@pytest.mark.parametrize("name", TRAJECTORIES)
def test_every_step_of_the_recorded_trajectories(name):
  """Teacher-forced: each step starts from the recorded parameters, the state is our own."""
  fixture = _fixture(name)
  keys = sorted(k[len("init/"):] for k in fixture if k.startswith("init/"))
  net = _published(int(fixture["num_steps"]))
  state = net.initial_state([fixture[f"init/{k}"].shape for k in keys])
  params = [fixture[f"init/{k}"] for k in keys]
  step_fn = tf.function(net.updates)
  for t, loss in enumerate(fixture["loss"]):
    if "lstm_input" in fixture:
      _, lstm_input = net._scheduler_input(tf.constant(loss), state)
      np.testing.assert_allclose(lstm_input, fixture["lstm_input"][t], atol=1e-6)
    grads = [tf.constant(fixture[f"grads/{k}"][t]) for k in keys]
    updates, state = step_fn([tf.constant(p) for p in params], grads, tf.constant(loss), state)
    for k, p, update in zip(keys, params, updates):
      expected = fixture[f"params/{k}"][t]
      step_size = np.abs(expected - p).max()
      np.testing.assert_allclose(p + update.numpy(), expected, rtol=0,
                                 atol=max(1e-6, 1e-4 * step_size), err_msg=f"{k} at step {t}")
    if "lr_mult" in fixture:
      h, _ = state["lstm"]
      rate = 0.1 * np.exp(h.numpy() @ net.rate_w.numpy() + net.rate_b.numpy()).item()
      np.testing.assert_allclose(rate, fixture["lr_mult"][t][0], rtol=1e-5)
      np.testing.assert_allclose(state["loss_buffer"][0], fixture["state/loss_buffer/means"][t],
                                 rtol=1e-5)
      for k, accumulators in zip(keys, state["tensors"]):
        mom, rms, *factored = accumulators
        # Ours keep the three decays on a leading axis, the published code on a trailing one.
        np.testing.assert_allclose(np.moveaxis(mom, 0, -1), fixture[f"state/mom/{k}"][t],
                                   rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(rms[..., None], fixture[f"state/rms/{k}"][t], rtol=1e-4,
                                   atol=1e-12)
        names = ("fac_v_diag",) if len(factored) == 1 else ("fac_v_row", "fac_v_col")
        for name_, value in zip(names, factored):
          np.testing.assert_allclose(np.moveaxis(value, 0, -1), fixture[f"state/{name_}/{k}"][t],
                                     rtol=1e-4, atol=1e-12)
    params = [fixture[f"params/{k}"][t] for k in keys]


def _mlp_loss(params, x, y):
  w0, b0, w1, b1 = params
  logits = tf.nn.relu(x @ w0 + b0) @ w1 + b1
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))


def test_learned_optimizer_loaded_by_name_trains_the_recorded_mlp_as_recorded():
  """Closed loop: the gradients and losses are our own, 50 steps of apply(..., loss=loss)."""
  fixture = _fixture("celo_trajectory.npz")
  keys = ("w0", "b0", "w1", "b1")
  params = [tf.Variable(fixture[f"init/{k}"]) for k in keys]
  optimizer = l2l.LearnedOptimizer.load("celo", num_steps=50)

  @tf.function
  def train_step():
    with tf.GradientTape() as tape:
      loss = _mlp_loss(params, fixture["x"], fixture["y"])
    optimizer.apply(tape.gradient(loss, params), params, loss=loss)
    return loss

  losses = [float(train_step()) for _ in range(50)]
  np.testing.assert_allclose(losses, fixture["loss"], rtol=1e-4)
  np.testing.assert_allclose(float(_mlp_loss(params, fixture["x"], fixture["y"])),
                             fixture["final_loss"], rtol=1e-4)
  for k, p in zip(keys, params):
    np.testing.assert_allclose(p.numpy(), fixture[f"params/{k}"][-1], atol=1e-5, err_msg=k)
  with pytest.raises(ValueError, match="Celo reads the loss: pass it"):
    optimizer.apply([tf.zeros_like(p) for p in params], params)


def test_keras_optimizer_loaded_by_name_trains_the_recorded_mlp_as_recorded():
  """model.fit, full batch: Keras' loss reaches Celo through scale_loss, one step for all."""
  fixture = _fixture("celo_trajectory.npz")
  model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dense(4)])
  model.set_weights([fixture[f"init/{k}"] for k in ("w0", "b0", "w1", "b1")])
  model.compile(optimizer=l2l.KerasLearnedOptimizer.load("celo", num_steps=50),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  history = model.fit(fixture["x"], fixture["y"], batch_size=64, epochs=50, shuffle=False,
                      verbose=0)
  np.testing.assert_allclose(history.history["loss"], fixture["loss"], rtol=1e-4)
  for k, value in zip(("w0", "b0", "w1", "b1"), model.get_weights()):
    np.testing.assert_allclose(value, fixture[f"params/{k}"][-1], atol=1e-5, err_msg=k)


def test_the_adam_start_steps_by_the_momentum_over_rms_relative_to_the_tensor_scale():
  """start="adam": step = -0.01 · RMS(p) · f / RMS(f), f = m / sqrt(v + 1e-6) after one step
  (m = 0.1 g, v = 0.001 g²), for a factored (2-D) and an unfactored (1-D) tensor."""
  net = celo.Celo(num_steps=100, start="adam", relative_learning_rate=0.01)
  rng = np.random.RandomState(0)
  params = [tf.constant(rng.randn(5, 3).astype(np.float32)),
            tf.constant(rng.randn(4).astype(np.float32))]
  grads = [tf.constant(rng.randn(5, 3).astype(np.float32)),
           tf.constant(rng.randn(4).astype(np.float32))]
  steps, _ = net.updates(params, grads, tf.constant(1.0), net.initial_state([[5, 3], [4]]))
  for p, g, step in zip(params, grads, steps):
    f = 0.1 * g.numpy() / np.sqrt(0.001 * g.numpy() ** 2 + 1e-6)
    expected = -0.01 * np.sqrt(np.mean(p.numpy() ** 2) + 1e-9) * f / np.sqrt(
        1e-5 + np.mean(f ** 2))
    np.testing.assert_allclose(step, expected, rtol=1e-4)
  with pytest.raises(ValueError, match="Unknown start 'adam2'"):
    celo.Celo(start="adam2")


def test_a_state_told_its_horizon_steps_as_a_net_planned_for_it():
  """``with_horizon`` (what meta-training does per task) equals building the net for that horizon:
  the fraction-of-training and loss-timescale features follow the task's own horizon; the
  untold state (planned for 1000 steps) steps differently."""
  shapes, rng = [(4, 3), (3,)], np.random.default_rng(0)
  short, planned = _published(50), _published(1000)
  nets = (short, planned, planned)
  states = [short.initial_state(shapes), planned.with_horizon(planned.initial_state(shapes), 50),
            planned.initial_state(shapes)]
  params = [tf.constant(rng.normal(size=s), tf.float32) for s in shapes]
  for t in range(30):
    grads = [tf.constant(rng.normal(size=s), tf.float32) for s in shapes]
    loss = tf.constant(2.0 / (1 + t), tf.float32)
    steps = []
    for k, net in enumerate(nets):
      step, states[k] = net.updates(params, grads, loss, states[k])
      steps.append(step)
    for x, y in zip(steps[0], steps[1]):
      np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)
    params = [p + u for p, u in zip(params, steps[0])]
  assert not np.allclose(steps[2][0], steps[0][0], rtol=1e-3)


def test_the_shipped_general_optimizer_loads_by_name_for_the_planned_horizon():
  """``"general"`` (Celo's architecture, meta-trained by l2l) loads by name in both front ends;
  ``num_steps`` is the horizon in its state, and a Keras ``fit`` with it lowers the loss."""
  net = l2l.MetaOptimizer.load("general", num_steps=300).nets["celo"]
  assert net.num_steps == 300 and float(net.initial_state([[2]])["num_steps"]) == 300.0
  optimizer = l2l.LearnedOptimizer.load("general", num_steps=300)
  variable = tf.Variable([[1.0, -2.0], [0.5, 3.0]])
  optimizer.apply([tf.constant([[0.5, -0.5], [1.0, 1.0]])], [variable], loss=tf.constant(1.0))
  assert np.all(np.isfinite(variable.numpy())) and not np.allclose(variable.numpy(),
                                                                    [[1.0, -2.0], [0.5, 3.0]])
  rng = np.random.default_rng(0)
  x = rng.normal(size=(256, 8)).astype(np.float32)
  y = (x @ rng.normal(size=(8, 1))).astype(np.float32)
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dense(1)])
  model.compile(optimizer=l2l.KerasLearnedOptimizer.load("general", num_steps=50), loss="mse")
  history = model.fit(x, y, batch_size=256, epochs=50, verbose=0).history["loss"]
  # Measured: 5.48 -> 0.027 (Adam 1e-3 on the same model and steps: 5.48 -> 3.76).
  assert history[-1] < 0.05 * history[0], history[::10]
