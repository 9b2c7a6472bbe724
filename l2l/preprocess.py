"""Gradient preprocessing for coordinatewise optimizer nets (paper Appendix A)."""

import numpy as np
import sonnet as snt
import tensorflow as tf


class Clamp(snt.Module):
  """Clips its input to ``[min_value, max_value]`` (either bound may be None)."""

  def __init__(self, min_value: float | None = None, max_value: float | None = None,
               name: str = "clamp"):
    """Args: min_value / max_value: the bounds, None for unbounded. name: module name."""
    super().__init__(name=name)
    self._min = min_value
    self._max = max_value

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    """Any shape in, the same shape out."""
    output = inputs
    if self._min is not None:
      output = tf.maximum(output, self._min)
    if self._max is not None:
      output = tf.minimum(output, self._max)
    return output


class LogAndSign(snt.Module):
  """Log-magnitude and scaled sign of gradients: two features per coordinate.

  ``(max(log(|g| + ε) / k, -1), clip(g · e^k, -1, 1))`` concatenated on the last axis, as the original
  code computes the paper's preprocessing (the paper writes p for k and uses p = 10; the code k = 5).
  """

  def __init__(self, k: float = 5.0, name: str = "log_and_sign"):
    """Args: k: the scale exponent (gradients below e^-k fall into the linear regime). name."""
    super().__init__(name=name)
    self._k = k
    self._log_clamp = Clamp(min_value=-1.0)
    self._sign_clamp = Clamp(min_value=-1.0, max_value=1.0)

  def __call__(self, gradients: tf.Tensor) -> tf.Tensor:
    """gradients: [..., 1] -> features [..., 2]."""
    eps = np.finfo(gradients.dtype.as_numpy_dtype).eps
    log = tf.math.log(tf.abs(gradients) + eps)
    clamped_log = self._log_clamp(log / self._k)
    sign = self._sign_clamp(gradients * np.exp(self._k))
    return tf.concat([clamped_log, sign], axis=-1)


class Identity(snt.Module):
  """No preprocessing."""

  def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
    return inputs
