"""Quadratic problems and the original code's tiny test problems.

Each function returns a ``make_loss()`` that creates its variables inside (with callable initial
values, so that a re-initialisation draws a fresh problem) and returns the scalar loss.
"""

from typing import Callable

import tensorflow as tf

MakeLoss = Callable[[], tf.Tensor]


def quadratic(batch_size: int = 128, num_dims: int = 10, stddev: float = 0.01,
              distribution: str = "uniform", dtype: tf.DType = tf.float32) -> MakeLoss:
  """``mean_b ‖W_b x_b − y_b‖²`` over a batch of independent problems.

  Args:
    batch_size: number of problems optimized at once (their losses are averaged).
    num_dims: dimension of x.
    stddev: standard deviation of the initial x ~ N(0, stddev²).
    distribution: "uniform" draws W and y from U[0, 1) (the original code); "normal" from N(0, 1)
      (the paper).
    dtype: float dtype of the problem.
  """
  samplers = {"uniform": tf.random.uniform, "normal": tf.random.normal}
  if distribution not in samplers:
    raise ValueError(f"Unknown distribution {distribution!r}; choose one of {sorted(samplers)}.")
  sample = samplers[distribution]

  def make_loss() -> tf.Tensor:
    x = tf.Variable(lambda: tf.random.normal([batch_size, num_dims], stddev=stddev, dtype=dtype),
                    name="x")
    w = tf.Variable(lambda: sample([batch_size, num_dims, num_dims], dtype=dtype), name="w",
                    trainable=False)
    y = tf.Variable(lambda: sample([batch_size, num_dims], dtype=dtype), name="y", trainable=False)
    product = tf.reduce_sum(w * x[:, None, :], -1)  # W_b x_b; faster than a batched matmul here.
    return tf.reduce_mean(tf.reduce_sum(tf.square(product - y), 1))

  return make_loss


def simple() -> MakeLoss:
  """``x²`` for one scalar x starting at 1."""
  def make_loss() -> tf.Tensor:
    x = tf.Variable(lambda: tf.ones([]), name="x")
    return tf.square(x)
  return make_loss


def simple_multi_optimizer(num_dims: int = 2) -> MakeLoss:
  """``Σ_i x_i²`` over ``num_dims`` scalar variables named ``x_0``, ``x_1``, … starting at 1."""
  def make_loss() -> tf.Tensor:
    coordinates = [tf.Variable(lambda: tf.ones([]), name=f"x_{i}") for i in range(num_dims)]
    return tf.reduce_sum(tf.square(tf.stack(coordinates)))
  return make_loss
