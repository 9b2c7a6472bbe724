"""Image-classification data for the MNIST and CIFAR-10 problems, and their minibatch loss.

Every loader returns ``(images, labels)`` as uint8 numpy arrays, images [N, height, width, channels]
and labels [N]; the problems keep them as uint8 tensors and convert only the sampled minibatch.

Where the data comes from, in order:
- ``data_dir`` given: the files there, in the dataset's standard download format. A missing file is
  an error that names the path and the expected files; there is no silent fallback.
- MNIST without ``data_dir``: TensorFlow Datasets' ``mnist`` if it is installed and already holds the
  data (nothing is downloaded), else the real 5 000-digit subset embedded in the package
  (``problems/data/README.md``).
"""

import gzip
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from l2l import checkpoint

EMBEDDED_MNIST = os.path.join(os.path.dirname(__file__), "data", "mnist_5k.npz")
SPLITS = ("train", "test")
_MNIST_IDX = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_MNIST_NPZ = "mnist.npz"  # keras.datasets.mnist's file: x_train, y_train, x_test, y_test.
_CIFAR_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
_CIFAR_SUBDIR = "cifar-10-batches-bin"  # What the binary tarball unpacks to.
_CIFAR_IMAGE_BYTES = 32 * 32 * 3
EMBEDDED_TRAIN_PER_CLASS = 400  # Of the embedded subset's 500 digits per class; the rest is "test".


def _check_split(split: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")


def _open_maybe_gz(path: str):
  if os.path.exists(path):
    return open(path, "rb")
  return gzip.open(path + ".gz", "rb")


def read_idx(path: str) -> np.ndarray:
  """An IDX file (``path`` or ``path.gz``) as a uint8 array of the shape in its header."""
  with _open_maybe_gz(path) as f:
    data = f.read()
  magic = int.from_bytes(data[:4], "big")
  if magic >> 8 != 0x08:  # 0x08: unsigned byte elements.
    raise checkpoint.LoadError(f"{path}: not a uint8 IDX file (magic number {magic:#x}).")
  ndim = magic & 0xFF
  shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_mnist_dir(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  image_file, label_file = _MNIST_IDX[split]
  paths = [os.path.join(data_dir, name) for name in (image_file, label_file)]
  if all(os.path.exists(p) or os.path.exists(p + ".gz") for p in paths):
    return read_idx(paths[0])[..., None], read_idx(paths[1])
  npz = os.path.join(data_dir, _MNIST_NPZ)
  if os.path.exists(npz):
    with np.load(npz) as d:
      return d[f"x_{split}"][..., None].astype(np.uint8), d[f"y_{split}"].astype(np.uint8)
  raise FileNotFoundError(
      f"No MNIST {split} data in --data_dir={data_dir!r}: expected {image_file}[.gz] and "
      f"{label_file}[.gz] (the IDX files from yann.lecun.com) or {_MNIST_NPZ} (as "
      "keras.datasets.mnist downloads it). Leave --data_dir unset to use the embedded subset.")


def _load_mnist_tfds(split: str) -> tuple[np.ndarray, np.ndarray] | None:
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  try:
    data = tfds.as_numpy(tfds.load("mnist", split=split, batch_size=-1, download=False))
  except Exception:  # pylint: disable=broad-except  # Not downloaded: use the embedded subset.
    return None
  return data["image"].astype(np.uint8), data["label"].astype(np.uint8)


def load_embedded_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
  """The embedded subset: per class, the first 400 digits for "train", the last 100 for "test"."""
  _check_split(split)
  with np.load(EMBEDDED_MNIST) as d:
    images, labels = d["images"], d["labels"]
  rank = np.zeros(len(labels), np.int64)
  for c in np.unique(labels):
    rank[labels == c] = np.arange(np.sum(labels == c))
  keep = (rank < EMBEDDED_TRAIN_PER_CLASS) == (split == "train")
  return images[keep][..., None], labels[keep]


def load_mnist(split: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """MNIST ``split`` ("train" / "test"): images uint8 [N, 28, 28, 1], labels uint8 [N]."""
  _check_split(split)
  if data_dir:
    return _load_mnist_dir(data_dir, split)
  return _load_mnist_tfds(split) or load_embedded_mnist(split)


def load_cifar10(split: str, data_dir: str) -> tuple[np.ndarray, np.ndarray]:
  """CIFAR-10 ``split`` from the binary batches: images uint8 [N, 32, 32, 3], labels uint8 [N].

  ``data_dir`` holds ``data_batch_1.bin`` … ``data_batch_5.bin`` and ``test_batch.bin`` (each record:
  one label byte, then 3 072 pixel bytes, channel-major), directly or in ``cifar-10-batches-bin/``.
  """
  _check_split(split)
  if not data_dir:
    raise FileNotFoundError("CIFAR-10 needs --data_dir: a directory with the binary batches "
                     f"({', '.join(_CIFAR_FILES['train'] + _CIFAR_FILES['test'])}) from "
                     "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz.")
  if os.path.isdir(os.path.join(data_dir, _CIFAR_SUBDIR)):
    data_dir = os.path.join(data_dir, _CIFAR_SUBDIR)
  paths = [os.path.join(data_dir, name) for name in _CIFAR_FILES[split]]
  missing = [p for p in paths if not os.path.exists(p)]
  if missing:
    raise FileNotFoundError(
        f"Missing CIFAR-10 {split} data: {missing}. --data_dir must hold the binary batches "
        f"{_CIFAR_FILES[split]} (cifar-10-binary.tar.gz unpacked).")
  records = []
  for path in paths:
    raw = np.fromfile(path, np.uint8)
    if raw.size % (_CIFAR_IMAGE_BYTES + 1):
      raise checkpoint.LoadError(f"{path}: {raw.size} bytes is not a whole number of CIFAR-10 records "
                       f"({_CIFAR_IMAGE_BYTES + 1} bytes each).")
    records.append(raw.reshape(-1, _CIFAR_IMAGE_BYTES + 1))
  records = np.concatenate(records)
  images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), records[:, 0].copy()


class MinibatchLoss:
  """A ``make_loss``: mean softmax cross-entropy of a freshly built classifier on a random minibatch.

  Each call builds the network with ``build_network()`` (so that its variables are created inside
  ``make_loss``) and draws ``batch_size`` examples uniformly with replacement with ``rng``, a
  ``tf.random.Generator`` whose state is a variable: ``rng.reset_from_seed`` makes the minibatches
  reproducible and checkpointing ``rng`` lets training resume on the same sequence.
  """

  def __init__(self, build_network: Callable[[], Callable[..., tf.Tensor]], images: np.ndarray,
               labels: np.ndarray, batch_size: int, seed: int = 0, **network_kwargs):
    """Args:
      build_network: returns a module mapping float images [batch_size, H, W, C] in [0, 1] to
        logits [batch_size, classes].
      images: uint8 [N, H, W, C].
      labels: integer [N].
      batch_size: examples per minibatch.
      seed: initial seed of ``rng``.
      **network_kwargs: passed to the network on every call (``is_training`` for batch norm).
    """
    if batch_size < 1:
      raise ValueError(f"batch_size must be positive, got {batch_size}.")
    self._build_network = build_network
    self._images, self._labels = tf.constant(images), tf.constant(labels)
    self._batch_size = batch_size
    self._network_kwargs = network_kwargs
    self.rng = tf.random.Generator.from_seed(seed)

  def __call__(self) -> tf.Tensor:
    network = self._build_network()
    indices = self.rng.uniform([self._batch_size], 0, int(self._images.shape[0]), tf.int64)
    batch = tf.cast(tf.gather(self._images, indices), tf.float32) / 255.0
    logits = network(batch, **self._network_kwargs)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(tf.gather(self._labels, indices), tf.int32), logits=logits))
