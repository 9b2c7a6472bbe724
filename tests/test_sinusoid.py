"""The sine-wave problem and the Reptile / MAML training built on the library's steps."""

import json

import numpy as np
import pytest
import tensorflow as tf

from problems import sinusoid_training
from problems import sinusoid


def test_task_distribution_matches_the_demo():
  amplitude, phase = sinusoid.sample_tasks(np.random.RandomState(0), 1000)
  assert 0.1 <= amplitude.min() and amplitude.max() <= 5.0
  assert 0.0 <= phase.min() and phase.max() <= 2 * np.pi
  # The demo draws phase first, then amplitude, from one RandomState.
  rng = np.random.RandomState(0)
  assert phase[0] == np.float32(rng.uniform(0, 2 * np.pi))
  assert amplitude[0] == np.float32(rng.uniform(0.1, 5))


def test_initialisation_is_the_demos_pytorch_initialisation():
  # PyTorch's published outputs: torch.manual_seed(0); torch.rand(5), and the weight and bias of
  # torch.manual_seed(0); nn.Linear(1, 1): the first two U(-1, 1) draws of the demo's first layer.
  unit = sinusoid._torch_uniform(np.random.RandomState(0), (5,), 0.5) + 0.5
  np.testing.assert_allclose(unit, [0.4963, 0.7682, 0.0885, 0.1320, 0.3074], atol=1e-4)
  params = sinusoid.init_params(0)
  np.testing.assert_allclose(params["linear_0"]["w"][0, :2], [-0.0075, 0.5364], atol=1e-4)
  for name, fan_in, shape in (("linear_0", 1, (1, 64)), ("linear_1", 64, (64, 64)),
                              ("linear_2", 64, (64, 1))):
    w = params[name]["w"].numpy()
    assert w.shape == shape and np.abs(w).max() <= 1 / np.sqrt(fan_in)
    assert np.abs(w).max() > 0.9 / np.sqrt(fan_in)  # Uniform over the whole range.


def test_module_and_functional_forward_agree():
  model = sinusoid.SineMLP(seed=3)
  x = tf.constant(sinusoid.X_ALL)
  np.testing.assert_allclose(model(x), sinusoid.forward(sinusoid.init_params(3), x), rtol=1e-6)
  assert model(x).shape == (50, 1)
  assert len(model.trainable_variables) == 6


@pytest.mark.parametrize("algorithm, variant, outer_lr", [
    ("reptile", "seed", 0.1), ("reptile", "library", 0.1), ("maml", "library", 0.01)])
def test_short_meta_training_improves_few_shot_error(algorithm, variant, outer_lr, tmp_path):
  result = sinusoid_training.train_sinusoid(algorithm, 3000, 2, 5, 0.02, outer_lr, seed=0,
                                         logging_period=1000, variant=variant)
  assert result.iterations_per_second > 0 and result.start_iteration == 0
  before = sinusoid_training.evaluate_sinusoid(sinusoid.init_params(0), 30, [8], 0.02, seed=1)
  after = sinusoid_training.evaluate_sinusoid(result.params, 30, [8], 0.02, seed=1)
  assert after["mse"]["8"]["mean"] < 0.8 * before["mse"]["8"]["mean"]
  sinusoid_training.save(result.params, str(tmp_path), {"problem": "sinusoid", "algorithm": algorithm})
  restored = sinusoid_training.load_params(str(tmp_path))
  for a, b in zip(tf.nest.flatten(restored), tf.nest.flatten(result.params)):
    np.testing.assert_array_equal(a, b)
  assert json.loads((tmp_path / "config.json").read_text())["algorithm"] == algorithm


def test_one_seed_iteration_is_the_demos_interpolation():
  """One iteration against the demo's arithmetic written out in numpy (5 minibatch SGD steps)."""
  tasks = sinusoid_training.draw_tasks(seed=4, num_iterations=1, meta_batch_size=1)
  result = sinusoid_training.train_sinusoid("reptile", 1, 1, 5, 0.02, 0.1, seed=4, variant="seed")
  params = {k: {n: v.numpy().astype(np.float64) for n, v in layer.items()}
            for k, layer in sinusoid.init_params(4).items()}
  order, amplitude, phase = tasks["order"][0, 0], tasks["amplitude"][0, 0], tasks["phase"][0, 0]
  x_all = sinusoid.X_ALL.astype(np.float64)[order]
  y_all = amplitude * np.sin(x_all + phase)
  w = [params[f"linear_{i}"]["w"] for i in range(3)]
  b = [params[f"linear_{i}"]["b"] for i in range(3)]
  before = [p.copy() for p in w + b]
  for start in range(0, 50, 10):
    x, y = x_all[start:start + 10], y_all[start:start + 10]
    h1 = np.tanh(x @ w[0] + b[0])
    h2 = np.tanh(h1 @ w[1] + b[1])
    d_out = 2 * (h2 @ w[2] + b[2] - y) / 10
    d2 = (d_out @ w[2].T) * (1 - h2 ** 2)
    d1 = (d2 @ w[1].T) * (1 - h1 ** 2)
    grads = [x.T @ d1, h1.T @ d2, h2.T @ d_out, d1.sum(0), d2.sum(0), d_out.sum(0)]
    for p, g in zip(w + b, grads):
      p -= 0.02 * g
  expected = [p0 + 0.1 * (p - p0) for p0, p in zip(before, w + b)]  # Outer step 0.1 at iteration 0.
  got = [result.params[f"linear_{i}"]["w"] for i in range(3)]
  got += [result.params[f"linear_{i}"]["b"] for i in range(3)]
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_one_fomaml_iteration_takes_its_outer_gradient_on_unseen_points():
  """FOMAML adapts on the task's first 10 points (in drawn order) and steps along the adapted
  model's gradient on the next 10, computed here with a plain tape."""
  tasks = sinusoid_training.draw_tasks(seed=4, num_iterations=1, meta_batch_size=1)
  result = sinusoid_training.train_sinusoid("fomaml", 1, 1, 5, 0.02, 0.1, seed=4, variant="library")
  x = sinusoid.X_ALL[tasks["order"][0, 0]]
  y = tasks["amplitude"][0, 0] * np.sin(x + tasks["phase"][0, 0])
  theta = sinusoid.init_params(4)

  def gradient(params, points):
    batch = {"x": tf.constant(x[points]), "y": tf.constant(y[points], tf.float32)}
    with tf.GradientTape() as tape:
      tape.watch(params)
      cost = sinusoid.mse_cost(batch, params)
    return tape.gradient(cost, params)

  adapted = theta
  for _ in range(5):
    adapted = tf.nest.map_structure(lambda p, g: p - 0.02 * g, adapted,
                                    gradient(adapted, slice(0, 10)))
  expected = tf.nest.map_structure(lambda p, g: p - 0.1 * g, theta,
                                   gradient(adapted, slice(10, 20)))
  for got, want in zip(tf.nest.flatten(result.params), tf.nest.flatten(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_training_is_deterministic_and_rejects_bad_combinations():
  runs = [sinusoid_training.train_sinusoid("reptile", 300, 1, 5, 0.02, 0.1, seed=2,
                                        logging_period=period) for period in (300, 70)]
  for a, b in zip(tf.nest.flatten(runs[0].params), tf.nest.flatten(runs[1].params)):
    np.testing.assert_array_equal(a, b)  # Also independent of how the loop is chunked.
  with pytest.raises(ValueError, match="variant='seed' is the Reptile demo's algorithm"):
    sinusoid_training.train_sinusoid("maml", 10, 1, 5, 0.02, 0.1, seed=0, variant="seed")
  with pytest.raises(ValueError, match="need a save_path"):
    sinusoid_training.train_sinusoid("reptile", 10, 1, 5, 0.02, 0.1, seed=0, resume=True)


def test_missing_model_path_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"No saved sinusoid model at .*config.json"):
    sinusoid_training.load_params(str(tmp_path / "nothing"))


def test_divergence_stops_with_a_clear_message():
  with pytest.raises(FloatingPointError, match="meta-training diverged"):
    sinusoid_training.train_sinusoid("fomaml", 50, 1, 5, 0.02, 1e4, seed=0, variant="library")


def test_adapted_predictions_give_the_evaluated_errors():
  params = sinusoid.init_params(0)
  task = sinusoid_training.held_out_tasks(1, seed=5)
  predictions = sinusoid_training.adapted_predictions(params, task["x_train"][0], task["y_train"][0],
                                                   8, 0.02)
  assert predictions.shape == (9, 50, 1)
  mse = np.mean(np.square(predictions - task["y_all"][0]), axis=(1, 2))
  result = sinusoid_training.evaluate_sinusoid(params, 1, [0, 8], 0.02, seed=5)
  np.testing.assert_allclose([result["mse"]["0"]["mean"], result["mse"]["8"]["mean"]],
                             mse[[0, 8]], rtol=1e-6)


def test_adaptation_problem_is_the_sum_of_per_task_costs_and_redraws_tasks():
  from l2l import variables as variables_lib

  params = sinusoid.init_params(0)
  tasks = sinusoid_training.held_out_tasks(3, 1)
  fixed = sinusoid.adaptation_problem(params, 3, {k: tasks[k] for k in ("amplitude", "phase",
                                                                      "index")})
  expected = sum(float(sinusoid.mse_cost({"x": tasks["x_train"][i], "y": tasks["y_train"][i]},
                                         params)) for i in range(3))
  assert float(fixed()) == pytest.approx(expected, rel=1e-5)
  random_tasks = sinusoid.adaptation_problem(params, 4)
  record = variables_lib.record_variables(random_tasks)
  assert [v.shape[0] for v in record.trainable] == [4] * 6  # One MLP copy per task.
  first = [v.numpy() for v in record.constants]
  variables_lib.reinitialize(random_tasks, record)
  assert all(not np.array_equal(a, v.numpy()) for a, v in zip(first, record.constants))
