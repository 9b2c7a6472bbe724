"""Task families: reproducible from stateless seeds, batched losses equal to one task at a time,
augmentation, horizons, and the make_loss adapter."""

import numpy as np
import pytest
import tensorflow as tf

from l2l import tasks
from problems import families
from problems import quadratic


def _mnist8():
  return families.mnist((8,), "relu", batch_size=16, image_size=8, init_stddev=None)


def test_a_family_is_reproducible_from_its_seeds_and_differs_across_seeds():
  family = families.Quadratic(batch_size=4, num_dims=3)
  a, again, other = family.task(7), family.task(7), family.task(8)
  np.testing.assert_array_equal(a.config[0], again.config[0])
  assert np.abs(a.config[0] - other.config[0]).min() > 0
  np.testing.assert_array_equal(a.init(1)[0], again.init(1)[0])
  assert np.abs(a.init(1)[0] - a.init(2)[0]).min() > 0
  mnist = _mnist8()
  task = mnist.task(0)
  (x1, _), (x2, _) = task.batch(5), task.batch(5)
  np.testing.assert_array_equal(x1, x2)
  assert not np.array_equal(task.batch(6)[0], x1)
  assert x1.shape == (16, 64) and float(tf.reduce_max(x1)) <= 1.0


def _small_images():
  rng = np.random.RandomState(0)
  return rng.rand(20, 8, 8, 1).astype(np.float32), rng.randint(0, 10, 20)


@pytest.mark.parametrize("make", [
    lambda: families.Quadratic(batch_size=4, num_dims=3), _mnist8,
    lambda: families.Sinusoid(hidden=(8,), batch_size=5),
    lambda: families.ConvClassifier(*_small_images(), channels=(4, 6), batch_size=5),
    lambda: families.Autoencoder(*_small_images(), hidden=(6,), activation="gelu", batch_size=5),
    lambda: families.TeacherRegression(inputs=5, hidden=(7,), batch_size=6)])
def test_batched_loss_equals_each_task_alone(make):
  family = make()
  seeds = [tasks.as_seed(i) for i in range(3)]
  configs = [family.sample(s) for s in seeds]
  params = [family.init(c, tasks.fold(s, 1)) for c, s in zip(configs, seeds)]
  data = [family.batch(c, tasks.fold(s, 2)) for c, s in zip(configs, seeds)]
  stack = lambda items: tf.nest.map_structure(lambda *leaves: tf.stack(leaves), *items)
  batched = family.batched_loss(stack(configs), stack(params), stack(data))
  vectorized = tasks.batched(family.loss, stack(configs), stack(params), stack(data))
  singles = [family.loss(c, p, d) for c, p, d in zip(configs, params, data)]
  np.testing.assert_allclose(batched, singles, rtol=1e-5)
  np.testing.assert_allclose(vectorized, singles, rtol=1e-5)


def test_quadratic_family_loss_is_the_problems_loss():
  family = families.Quadratic(batch_size=4, num_dims=3)
  task = family.task(3)
  x = task.init(0)
  w, y = task.config
  expected = np.mean(np.sum((np.einsum("bij,bj->bi", w, x[0]) - y) ** 2, 1))
  np.testing.assert_allclose(task.loss(x, ()), expected, rtol=1e-5)


@pytest.mark.parametrize("mode", tasks.Reparameterize.MODES)
def test_reparameterization_keeps_the_loss_and_rescales_what_the_optimizer_sees(mode):
  inner = _mnist8()
  family = tasks.Reparameterize(inner, mode)
  config = family.sample(tasks.as_seed(4))
  inner_config, scales = config
  params = family.init(config, tasks.as_seed(5))
  inner_params = inner.init(inner_config, tasks.as_seed(5))
  data = family.batch(config, tasks.as_seed(6))
  np.testing.assert_allclose(family.loss(config, params, data),
                             inner.loss(inner_config, inner_params, data), rtol=1e-5)
  flat = np.concatenate([np.ravel(s) for s in scales])
  assert flat.min() >= 1e-3 and flat.max() <= 1e3
  per_tensor = [np.unique(np.ravel(s)).size for s in scales]
  if mode == "global":
    assert np.unique(flat).size == 1
  elif mode == "tensor":
    assert per_tensor == [1] * len(scales) and np.unique(flat).size == len(scales)
  else:
    assert min(per_tensor[::2]) > 1  # Weight matrices get a scale per coordinate.
  with pytest.raises(ValueError, match="Unknown reparameterisation mode 'layer'"):
    tasks.Reparameterize(inner, "layer")


def test_reduced_batch_cuts_minibatches():
  family = tasks.ReducedBatch(_mnist8(), 4)
  x, y = family.batch((), tasks.as_seed(0))
  full_x, _ = _mnist8().batch((), tasks.as_seed(0))
  assert x.shape == (4, 64) and y.shape == (4,)
  np.testing.assert_array_equal(x, full_x[:4])
  with pytest.raises(ValueError, match="has no data batches to reduce"):
    tasks.ReducedBatch(families.Quadratic(), 4).batch(families.Quadratic().task(0).config,
                                                      tasks.as_seed(0))


def test_horizons():
  assert tasks.parse_horizon("100") == tasks.ConstantHorizon(100)
  schedule = tasks.parse_horizon("loguniform:100:2000")
  draws = np.array([int(schedule.sample(tasks.as_seed(i))) for i in range(400)])
  assert draws.min() >= 100 and draws.max() <= 2000
  # Log-uniform: as many below the geometric mean (≈447) as above it.
  assert 0.4 < np.mean(draws < 447) < 0.6
  for bad in ("0", "loguniform:100", "uniform:1:2", "loguniform:300:200", "ten"):
    with pytest.raises(ValueError, match="Bad horizon"):
      tasks.parse_horizon(bad)


def test_make_loss_adapter_runs_the_problem_and_draws_constants_per_task():
  make_loss = quadratic.quadratic(batch_size=3, num_dims=2)
  family = tasks.from_make_loss(make_loss)
  assert family.per_task_constants and family.param_names() == ["x"]
  first, second = family.sample(tasks.as_seed(0)), family.sample(tasks.as_seed(1))
  assert np.abs(first[0] - second[0]).min() > 0  # Fresh W per task.
  params = family.init(first, tasks.as_seed(0))
  w, y = first
  expected = np.mean(np.sum((np.einsum("bij,bj->bi", w, params[0]) - y) ** 2, 1))
  np.testing.assert_allclose(family.loss(first, params, ()), expected, rtol=1e-5)
  stack = lambda *items: tf.nest.map_structure(lambda *leaves: tf.stack(leaves), *items)
  batched = family.batched_loss(stack(first, second), stack(params, params), ((), ()))
  np.testing.assert_allclose(batched, [family.loss(first, params, ()),
                                       family.loss(second, params, ())], rtol=1e-5)


def test_conv_family_computes_strided_same_convolutions():
  family = families.ConvClassifier(*_small_images(), channels=(4, 6), batch_size=5)
  params = family.init((), tasks.as_seed(0))
  x, labels = family.batch((), tasks.as_seed(1))
  h = x
  for i in (0, 2):
    h = tf.nn.relu(tf.nn.conv2d(h, params[i], 2, "SAME") + params[i + 1])
  logits = tf.reduce_mean(h, [1, 2]) @ params[4] + params[5]
  expected = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
  np.testing.assert_allclose(family.loss((), params, (x, labels)), expected, rtol=1e-5)
