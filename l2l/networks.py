"""Optimizer networks: learned (LSTM) and hand-designed (SGD, Adam), behind one interface.

An optimizer net maps a batch of gradient *rows* and its recurrent state to update rows and the next
state: ``net(gradients [N, d], state) -> (updates [N, d], next_state)``; updates are added to the
optimizee's values. ``net.to_rows(x)`` / ``net.from_rows(rows, shape)`` convert one variable to rows
and back, so that every variable assigned to a net goes through one net call per step:

- coordinatewise nets (``CoordinateWiseDeepLSTM``, ``Sgd``, ``Adam``): one row per coordinate, d = 1;
- ``KernelDeepLSTM``: one row per (input, output) channel pair of a conv kernel, d = kernel height ×
  width;
- ``StandardDeepLSTM``: the whole variable as one row.

The state of a net is a nested structure of ``[N, …]`` tensors (one slice per row), so it can be
carried in variables and sliced per variable.
"""

from typing import Any, Sequence

import numpy as np
import sonnet as snt
import tensorflow as tf

from l2l import preprocess

State = Any


class Network(snt.Module):
  """Base class: coordinatewise rows and no state."""

  def to_rows(self, x: tf.Tensor) -> tf.Tensor:
    """One variable's values -> rows [N, d]."""
    return tf.reshape(x, [-1, 1])

  def from_rows(self, rows: tf.Tensor, shape: Sequence[int]) -> tf.Tensor:
    """Rows [N, d] -> a tensor of the variable's ``shape``."""
    return tf.reshape(rows, shape)

  def num_rows(self, shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))

  def initial_state(self, num_rows: int) -> State:
    """The state for ``num_rows`` rows at the start of an optimization."""
    del num_rows
    return ()


def _initializers(initializer: str | dict | None) -> dict:
  """``snt.Linear`` initializer arguments from a name, a {"w": name, "b": name} dict, or None."""
  if initializer is None:
    return {}
  names = initializer if isinstance(initializer, dict) else {"w": initializer, "b": initializer}
  lookup = {"zeros": snt.initializers.Zeros, "ones": snt.initializers.Ones}
  out = {}
  for key, name in names.items():
    if key not in ("w", "b") or name not in lookup:
      raise ValueError(f"Unknown initializer {key}={name!r}; use 'zeros' or 'ones' for 'w' / 'b'.")
    out[f"{key}_init"] = lookup[name]()
  return out


def _preprocessor(name: str, options: dict | None) -> snt.Module:
  modules = {"identity": preprocess.Identity, "LogAndSign": preprocess.LogAndSign,
             "Clamp": preprocess.Clamp}
  if name not in modules:
    raise ValueError(f"Unknown preprocess_name {name!r}; choose one of {sorted(modules)}.")
  return modules[name](**(options or {}))


class StandardDeepLSTM(Network):
  """Preprocessing, a stack of LSTMs and a linear output layer scaled by ``scale``.

  The whole variable is one row; see the subclasses for the coordinatewise and kernel forms.
  """

  def __init__(self, output_size: int, layers: Sequence[int] = (20, 20),
               preprocess_name: str = "identity", preprocess_options: dict | None = None,
               scale: float = 1.0, initializer: str | dict | None = None,
               name: str = "deep_lstm"):
    """Args:
      output_size: width d of an update row.
      layers: hidden sizes of the stacked LSTMs; () for a linear net without state.
      preprocess_name: "identity", "LogAndSign" or "Clamp" (a module of ``l2l.preprocess``).
      preprocess_options: keyword arguments of the preprocessing module, e.g. {"k": 5}.
      scale: factor on the linear output (the paper's output scaling).
      initializer: initializer of the output layer: None (Sonnet's default), "zeros", or a dict
        {"w": ..., "b": ...}.
      name: module name.
    """
    super().__init__(name=name)
    self._output_size = output_size
    self._scale = scale
    self._preprocess = _preprocessor(preprocess_name, preprocess_options)
    self._core = snt.DeepRNN([snt.LSTM(units, name=f"lstm_{i}") for i, units in enumerate(layers)]
                             ) if layers else None
    self._linear = snt.Linear(output_size, name="linear", **_initializers(initializer))

  def to_rows(self, x: tf.Tensor) -> tf.Tensor:
    return tf.reshape(x, [1, -1])

  def num_rows(self, shape: Sequence[int]) -> int:
    return 1

  def initial_state(self, num_rows: int) -> State:
    return self._core.initial_state(num_rows) if self._core is not None else ()

  def __call__(self, inputs: tf.Tensor, prev_state: State) -> tuple[tf.Tensor, State]:
    """inputs: gradient rows [N, d]; returns (update rows [N, output_size], next state)."""
    features = self._preprocess(inputs)
    next_state = prev_state
    if self._core is not None:
      features, next_state = self._core(features, prev_state)
    return self._linear(features) * self._scale, next_state


class CoordinateWiseDeepLSTM(StandardDeepLSTM):
  """The paper's optimizer: one small LSTM shared by every coordinate, state per coordinate."""

  def __init__(self, name: str = "cw_deep_lstm", **kwargs):
    """Args: as ``StandardDeepLSTM`` without ``output_size`` (it is 1)."""
    super().__init__(output_size=1, name=name, **kwargs)

  def to_rows(self, x: tf.Tensor) -> tf.Tensor:
    return tf.reshape(x, [-1, 1])

  def num_rows(self, shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


class KernelDeepLSTM(StandardDeepLSTM):
  """An LSTM over conv kernels: one row per (input, output) channel pair holding the k×k window."""

  def __init__(self, kernel_shape: Sequence[int], name: str = "kernel_deep_lstm", **kwargs):
    """Args: kernel_shape: [height, width] of the kernels. Others as ``StandardDeepLSTM``."""
    self._kernel_shape = list(kernel_shape)
    super().__init__(output_size=int(np.prod(kernel_shape)), name=name, **kwargs)

  def to_rows(self, x: tf.Tensor) -> tf.Tensor:
    """[h, w, in, out] -> [in * out, h * w]."""
    if list(x.shape[:2]) != self._kernel_shape or x.shape.rank != 4:
      raise ValueError(f"KernelDeepLSTM({self._kernel_shape}) got a variable of shape {x.shape}; "
                       "it takes conv kernels [height, width, in, out].")
    return tf.reshape(tf.transpose(x, [2, 3, 0, 1]), [-1, int(np.prod(self._kernel_shape))])

  def from_rows(self, rows: tf.Tensor, shape: Sequence[int]) -> tf.Tensor:
    h, w, c_in, c_out = shape
    return tf.transpose(tf.reshape(rows, [c_in, c_out, h, w]), [2, 3, 0, 1])

  def num_rows(self, shape: Sequence[int]) -> int:
    return int(shape[2] * shape[3])


class Sgd(Network):
  """Hand-designed SGD as a net: ``update = -learning_rate * gradient``."""

  def __init__(self, learning_rate: float = 0.001, name: str = "sgd"):
    super().__init__(name=name)
    self._learning_rate = learning_rate

  def __call__(self, inputs: tf.Tensor, prev_state: State) -> tuple[tf.Tensor, State]:
    return -self._learning_rate * inputs, prev_state


class Adam(Network):
  """Hand-designed Adam as a net, with bias correction; state (m, v, t) per coordinate."""

  def __init__(self, learning_rate: float = 0.1, beta1: float = 0.9, beta2: float = 0.999,
               epsilon: float = 1e-8, name: str = "adam"):
    super().__init__(name=name)
    self._learning_rate = learning_rate
    self._beta1, self._beta2, self._epsilon = beta1, beta2, epsilon

  def initial_state(self, num_rows: int) -> State:
    return tuple(tf.zeros([num_rows, 1]) for _ in range(3))

  def __call__(self, inputs: tf.Tensor, prev_state: State) -> tuple[tf.Tensor, State]:
    m, v, t = prev_state
    t = t + 1
    m = self._beta1 * m + (1 - self._beta1) * inputs
    v = self._beta2 * v + (1 - self._beta2) * tf.square(inputs)
    m_hat = m / (1 - tf.pow(self._beta1, t))
    v_hat = v / (1 - tf.pow(self._beta2, t))
    return -self._learning_rate * m_hat / (tf.sqrt(v_hat) + self._epsilon), (m, v, t)


NETS = {cls.__name__: cls for cls in
        (StandardDeepLSTM, CoordinateWiseDeepLSTM, KernelDeepLSTM, Sgd, Adam)}


def factory(net: str, net_options: Any = (), net_path: str | None = None) -> Network:
  """Builds the net class named ``net`` with ``net_options`` and loads weights from ``net_path``."""
  if net not in NETS:
    raise ValueError(f"Unknown net {net!r}; choose one of {sorted(NETS)}.")
  network = NETS[net](**dict(net_options))
  if net_path is not None:
    load(network, net_path)
  return network


def save(network: Network, path: str) -> str:
  """Writes the net's weights as a ``tf.train.Checkpoint``; returns the checkpoint path."""
  return tf.train.Checkpoint(net=network).write(path)


def load(network: Network, path: str) -> None:
  """Restores weights saved by ``save``; variables not built yet are restored when created."""
  if not tf.io.gfile.exists(path + ".index"):
    raise FileNotFoundError(f"No net checkpoint at {path!r} (expected {path}.index).")
  tf.train.Checkpoint(net=network).read(path).expect_partial()

