"""MNIST / CIFAR-10 data loaders and problems, batch norm substitution, cifar-multi routing."""

import gzip

import numpy as np
import pytest
import tensorflow as tf

import l2l
import problems
from l2l import networks
from l2l import variables as variables_lib
from problems import cifar10
from problems import datasets
from problems import mnist
from problems import quadratic


def _write_idx(path, array: np.ndarray, compress: bool) -> None:
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  opener = gzip.open if compress else open
  with opener(str(path) + (".gz" if compress else ""), "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
  """Six small CIFAR-10 binary batches in the real format, and the arrays they hold."""
  path = tmp_path_factory.mktemp("cifar")
  rng = np.random.default_rng(0)
  arrays = {}
  for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    labels = rng.integers(0, 10, 8, dtype=np.uint8)
    chw = rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    np.concatenate([labels[:, None], chw.reshape(8, -1)], 1).tofile(path / name)
    arrays[name] = (chw.transpose(0, 2, 3, 1), labels)
  return path, arrays


def test_embedded_mnist_is_a_balanced_real_split():
  train_x, train_y = datasets.load_embedded_mnist("train")
  test_x, test_y = datasets.load_embedded_mnist("test")
  assert train_x.shape == (4000, 28, 28, 1) and test_x.shape == (1000, 28, 28, 1)
  assert train_x.dtype == np.uint8 and train_y.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(train_y), [400] * 10)
  np.testing.assert_array_equal(np.bincount(test_y), [100] * 10)
  # Real digits: dark background, mean intensity of MNIST (≈ 33 of 255), no image in both splits.
  assert 25 < train_x.mean() < 40 and np.mean(train_x == 0) > 0.7
  train_keys = {x.tobytes() for x in train_x}
  assert not any(x.tobytes() in train_keys for x in test_x)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_files_at_data_dir(tmp_path, compress):
  images = np.random.randint(0, 256, (5, 28, 28))
  labels = np.arange(5)
  _write_idx(tmp_path / "t10k-images-idx3-ubyte", images, compress)
  _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, compress)
  x, y = datasets.load_mnist("test", str(tmp_path))
  np.testing.assert_array_equal(x[..., 0], images)
  np.testing.assert_array_equal(y, labels)


def test_mnist_npz_at_data_dir(tmp_path):
  x_train = np.random.randint(0, 256, (3, 28, 28)).astype(np.uint8)
  np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=np.array([1, 2, 3]),
           x_test=x_train[:1], y_test=np.array([4]))
  x, y = datasets.load_mnist("train", str(tmp_path))
  np.testing.assert_array_equal(x[..., 0], x_train)
  np.testing.assert_array_equal(y, [1, 2, 3])


def test_missing_data_is_named_with_the_expected_files(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"No MNIST train data in --data_dir=.*"
                     r"train-images-idx3-ubyte\[\.gz\] and train-labels-idx1-ubyte"):
    datasets.load_mnist("train", str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"Missing CIFAR-10 test data: \[.*test_batch\.bin"):
    datasets.load_cifar10("test", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="CIFAR-10 needs --data_dir"):
    problems.get_config("cifar", "train")
  (tmp_path / "test_batch.bin").write_bytes(b"\0" * 3074)
  with pytest.raises(ValueError, match="not a whole number of CIFAR-10 records"):
    datasets.load_cifar10("test", str(tmp_path))


def test_cifar_binary_batches_decode_channel_major_records(cifar_dir):
  path, arrays = cifar_dir
  x, y = datasets.load_cifar10("train", str(path))
  assert x.shape == (40, 32, 32, 3) and y.shape == (40,)
  np.testing.assert_array_equal(x[8:16], arrays["data_batch_2.bin"][0])
  np.testing.assert_array_equal(y[32:], arrays["data_batch_5.bin"][1])
  x, y = datasets.load_cifar10("test", str(path))
  np.testing.assert_array_equal(x, arrays["test_batch.bin"][0])


def test_minibatches_are_reproducible_from_the_seed():
  make_loss = mnist.mnist(batch_size=16)
  losses = []
  for _ in range(2):
    problems.seed_problem(make_loss, 7)
    losses.append([float(make_loss()) for _ in range(3)])
  assert losses[0] == losses[1] and len(set(losses[0])) == 3  # Same draws, fresh each call.
  # The untrained MLP predicts ~uniformly: cross-entropy ≈ log(10).
  assert losses[0][0] == pytest.approx(np.log(10), abs=0.02)


def test_batch_norm_problem_substitutes_trainables_and_keeps_statistics_constant(cifar_dir):
  make_loss = cifar10.cifar10(str(cifar_dir[0]), conv_channels=(4, 4), linear_layers=(8,),
                              batch_size=16)
  record = variables_lib.record_variables(make_loss)
  trainable = [v.name for v in record.trainable]
  assert trainable == ["conv_net/conv_0/w:0", "conv_net/conv_0/b:0",
                       "conv_net/batch_norm_0/offset:0", "conv_net/conv_1/w:0",
                       "conv_net/conv_1/b:0", "conv_net/batch_norm_1/offset:0",
                       "conv_net/mlp/linear_0/w:0", "conv_net/mlp/linear_0/b:0",
                       "conv_net/mlp/linear_1/w:0", "conv_net/mlp/linear_1/b:0"]
  constants = [v.name for v in record.constants]
  assert {f"conv_net/batch_norm_{i}/moving_{s}/average:0" for i in (0, 1)
          for s in ("mean", "variance")} <= set(constants)
  # Gradients through substituted tensors equal gradients of the real variables, for every one.
  values = [tf.convert_to_tensor(v) for v in record.trainable]
  problems.seed_problem(make_loss, 3)
  with tf.GradientTape() as tape:
    tape.watch(values)
    substituted = variables_lib.loss_with_custom_variables(make_loss, record, values)
  grads = tape.gradient(substituted, values)
  problems.seed_problem(make_loss, 3)
  real = [tf.Variable(v) for v in values]
  with tf.GradientTape() as tape:
    loss = variables_lib.loss_with_custom_variables(make_loss, record, real)
  real_grads = tape.gradient(loss, real)
  assert float(loss) == pytest.approx(float(substituted), rel=1e-6)
  for g, r in zip(grads, real_grads):
    assert float(tf.reduce_max(tf.abs(g))) > 0
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-8)


def test_cifar_multi_routes_kernels_and_the_rest_to_their_nets(cifar_dir):
  """Two Sgd nets with different step sizes: each variable moves by its own net's step."""
  make_loss = cifar10.cifar10(str(cifar_dir[0]), batch_size=16)
  config = problems.get_config("cifar-multi", "train", str(cifar_dir[0]))
  assert config.net_keys == ("conv", "fc")
  optimizer = l2l.MetaOptimizer(conv={"net": "Sgd", "net_options": {"learning_rate": 0.1}},
                                fc={"net": "Sgd", "net_options": {"learning_rate": 0.01}})
  ops = optimizer.meta_loss(make_loss, 1, net_assignments=config.net_assignments)
  problems.seed_problem(make_loss, 5)
  ops.reset()
  start = [v.numpy() for v in ops.x]
  record = variables_lib.record_variables(make_loss)
  problems.seed_problem(make_loss, 9)
  values = [tf.constant(v) for v in start]
  with tf.GradientTape() as tape:
    tape.watch(values)
    loss = variables_lib.loss_with_custom_variables(make_loss, record, values)
  grads = tape.gradient(loss, values)
  problems.seed_problem(make_loss, 9)
  ops.loss()
  ops.update()
  names = [v.name.split(":")[0] for v in record.trainable]
  conv = set(config.net_assignments[0][1])
  assert len(conv) == 3 and len(names) == 13
  for name, x0, x1, g in zip(names, start, ops.x, grads):
    lr = 0.1 if name in conv else 0.01
    np.testing.assert_allclose(x1.numpy(), x0 - lr * g.numpy(), rtol=1e-5, atol=1e-7)
  assert isinstance(optimizer.nets["conv"], networks.Sgd)


def test_mnist_generalization_settings_are_registered():
  for name, shapes in [("mnist", [(784, 20), (20,), (20, 10), (10,)]),
                       ("mnist-40-units", [(784, 40), (40,), (40, 10), (10,)]),
                       ("mnist-2-layers", [(784, 20), (20,), (20, 20), (20,), (20, 10), (10,)]),
                       ("mnist-relu", [(784, 20), (20,), (20, 10), (10,)])]:
    record = variables_lib.record_variables(problems.get_config(name, "test").make_loss)
    assert [tuple(v.shape) for v in record.trainable] == shapes


def test_quadratic_distributions():
  for distribution, low in (("uniform", 0.0), ("normal", -np.inf)):
    record = l2l.variables.record_variables(
        quadratic.quadratic(batch_size=64, num_dims=5, distribution=distribution))
    w = record.constants[0].numpy()
    assert w.shape == (64, 5, 5) and w.min() >= low
    assert (w.min() < 0) == (distribution == "normal")
  with pytest.raises(ValueError, match="Unknown distribution 'beta'"):
    quadratic.quadratic(distribution="beta")


def test_every_registry_family_gives_finite_losses():
  for name in problems.FAMILY_NAMES:
    if name.startswith("cifar"):
      continue  # Needs the CIFAR-10 files.
    family, assignments = problems.get_family(name, "test")
    assert assignments is None
    task = family.task(1)
    params = task.init(2)
    assert [p.shape for p in params] == family.param_shapes()
    assert np.isfinite(float(task.loss(params, task.batch(3)))), name
  assert set(problems.MIXTURES["general"]) <= set(problems.FAMILY_NAMES)
  validation = set(problems.MIXTURES["general-validation"])
  assert validation <= set(problems.FAMILY_NAMES)
  assert not validation & set(problems.MIXTURES["general"])  # Held out from training.


def test_cifar_multi_runs_as_a_task_family_through_the_adapter(cifar_dir):
  """Batch norm writes its statistics, so every task shares them; the trainables are the task's."""
  from l2l import tasks
  family, assignments = problems.get_family("cifar-multi", "train", str(cifar_dir[0]))
  assert not family.per_task_constants
  assert [key for key, _ in assignments] == ["conv", "fc"]
  first, second = family.init((), tasks.as_seed(0)), family.init((), tasks.as_seed(1))
  stacked = [tf.stack([a, b]) for a, b in zip(first, second)]
  losses = family.batched_loss(((), ()), stacked, ((), ()))
  assert losses.shape == (2,) and np.all(np.isfinite(losses.numpy()))
