"""Task families written natively on stateless seeds (see ``l2l.tasks``): quadratics, MLP image
classifiers on MNIST, sine-wave regression."""

import math
from typing import Sequence

import numpy as np
import tensorflow as tf

from l2l import tasks
from problems import datasets
from problems import mnist as mnist_lib
from problems import sinusoid as sinusoid_lib


def dense_stack(params: Sequence[tf.Tensor], x: tf.Tensor, activation) -> tf.Tensor:
  """An MLP's output: ``params`` = [w_0, b_0, w_1, b_1, ...], ``activation`` between layers; any
  leading batch axes on x [..., n, in] and the params (one network per task) broadcast."""
  for i in range(0, len(params), 2):
    x = tf.matmul(x, params[i]) + params[i + 1][..., None, :]
    if i + 2 < len(params):
      x = activation(x)
  return x


class Quadratic(tasks.TaskFamily):
  """``mean_b ‖W_b x_b − y_b‖²`` over ``batch_size`` independent problems, as
  ``problems.quadratic.quadratic``: a task is (W, y), drawn U[0, 1) ("uniform", the original
  code's) or N(0, 1) ("normal", the paper's); x starts N(0, stddev²)."""

  def __init__(self, batch_size: int = 128, num_dims: int = 10, stddev: float = 0.01,
               distribution: str = "uniform"):
    super().__init__(name="quadratic")
    samplers = {"uniform": tf.random.stateless_uniform, "normal": tf.random.stateless_normal}
    if distribution not in samplers:
      raise ValueError(f"Unknown distribution {distribution!r}; choose one of {sorted(samplers)}.")
    self._sample = samplers[distribution]
    self._batch_size, self._num_dims, self._stddev = batch_size, num_dims, stddev

  def sample(self, seed):
    b, d = self._batch_size, self._num_dims
    return (self._sample([b, d, d], seed=tasks.fold(seed, 0)),
            self._sample([b, d], seed=tasks.fold(seed, 1)))

  def init(self, config, seed):
    del config
    return [tf.random.stateless_normal([self._batch_size, self._num_dims], seed=seed,
                                       stddev=self._stddev)]

  loss_broadcasts = True

  def loss(self, config, params, data):
    del data
    w, y = config
    product = tf.reduce_sum(w * params[0][..., None, :], -1)
    return tf.reduce_mean(tf.reduce_sum(tf.square(product - y), -1), -1)

  def param_names(self):
    return ["x"]

  def param_shapes(self):
    return [tf.TensorShape([self._batch_size, self._num_dims])]


def downsample(images: np.ndarray, size: int) -> np.ndarray:
  """uint8 [N, H, W, C] -> float32 [N, size, size, C] in [0, 1] (area averaging)."""
  floats = tf.constant(images, tf.float32) / 255.0
  if size == images.shape[1]:
    return floats.numpy()
  return tf.image.resize(floats, [size, size], method="area").numpy()


class _ImageData(tasks.TaskFamily):
  """Minibatches of images (flattened or not) and labels drawn with replacement, kept in
  non-trainable variables."""

  def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, name: str):
    super().__init__(name=name)
    self._images = tf.Variable(images.astype(np.float32), trainable=False, name="images")
    self._labels = tf.Variable(labels.astype(np.int32), trainable=False, name="labels")
    self._batch_size = batch_size

  def batch(self, config, seed):
    del config
    count = tf.shape(self._labels, out_type=tf.int64)[0]
    indices = tf.random.stateless_uniform([self._batch_size], seed=seed, minval=0,
                                          maxval=count, dtype=tf.int64)
    images, labels = self._images.read_value(), self._labels.read_value()
    return tf.gather(images, indices), tf.gather(labels, indices)


class MLPClassifier(_ImageData):
  """An MLP on images with softmax cross-entropy, trained on minibatches drawn with replacement.

  A task is one initialisation and minibatch sequence (the architecture is the family's); weights
  and biases start N(0, init_stddev²) (0.01, as ``problems.mnist``) or, with ``init_stddev=None``,
  weights N(0, 1/fan_in) and zero biases. The data lives in non-trainable variables (XLA would
  constant-fold a large constant for minutes).
  """

  def __init__(self, images: np.ndarray, labels: np.ndarray, hidden: Sequence[int] = (20,),
               activation: str = "sigmoid", batch_size: int = 128,
               init_stddev: float | None = 0.01, name: str = "mlp"):
    if activation not in mnist_lib.ACTIVATIONS:
      raise ValueError(f"Unknown activation {activation!r}; choose one of "
                       f"{sorted(mnist_lib.ACTIVATIONS)}.")
    features = int(np.prod(images.shape[1:]))
    super().__init__(np.reshape(images, [-1, features]), labels, batch_size, name)
    self._activation = mnist_lib.ACTIVATIONS[activation]
    self._sizes = [features, *hidden, int(labels.max()) + 1]
    self._init_stddev = init_stddev

  def init(self, config, seed):
    del config
    params = []
    for i, (fan_in, fan_out) in enumerate(zip(self._sizes[:-1], self._sizes[1:])):
      stddev = self._init_stddev or 1.0 / math.sqrt(fan_in)
      params.append(tf.random.stateless_normal([fan_in, fan_out], seed=tasks.fold(seed, 2 * i),
                                               stddev=stddev))
      if self._init_stddev:
        params.append(tf.random.stateless_normal([fan_out], seed=tasks.fold(seed, 2 * i + 1),
                                                 stddev=self._init_stddev))
      else:
        params.append(tf.zeros([fan_out]))
    return params

  loss_broadcasts = True

  def loss(self, config, params, data):
    del config
    x, labels = data
    logits = dense_stack(params, x, self._activation)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits), -1)

  def param_names(self):
    return [f"{kind}_{i}" for i in range(len(self._sizes) - 1) for kind in ("w", "b")]

  def param_shapes(self):
    shapes = []
    for fan_in, fan_out in zip(self._sizes[:-1], self._sizes[1:]):
      shapes += [tf.TensorShape([fan_in, fan_out]), tf.TensorShape([fan_out])]
    return shapes


def mnist(hidden: Sequence[int] = (20,), activation: str = "sigmoid", batch_size: int = 128,
          image_size: int = 28, mode: str = "train", data_dir: str | None = None,
          init_stddev: float | None = 0.01) -> MLPClassifier:
  """An ``MLPClassifier`` family on MNIST (``image_size`` 8: the 8×8 downsampled digits that
  learned_optimization's small tasks use)."""
  images, labels = datasets.load_mnist(mode, data_dir)
  name = f"mnist{image_size}_mlp_{'_'.join(map(str, hidden))}_{activation}"
  return MLPClassifier(downsample(images, image_size), labels, hidden, activation, batch_size,
                       init_stddev, name)


def _fan_in_init(shapes: Sequence[Sequence[int]], seed: tf.Tensor) -> list[tf.Tensor]:
  """Weights N(0, 1/fan_in) (fan-in: all axes but the last), biases (rank 1) zero."""
  params = []
  for i, shape in enumerate(shapes):
    if len(shape) == 1:
      params.append(tf.zeros(shape))
    else:
      fan_in = int(np.prod(shape[:-1]))
      params.append(tf.random.stateless_normal(shape, seed=tasks.fold(seed, i),
                                               stddev=1.0 / math.sqrt(fan_in)))
  return params


class ConvClassifier(_ImageData):
  """A small convnet on images: ``channels`` 3×3 convolutions with stride 2 ('SAME'),
  ``activation`` after each, global average pooling, a linear classifier; fan-in initialisation.

  A convolution is a matmul of the image's patches with the kernel, so the loss broadcasts over a
  leading axis of tasks (one kernel per task) like the MLPs'.
  """

  loss_broadcasts = True

  def __init__(self, images: np.ndarray, labels: np.ndarray, channels: Sequence[int] = (8, 16),
               activation: str = "relu", batch_size: int = 64, name: str = "conv"):
    super().__init__(images, labels, batch_size, name)
    self._activation = mnist_lib.ACTIVATIONS[activation]
    self._shapes = []
    in_channels = int(images.shape[-1])
    for out in channels:
      self._shapes += [[3, 3, in_channels, out], [out]]
      in_channels = out
    self._shapes += [[in_channels, int(labels.max()) + 1], [int(labels.max()) + 1]]

  def init(self, config, seed):
    del config
    return _fan_in_init(self._shapes, seed)

  def loss(self, config, params, data):
    del config
    x, labels = data  # x [..., n, H, W, C]
    batch_shape = x.shape[:-3]
    for i in range(0, len(params) - 2, 2):
      kernel, bias = params[i], params[i + 1]
      height, width, channels = x.shape[-3:]
      patches = tf.image.extract_patches(
          tf.reshape(x, [-1, height, width, channels]), [1, 3, 3, 1], [1, 2, 2, 1], [1, 1, 1, 1],
          "SAME")
      out_h, out_w = patches.shape[1:3]
      patches = tf.reshape(patches, [*batch_shape[:-1], -1, 9 * channels])
      flat_kernel = tf.reshape(kernel, [*kernel.shape[:-4], 9 * channels, kernel.shape[-1]])
      x = self._activation(tf.matmul(patches, flat_kernel) + bias[..., None, :])
      x = tf.reshape(x, [*batch_shape, out_h, out_w, kernel.shape[-1]])
    logits = tf.matmul(tf.reduce_mean(x, [-3, -2]), params[-2]) + params[-1][..., None, :]
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits), -1)

  def param_shapes(self):
    return [tf.TensorShape(s) for s in self._shapes]


class Autoencoder(_ImageData):
  """An MLP autoencoder on flattened images: ``hidden`` layers (the middle one the code),
  ``activation`` between layers, a sigmoid output; mean squared reconstruction error."""

  loss_broadcasts = True

  def __init__(self, images: np.ndarray, labels: np.ndarray, hidden: Sequence[int] = (32,),
               activation: str = "relu", batch_size: int = 64, name: str = "autoencoder"):
    super().__init__(np.reshape(images, [len(images), -1]), labels, batch_size, name)
    self._activation = mnist_lib.ACTIVATIONS[activation]
    sizes = [int(np.prod(images.shape[1:])), *hidden, int(np.prod(images.shape[1:]))]
    self._shapes = [s for a, b in zip(sizes[:-1], sizes[1:]) for s in ([a, b], [b])]

  def init(self, config, seed):
    del config
    return _fan_in_init(self._shapes, seed)

  def loss(self, config, params, data):
    del config
    x, _ = data
    reconstruction = tf.sigmoid(dense_stack(params, x, self._activation))
    return tf.reduce_mean(tf.square(reconstruction - x), [-2, -1])

  def param_shapes(self):
    return [tf.TensorShape(s) for s in self._shapes]


class TeacherRegression(tasks.TaskFamily):
  """Generated data: a task is a random teacher MLP (``inputs`` → ``teacher_hidden`` tanh → 1,
  weights N(0, 1/fan_in)); the student MLP (``hidden``, ``activation``) fits its outputs on
  inputs x ~ N(0, I), mean squared error."""

  loss_broadcasts = True

  def __init__(self, inputs: int = 16, hidden: Sequence[int] = (32,), activation: str = "relu",
               teacher_hidden: int = 16, batch_size: int = 64):
    super().__init__(name=f"teacher_{inputs}_{'_'.join(map(str, hidden))}_{activation}")
    self._activation = mnist_lib.ACTIVATIONS[activation]
    self._inputs, self._batch_size = inputs, batch_size
    self._teacher = [[inputs, teacher_hidden], [teacher_hidden], [teacher_hidden, 1], [1]]
    sizes = [inputs, *hidden, 1]
    self._shapes = [s for a, b in zip(sizes[:-1], sizes[1:]) for s in ([a, b], [b])]

  def sample(self, seed):
    weights = _fan_in_init(self._teacher, seed)
    weights[1] = tf.random.stateless_normal(self._teacher[1], seed=tasks.fold(seed, 9))
    return weights

  def init(self, config, seed):
    del config
    return _fan_in_init(self._shapes, seed)

  def batch(self, config, seed):
    x = tf.random.stateless_normal([self._batch_size, self._inputs], seed=seed)
    return x, dense_stack(config, x, tf.tanh)

  def loss(self, config, params, data):
    del config
    x, y = data
    return tf.reduce_mean(tf.square(dense_stack(params, x, self._activation) - y), [-2, -1])

  def param_shapes(self):
    return [tf.TensorShape(s) for s in self._shapes]


class Sinusoid(tasks.TaskFamily):
  """Sine-wave regression: a task is (amplitude, phase) as ``problems.sinusoid``; minibatches of
  ``batch_size`` points x ~ U(-5, 5); the 1-40-40-1 tanh MLP starts with PyTorch's default
  initialisation, U(±1/√fan_in)."""

  def __init__(self, hidden: Sequence[int] = (40, 40), batch_size: int = 10):
    super().__init__(name="sinusoid")
    self._sizes = [1, *hidden, 1]
    self._batch_size = batch_size

  def sample(self, seed):
    amplitude = tf.random.stateless_uniform([], seed=tasks.fold(seed, 0),
                                            minval=sinusoid_lib.AMPLITUDE_RANGE[0],
                                            maxval=sinusoid_lib.AMPLITUDE_RANGE[1])
    phase = tf.random.stateless_uniform([], seed=tasks.fold(seed, 1),
                                        minval=sinusoid_lib.PHASE_RANGE[0],
                                        maxval=sinusoid_lib.PHASE_RANGE[1])
    return amplitude, phase

  def init(self, config, seed):
    del config
    params = []
    for i, (fan_in, fan_out) in enumerate(zip(self._sizes[:-1], self._sizes[1:])):
      bound = 1.0 / math.sqrt(fan_in)
      for j, shape in enumerate(([fan_in, fan_out], [fan_out])):
        params.append(tf.random.stateless_uniform(shape, seed=tasks.fold(seed, i, j),
                                                  minval=-bound, maxval=bound))
    return params

  def batch(self, config, seed):
    x = tf.random.stateless_uniform([self._batch_size, 1], seed=seed, minval=-5.0, maxval=5.0)
    amplitude, phase = config
    return x, amplitude * tf.sin(x + phase)

  loss_broadcasts = True

  def loss(self, config, params, data):
    del config
    x, y = data
    return tf.reduce_mean(tf.square(dense_stack(params, x, tf.tanh) - y), [-2, -1])

  def param_shapes(self):
    shapes = []
    for fan_in, fan_out in zip(self._sizes[:-1], self._sizes[1:]):
      shapes += [tf.TensorShape([fan_in, fan_out]), tf.TensorShape([fan_out])]
    return shapes
