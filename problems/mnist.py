"""MNIST: a small MLP classifier, trained on a fresh random minibatch at every step."""

from typing import Callable, Sequence

import sonnet as snt
import tensorflow as tf

from problems import datasets

ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "sigmoid": tf.sigmoid, "relu": tf.nn.relu, "tanh": tf.tanh, "gelu": tf.nn.gelu}
NUM_CLASSES = 10


def mnist(layers: Sequence[int] = (20,), activation: str = "sigmoid", batch_size: int = 128,
          mode: str = "train", data_dir: str | None = None, seed: int = 0
          ) -> datasets.MinibatchLoss:
  """``make_loss()`` for an MLP [784] → layers → [10] with softmax cross-entropy, as the original.

  Args:
    layers: hidden layer sizes.
    activation: "sigmoid" (the paper's), "relu" or "tanh".
    batch_size: examples per step, drawn uniformly with replacement from the split.
    mode: "train" (meta-training data) or "test" (held-out evaluation data).
    data_dir: see ``problems.datasets.load_mnist``; default TFDS or the embedded subset.
    seed: seed of the minibatch sampler (``make_loss.rng``).

  Weights and biases start N(0, 0.01²). The data is loaded once, here; the MLP is built inside
  every ``make_loss()`` so that every call (re-)creates its variables, as the MetaOptimizer requires.
  """
  if activation not in ACTIVATIONS:
    raise ValueError(f"Unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}.")
  initializer = snt.initializers.RandomNormal(stddev=0.01)

  def build_network() -> snt.Module:
    return snt.Sequential([
        snt.Flatten(),
        snt.nets.MLP(list(layers) + [NUM_CLASSES], w_init=initializer, b_init=initializer,
                     activation=ACTIVATIONS[activation])])

  images, labels = datasets.load_mnist(mode, data_dir)
  return datasets.MinibatchLoss(build_network, images, labels, batch_size, seed)
