"""CIFAR-10: the original code's small convnet with batch norm, on a fresh minibatch each step."""

from typing import Sequence

import sonnet as snt
import tensorflow as tf

from problems import datasets

NUM_CLASSES = 10


class ConvNet(snt.Module):
  """Conv → batch norm → ReLU → 2×2 max-pool per layer, then an MLP with sigmoid hidden units.

  The original's ``ConvNet2D(use_batch_norm=True)`` + ``MLP``: 5×5 SAME convolutions with biases,
  batch norm with a learned offset and no scale, its moving statistics non-trainable.
  """

  def __init__(self, conv_channels: Sequence[int] = (16, 16, 16),
               linear_layers: Sequence[int] = (32,), name: str = "conv_net"):
    """Args:
      conv_channels: output channels of each convolution.
      linear_layers: hidden sizes of the MLP after the convolutions (then 10 logits).
      name: module name; the variables are ``{name}/conv_{i}/w``, ``{name}/batch_norm_{i}/offset``,
        ``{name}/mlp/linear_{i}/w`` and so on.
    """
    super().__init__(name=name)
    initializer = snt.initializers.RandomNormal(stddev=0.01)
    self.convs = [snt.Conv2D(c, 5, padding="SAME", w_init=initializer, b_init=initializer,
                             name=f"conv_{i}") for i, c in enumerate(conv_channels)]
    self.norms = [snt.BatchNorm(create_scale=False, create_offset=True, name=f"batch_norm_{i}")
                  for i in range(len(conv_channels))]
    self.mlp = snt.nets.MLP(list(linear_layers) + [NUM_CLASSES], w_init=initializer,
                            b_init=initializer, activation=tf.sigmoid, name="mlp")

  def __call__(self, images: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Logits [B, 10] for images [B, H, W, C]; batch statistics (and their update) if training."""
    x = images
    for conv, norm in zip(self.convs, self.norms):
      x = tf.nn.relu(norm(conv(x), is_training=is_training))
      x = tf.nn.max_pool2d(x, 2, 2, "SAME")
    return self.mlp(snt.flatten(x))


def cifar10(data_dir: str, conv_channels: Sequence[int] = (16, 16, 16),
            linear_layers: Sequence[int] = (32,), batch_size: int = 128, mode: str = "train",
            is_training: bool = True, seed: int = 0) -> datasets.MinibatchLoss:
  """``make_loss()`` for ``ConvNet`` with softmax cross-entropy on CIFAR-10 ``mode`` data.

  Args:
    data_dir: directory with the binary batches (``problems.datasets.load_cifar10``).
    conv_channels, linear_layers: see ``ConvNet``.
    batch_size: examples per step, drawn uniformly with replacement.
    mode: "train" (meta-training data) or "test" (held-out evaluation data).
    is_training: passed to batch norm: True (the original's behaviour, in both modes) normalises
      with the minibatch statistics and updates the moving averages.
    seed: seed of the minibatch sampler (``make_loss.rng``).
  """
  images, labels = datasets.load_cifar10(mode, data_dir)
  return datasets.MinibatchLoss(lambda: ConvNet(conv_channels, linear_layers), images, labels,
                                batch_size, seed, is_training=is_training)


def multi_net_assignments(num_conv: int = 3, num_linear: int = 2,
                          name: str = "conv_net") -> list[tuple[str, list[str]]]:
  """The original "cifar-multi" split: convolution kernels to net "conv", everything else to "fc"."""
  conv = [f"{name}/conv_{i}/w" for i in range(num_conv)]
  fc = [f"{name}/conv_{i}/b" for i in range(num_conv)]
  fc += [f"{name}/batch_norm_{i}/offset" for i in range(num_conv)]
  fc += [f"{name}/mlp/linear_{i}/{p}" for i in range(num_linear) for p in ("w", "b")]
  return [("conv", conv), ("fc", fc)]
