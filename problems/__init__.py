"""Optimizee problems and the registry of named meta-training configurations.

Like the original's ``util.get_config``: a name gives the problem's ``make_loss`` for "train"
(meta-training) or "test" (held-out evaluation) data, the net preset and, for several nets, which
variables each net optimizes. The paper's generalization settings are the MNIST variants; run them
for 200 steps with ``--num_steps=200``.
"""

from typing import Any, Callable

import tensorflow as tf

from l2l import tasks as _tasks
from l2l.training import ProblemConfig
from problems import cifar10 as _cifar10
from problems import datasets as _datasets
from problems import families as _families
from problems import mnist as _mnist
from problems import quadratic as _quadratic


def _with_sampler(make_loss, preset: str, net_keys=None, net_assignments=None) -> ProblemConfig:
  """The config of a problem, with its minibatch sampler where it has one."""
  sampler = make_loss.rng if isinstance(make_loss, _datasets.MinibatchLoss) else None
  return ProblemConfig(make_loss, preset, net_keys, net_assignments, sampler)


def _quadratic_config(mode: str, data_dir: str | None) -> ProblemConfig:
  del mode, data_dir  # Train and test problems come from the same distribution.
  return _with_sampler(_quadratic.quadratic(batch_size=128, num_dims=10), "original")


def _mnist_config(**options) -> Callable[[str, str | None], ProblemConfig]:
  def config(mode: str, data_dir: str | None) -> ProblemConfig:
    return _with_sampler(_mnist.mnist(mode=mode, data_dir=data_dir, **options), "original")
  return config


def _cifar_config(mode: str, data_dir: str | None) -> ProblemConfig:
  return _with_sampler(_cifar10.cifar10(data_dir, mode=mode), "original")


def _cifar_multi_config(mode: str, data_dir: str | None) -> ProblemConfig:
  return _with_sampler(_cifar10.cifar10(data_dir, mode=mode), "original", ("conv", "fc"),
                       _cifar10.multi_net_assignments())


_CONFIGS: dict[str, Callable[[str, str | None], ProblemConfig]] = {
    "quadratic": _quadratic_config,
    "mnist": _mnist_config(),  # The paper's: one hidden layer of 20 sigmoid units.
    "mnist-40-units": _mnist_config(layers=(40,)),
    "mnist-2-layers": _mnist_config(layers=(20, 20)),
    "mnist-relu": _mnist_config(activation="relu"),
    "cifar": _cifar_config,
    "cifar-multi": _cifar_multi_config,
}
NAMES = tuple(_CONFIGS)

# TensorFlow intra-op threads that run a problem fastest on the 2-core machine, where one thread
# beats TensorFlow's default of one per core: on these small problems every XLA kernel is too short
# for handing work to a thread pool to pay (bench/sinusoid.py, bench/meta_step.py). The others
# (MNIST's 15 910 coordinates, say) run faster on every core.
_INTRA_OP_THREADS = {"quadratic": 1, "sinusoid": 1}


def intra_op_threads(name: str) -> int | None:
  """The intra-op thread count the named problem runs fastest with; None: TensorFlow's default."""
  return _INTRA_OP_THREADS.get(name)


def get_config(name: str, mode: str = "train", data_dir: str | None = None) -> ProblemConfig:
  """The named configuration.

  Args:
    name: one of ``NAMES``.
    mode: "train" (meta-training) or "test" (held-out evaluation).
    data_dir: where MNIST / CIFAR-10 files are (see ``problems.datasets``); MNIST defaults to
      TensorFlow Datasets or the embedded subset, CIFAR-10 requires it.
  """
  if name not in _CONFIGS:
    raise ValueError(f"Unknown problem {name!r}; choose one of {sorted(_CONFIGS)}.")
  if mode not in ("train", "test"):
    raise ValueError(f"mode must be 'train' or 'test', got {mode!r}.")
  return _CONFIGS[name](mode, data_dir)


_FAMILIES: dict[str, Callable[[str, str | None], _tasks.TaskFamily]] = {
    "quadratic": lambda mode, data_dir: _families.Quadratic(),
    "mnist": lambda mode, data_dir: _families.mnist(mode=mode, data_dir=data_dir),
    "mnist-40-units": lambda mode, data_dir: _families.mnist((40,), mode=mode, data_dir=data_dir),
    "mnist-2-layers": lambda mode, data_dir: _families.mnist((20, 20), mode=mode,
                                                             data_dir=data_dir),
    "mnist-relu": lambda mode, data_dir: _families.mnist(activation="relu", mode=mode,
                                                         data_dir=data_dir),
    # learned_optimization's small image task: 8×8 digits, 64-32-10 ReLU MLP, fan-in init.
    "mnist8": lambda mode, data_dir: _families.mnist((32,), "relu", image_size=8, mode=mode,
                                                     data_dir=data_dir, init_stddev=None),
    "sinusoid": lambda mode, data_dir: _families.Sinusoid(),
}


def _mlp(hidden, activation, size):
  return lambda mode, data_dir: _families.mnist(hidden, activation, image_size=size, mode=mode,
                                                data_dir=data_dir, init_stddev=None)


def _images(size: int, mode: str, data_dir: str | None):
  images, labels = _datasets.load_mnist(mode, data_dir)
  return _families.downsample(images, size), labels


def _conv(channels, activation, size):
  return lambda mode, data_dir: _families.ConvClassifier(
      *_images(size, mode, data_dir), channels, activation,
      name=f"conv{size}_{'_'.join(map(str, channels))}_{activation}")


def _autoencoder(hidden, activation, size):
  return lambda mode, data_dir: _families.Autoencoder(
      *_images(size, mode, data_dir), hidden, activation,
      name=f"ae{size}_{'_'.join(map(str, hidden))}_{activation}")


def _teacher(inputs, hidden, activation):
  return lambda mode, data_dir: _families.TeacherRegression(inputs, hidden, activation)


# The training mixture of l2l's general optimizer: MLPs of 1-3 hidden layers, widths 16-128, four
# activations, convnets, autoencoders, on MNIST downsampled to 8×8 and 14×14, and regression on
# generated data. None of them is a task of the held-out suite (bench/heldout_tasks.py).
_GENERAL = {
    "mlp8-16-tanh": _mlp((16,), "tanh", 8),
    "mlp8-128-gelu": _mlp((128,), "gelu", 8),
    "mlp8-32x2-sigmoid": _mlp((32, 32), "sigmoid", 8),
    "mlp14-64-relu": _mlp((64,), "relu", 14),
    "mlp14-32x3-gelu": _mlp((32, 32, 32), "gelu", 14),
    "conv8-8-16-relu": _conv((8, 16), "relu", 8),
    "conv14-8-16-gelu": _conv((8, 16), "gelu", 14),
    "ae8-16-relu": _autoencoder((16,), "relu", 8),
    "ae14-32-tanh": _autoencoder((32,), "tanh", 14),
    "teacher16-32-relu": _teacher(16, (32,), "relu"),
    "teacher8-64x2-gelu": _teacher(8, (64, 64), "gelu"),
}
# Validation for choosing the general optimizer's checkpoint: families in neither the training
# mixture nor the held-out suite (two layers of 128 ReLU units, a tanh convnet, a deeper
# autoencoder, a GELU teacher with more inputs), so that the choice favours what carries over.
_GENERAL_VALIDATION = {
    "mlp14-128x2-relu": _mlp((128, 128), "relu", 14),
    "conv14-12-24-tanh": _conv((12, 24), "tanh", 14),
    "ae14-64x2-gelu": _autoencoder((64, 64), "gelu", 14),
    "teacher32-48-gelu": _teacher(32, (48,), "gelu"),
}
_FAMILIES.update(_GENERAL)
_FAMILIES.update(_GENERAL_VALIDATION)
# Names that stand for several families.
MIXTURES = {"general": tuple(_GENERAL), "general-validation": tuple(_GENERAL_VALIDATION)}
FAMILY_NAMES = tuple(_FAMILIES) + ("cifar", "cifar-multi")


def get_family(name: str, mode: str = "train", data_dir: str | None = None
               ) -> tuple[_tasks.TaskFamily, Any]:
  """The named task family and its net assignments (None: one net for every parameter).

  The problems written on stateless seeds (``problems.families``) come as they are; the others
  (CIFAR-10) through ``l2l.tasks.from_make_loss`` on their ``make_loss``.
  """
  if name not in FAMILY_NAMES:
    raise ValueError(f"Unknown problem {name!r}; choose one of {sorted(FAMILY_NAMES)}.")
  if mode not in ("train", "test"):
    raise ValueError(f"mode must be 'train' or 'test', got {mode!r}.")
  if name in _FAMILIES:
    return _FAMILIES[name](mode, data_dir), None
  config = get_config(name, mode, data_dir)
  return _tasks.from_make_loss(config.make_loss, name), config.net_assignments


def seed_problem(make_loss: Callable[[], tf.Tensor], seed: int) -> None:
  """Seeds a problem's randomness: TF's global seed (fresh-problem draws) and, for the problems
  with data (``datasets.MinibatchLoss``), its minibatch sampler."""
  tf.random.set_seed(seed)
  if isinstance(make_loss, _datasets.MinibatchLoss):
    make_loss.rng.reset_from_seed(seed)
