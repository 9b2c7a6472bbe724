"""The sine-wave problem and the Reptile / MAML training built on the library's steps."""

import json

import numpy as np
import pytest
import tensorflow as tf

from l2l import initialisation
from problems import sinusoid


def test_task_distribution_matches_the_demo():
  amplitude, phase = sinusoid.sample_tasks(np.random.RandomState(0), 1000)
  assert 0.1 <= amplitude.min() and amplitude.max() <= 5.0
  assert 0.0 <= phase.min() and phase.max() <= 2 * np.pi
  # The demo draws phase first, then amplitude, from one RandomState.
  rng = np.random.RandomState(0)
  assert phase[0] == np.float32(rng.uniform(0, 2 * np.pi))
  assert amplitude[0] == np.float32(rng.uniform(0.1, 5))


def test_module_and_functional_forward_agree():
  model = sinusoid.SineMLP(seed=3)
  x = tf.constant(sinusoid.X_ALL)
  np.testing.assert_allclose(model(x), sinusoid.forward(sinusoid.init_params(3), x), rtol=1e-6)
  assert model(x).shape == (50, 1)
  assert len(model.trainable_variables) == 6


@pytest.mark.parametrize("algorithm", ["reptile", "fomaml"])
def test_short_meta_training_improves_few_shot_error(algorithm, tmp_path):
  params, rate = initialisation.train_sinusoid(algorithm, 400, 2, 5, 0.02, 0.1 if algorithm == "reptile"
                                      else 0.01, seed=0)
  assert rate > 0
  before = initialisation.evaluate_sinusoid(sinusoid.init_params(0), 30, [8], 0.02, seed=1)
  after = initialisation.evaluate_sinusoid(params, 30, [8], 0.02, seed=1)
  assert after["mse"]["8"]["mean"] < 0.8 * before["mse"]["8"]["mean"]
  initialisation.save(params, str(tmp_path), {"problem": "sinusoid", "algorithm": algorithm})
  restored = initialisation.load_params(str(tmp_path))
  for a, b in zip(tf.nest.flatten(restored), tf.nest.flatten(params)):
    np.testing.assert_array_equal(a, b)
  assert json.loads((tmp_path / "config.json").read_text())["algorithm"] == algorithm


def test_missing_model_path_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"No trained model at .*config.json"):
    initialisation.load_params(str(tmp_path / "nothing"))


def test_divergence_stops_with_a_clear_message():
  with pytest.raises(FloatingPointError, match="meta-training diverged"):
    initialisation.train_sinusoid("fomaml", 50, 1, 5, 0.02, 1e4, seed=0)
