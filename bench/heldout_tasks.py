"""The held-out suite of ``bench/generalization.py``: tasks that are in no training mixture.

Each task differs from what the shipped optimizers were meta-trained on (MLPs of 1–3 hidden layers
with sigmoid / ReLU / tanh / GELU, small convnets and autoencoders, 10-dimensional quadratics) in
architecture, activation, depth, data or horizon. ``task.make(seed)`` builds a fresh model and
returns ``(variables, train_loss, test_loss)``: ``train_loss(step)`` is the loss on the step's
minibatch (a fixed permutation of the data per seed, so every optimizer sees the same batches),
``test_loss()`` the loss on the held-out split (None without one). Nothing here is tuned on.
"""

import dataclasses
import os
from typing import Callable

import numpy as np
import sonnet as snt
import tensorflow as tf

from problems import datasets

TEXT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "text.txt")
Built = tuple[list[tf.Variable], Callable[[tf.Tensor], tf.Tensor], Callable[[], tf.Tensor] | None]


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  description: str
  num_steps: int
  make: Callable[[int], Built]


def _mnist(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Embedded MNIST, images flattened to [N, size²] in [0, 1]."""
  splits = []
  for split in ("train", "test"):
    images, labels = datasets.load_mnist(split)
    x = tf.image.resize(tf.constant(images, tf.float32) / 255.0, [size, size], "area")
    splits += [tf.reshape(x, [len(images), -1]).numpy(), labels.astype(np.int32)]
  return tuple(splits)


def _data(array: np.ndarray) -> tf.Variable:
  """Data for the compiled loops as a variable: XLA would fold a large constant for minutes."""
  return tf.Variable(array, trainable=False)


def _batcher(seed: int, size: int, batch: int) -> Callable[[tf.Tensor], tf.Tensor]:
  """``indices(step)``: the step's minibatch indices, from a fixed permutation per seed."""
  order = _data(np.random.default_rng(seed + 1000).permutation(size).astype(np.int32))
  per_epoch = size // batch

  def indices(step):
    start = (step % per_epoch) * batch
    return order[start:start + batch]

  return indices


def _classifier(model_fn, size: int, batch: int, flatten: bool = True):
  """A task on MNIST at ``size``×``size`` with softmax cross-entropy: ``make(seed)``."""
  def make(seed: int) -> Built:
    x, y, x_test, y_test = _mnist(size)
    if not flatten:
      x, x_test = x.reshape(-1, size, size, 1), x_test.reshape(-1, size, size, 1)
    tf.random.set_seed(seed)
    model = model_fn()

    def call(inputs, training):
      if isinstance(model, _BatchNormConvnet):
        return model(inputs, is_training=training)
      return model(inputs)

    def loss(logits, labels):
      return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))

    call(tf.constant(x[:2]), True)  # Creates the variables.
    indices = _batcher(seed, len(x), batch)
    x, y, x_test, y_test = _data(x), _data(y), _data(x_test), _data(y_test)

    def train_loss(step):
      i = indices(step)
      return loss(call(tf.gather(x, i), True), tf.gather(y, i))

    def test_loss():
      return loss(call(x_test, False), y_test)

    return list(model.trainable_variables), train_loss, test_loss
  return make


class _BatchNormConvnet(snt.Module):
  def __init__(self):
    super().__init__(name="bn_convnet")
    self.convs = [snt.Conv2D(c, 3, stride=2) for c in (16, 32)]
    self.norms = [snt.BatchNorm(True, True) for _ in self.convs]
    self.out = snt.Linear(10)

  def __call__(self, x, is_training):
    for conv, norm in zip(self.convs, self.norms):
      x = tf.nn.relu(norm(conv(x), is_training=is_training))
    return self.out(snt.Flatten()(x))


def _autoencoder(seed: int) -> Built:
  x, _, x_test, _ = _mnist(28)
  tf.random.set_seed(seed)
  model = snt.nets.MLP([128, 32, 128, 784], activation=tf.nn.relu)
  model(x[:2])
  indices = _batcher(seed, len(x), 128)
  x, x_test = _data(x), _data(x_test)

  def loss(inputs):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(inputs, model(inputs)))

  return (list(model.trainable_variables), lambda step: loss(tf.gather(x, indices(step))),
          lambda: loss(x_test))


def _char_rnn(seed: int) -> Built:
  """A character-level LSTM language model (64 units) on ``bench/data/text.txt``."""
  with open(TEXT_FILE, encoding="utf-8") as f:
    text = f.read()
  vocab = sorted(set(text))
  ids = np.array([vocab.index(c) for c in text], np.int32)
  length, batch = 32, 32
  tf.random.set_seed(seed)
  embed = snt.Embed(len(vocab), 16)
  core = snt.LSTM(64)
  out = snt.Linear(len(vocab))
  starts = np.random.default_rng(seed + 1000).integers(0, len(ids) - length - 1, [4096, batch])
  windows = _data(ids[starts[..., None] + np.arange(length + 1)])  # [4096, batch, L+1]

  def train_loss(step):
    window = windows[step % 4096]
    inputs = tf.transpose(embed(window[:, :-1]), [1, 0, 2])
    outputs, _ = snt.static_unroll(core, inputs, core.initial_state(batch))
    logits = out(tf.transpose(outputs, [1, 0, 2]))
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(window[:, 1:], logits))

  train_loss(tf.constant(0))
  variables = [v for module in (embed, core, out) for v in module.trainable_variables]
  return variables, train_loss, None


def _attention(seed: int) -> Built:
  """One self-attention layer (single head, width 32, learned positions) that reverses a sequence
  of 8 tokens out of 16: the output at position i must be the input at position 7 − i."""
  vocab, length, width, batch = 16, 8, 32, 64
  tf.random.set_seed(seed)
  embed = snt.Embed(vocab, width)
  positions = tf.Variable(tf.random.normal([length, width], stddev=0.1), name="positions")
  query, key, value = (snt.Linear(width, with_bias=False) for _ in range(3))
  mlp = snt.nets.MLP([64, vocab])
  tokens = _data(np.random.default_rng(seed + 1000).integers(
      0, vocab, [4096, batch, length]).astype(np.int32))

  def train_loss(step):
    sequence = tokens[step % 4096]
    h = embed(sequence) + positions
    scores = tf.einsum("bid,bjd->bij", query(h), key(h)) / np.sqrt(width)
    h = h + tf.einsum("bij,bjd->bid", tf.nn.softmax(scores), value(h))
    logits = mlp(h)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.reverse(sequence, [1]), logits))

  train_loss(tf.constant(0))
  variables = [positions] + [v for module in (embed, query, key, value, mlp)
                             for v in module.trainable_variables]
  return variables, train_loss, None


def _regression(seed: int) -> Built:
  """A 2-layer tanh MLP (20-64-1) regressing a fixed random teacher network plus noise."""
  rng = np.random.default_rng(1234)  # The same teacher and data for every seed.
  x = rng.normal(size=[4096, 20]).astype(np.float32)
  teacher = np.tanh(x @ rng.normal(size=[20, 8]) / np.sqrt(20)) @ rng.normal(size=[8, 1])
  y = (teacher + 0.1 * rng.normal(size=teacher.shape)).astype(np.float32)
  tf.random.set_seed(seed)
  model = snt.nets.MLP([64, 1], activation=tf.tanh)
  model(x[:2])
  indices = _batcher(seed, 3072, 64)
  x_train, y_train, x_test, y_test = (_data(a) for a in (x[:3072], y[:3072], x[3072:], y[3072:]))

  def loss(inputs, targets):
    return tf.reduce_mean(tf.square(model(inputs) - targets))

  return (list(model.trainable_variables),
          lambda step: loss(tf.gather(x_train, indices(step)), tf.gather(y_train, indices(step))),
          lambda: loss(x_test, y_test))


def _mlp(sizes, activation):
  return lambda: snt.Sequential([snt.nets.MLP(sizes, activation=activation)])


def _convnet():
  return snt.Sequential([snt.Conv2D(16, 3, stride=2), tf.nn.relu, snt.Conv2D(32, 3, stride=2),
                         tf.nn.relu, snt.Flatten(), snt.Linear(10)])


TASKS = [
    Task("mlp6-relu", "MLP 784-64×6-10, ReLU, MNIST 28×28, batch 128", 1000,
         _classifier(_mlp([64] * 6 + [10], tf.nn.relu), 28, 128)),
    Task("mlp-elu", "MLP 784-128-64-10, ELU, MNIST 28×28, batch 128", 1000,
         _classifier(_mlp([128, 64, 10], tf.nn.elu), 28, 128)),
    Task("mlp-swish", "MLP 784-96-96-10, swish, MNIST 28×28, batch 128", 1000,
         _classifier(_mlp([96, 96, 10], tf.nn.silu), 28, 128)),
    Task("convnet", "conv 16-32 3×3 stride 2, ReLU, linear, MNIST 28×28, batch 64", 1000,
         _classifier(_convnet, 28, 64, flatten=False)),
    Task("convnet-bn", "the convnet with batch norm, MNIST 28×28, batch 64", 1000,
         _classifier(_BatchNormConvnet, 28, 64, flatten=False)),
    Task("autoencoder", "MLP autoencoder 784-128-32-128-784, ReLU, MNIST, batch 128", 1000,
         _autoencoder),
    Task("char-rnn", "character LSTM 64 language model on bench/data/text.txt, 32×32", 1000,
         _char_rnn),
    Task("attention", "one self-attention layer reversing 8 tokens of 16, batch 64", 1000,
         _attention),
    Task("logistic", "logistic regression 784-10, MNIST 28×28, batch 128", 1000,
         _classifier(lambda: snt.Linear(10), 28, 128)),
    Task("regression", "MLP 20-64-1, tanh, regression on a random teacher, batch 64", 1000,
         _regression),
    Task("mlp-long", "MLP 64-32-10, ReLU, MNIST 8×8, batch 128, 20 000 steps (10× the longest "
         "training horizon)", 20000, _classifier(_mlp([32, 10], tf.nn.relu), 8, 128)),
]
