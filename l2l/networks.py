"""Optimizer networks: learned (LSTM) and hand-designed (SGD, Adam), behind one interface.

An optimizer net maps a batch of gradient *rows* and its recurrent state to update rows and the next
state: ``net(gradients [N, d], state) -> (updates [N, d], next_state)``; updates are added to the
optimizee's values. ``net.to_rows(x)`` / ``net.from_rows(rows, shape)`` convert one variable to rows
and back, so that every variable assigned to a net goes through one net call per step:

- coordinatewise nets (``CoordinateWiseDeepLSTM``, ``Sgd``, ``Adam``): one row per coordinate, d = 1;
- ``KernelDeepLSTM``: one row per (input, output) channel pair of a conv kernel, d = kernel height ×
  width;
- ``StandardDeepLSTM``: the whole variable as one row;
- ``NNAdam``: coordinatewise Adam whose hyperparameters one LSTM sets from all rows together.

The state of a net is a nested structure of tensors whose shapes depend only on N, so it can be
carried in variables. The LSTM nets keep theirs feature-major, ``[hidden, N]``: see ``LSTMStack``.
"""

import json
from typing import Any, Sequence

import numpy as np
import sonnet as snt
import tensorflow as tf

from l2l import preprocess
from l2l.nets.base import State, TensorNetwork
from l2l.nets.celo import Celo


class Network(snt.Module):
  """Base class: coordinatewise rows, no state, no weights.

  ``apply(theta, rows, state)`` is the net's maths, pure in its weights ``theta`` (the list
  ``weight_list()`` returns, in that order); calling the module applies its own weights. Rows and
  state may carry leading batch axes (several inner problems at once) and so may ``theta`` (one
  perturbed copy of the weights per problem, for ES / PES): every op broadcasts over them.
  """

  layout: "RowLayout"

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.layout = CoordinateRows()

  def to_rows(self, x: tf.Tensor, batch_dims: int = 0) -> tf.Tensor:
    """One variable's values (after ``batch_dims`` leading batch axes) -> rows [..., N, d]."""
    return self.layout.to_rows(x, batch_dims)

  def from_rows(self, rows: tf.Tensor, shape: Sequence[int]) -> tf.Tensor:
    """Rows [..., N, d] -> a tensor of ``shape`` (the batch axes and the variable's shape)."""
    return self.layout.from_rows(rows, shape)

  def initial_state(self, num_rows: int) -> State:
    """The state for ``num_rows`` rows at the start of an optimization."""
    del num_rows
    return ()

  def build(self, row_width: int) -> None:
    """Creates the weights for rows of width ``row_width`` (nets with weights override it)."""
    del row_width

  def weight_list(self) -> list[tf.Variable]:
    """The weights ``apply`` takes, in its order; empty before ``build``."""
    return []

  def apply(self, theta: Sequence[tf.Tensor], rows: tf.Tensor, state: State
            ) -> tuple[tf.Tensor, State]:
    """(update rows like ``rows``, next state) at weights ``theta``."""
    raise NotImplementedError

  def __call__(self, rows: tf.Tensor, state: State) -> tuple[tf.Tensor, State]:
    self.build(int(rows.shape[-1]))
    return self.apply(self.weight_list(), rows, state)


class RowLayout:
  """How one variable becomes rows of a net, and back."""

  def to_rows(self, x: tf.Tensor, batch_dims: int = 0) -> tf.Tensor:
    raise NotImplementedError

  def from_rows(self, rows: tf.Tensor, shape: Sequence[int]) -> tf.Tensor:
    return tf.reshape(rows, shape)


class CoordinateRows(RowLayout):
  """One row per coordinate, d = 1."""

  def to_rows(self, x: tf.Tensor, batch_dims: int = 0) -> tf.Tensor:
    return tf.reshape(x, [*x.shape[:batch_dims], -1, 1])


class TensorRows(RowLayout):
  """The whole variable as one row."""

  def to_rows(self, x: tf.Tensor, batch_dims: int = 0) -> tf.Tensor:
    return tf.reshape(x, [*x.shape[:batch_dims], 1, -1])


class KernelRows(RowLayout):
  """Conv kernels [h, w, in, out]: one row per (in, out) channel pair holding the h×w window."""

  def __init__(self, kernel_shape: Sequence[int]):
    self.kernel_shape = [int(k) for k in kernel_shape]

  def to_rows(self, x: tf.Tensor, batch_dims: int = 0) -> tf.Tensor:
    """[..., h, w, in, out] -> [..., in * out, h * w]."""
    if list(x.shape[batch_dims:batch_dims + 2]) != self.kernel_shape or (
        x.shape.rank - batch_dims != 4):
      raise ValueError(f"KernelDeepLSTM({self.kernel_shape}) got a variable of shape "
                       f"{x.shape[batch_dims:]}; it takes conv kernels [height, width, in, out].")
    batch = list(range(batch_dims))
    moved = tf.transpose(x, batch + [batch_dims + i for i in (2, 3, 0, 1)])
    return tf.reshape(moved, [*x.shape[:batch_dims], -1, int(np.prod(self.kernel_shape))])

  def from_rows(self, rows: tf.Tensor, shape: Sequence[int]) -> tf.Tensor:
    *batch, h, w, c_in, c_out = shape
    n = len(batch)
    windows = tf.reshape(rows, [*batch, c_in, c_out, h, w])
    return tf.transpose(windows, list(range(n)) + [n + i for i in (2, 3, 0, 1)])


def weights(net: "Network") -> list[tf.Variable]:
  """The net's variables; none for a net not built yet (Sonnet would raise) or without weights."""
  try:
    return list(net.variables)
  except ValueError:
    return []


def build_for(net: "Network | TensorNetwork", shapes: Sequence[Sequence[int]]) -> State:
  """Builds ``net`` for variables of ``shapes`` (one net call on zero rows); their initial state."""
  if isinstance(net, TensorNetwork):
    return net.initial_state(shapes)
  rows = tf.concat([net.to_rows(tf.zeros(shape)) for shape in shapes], 0)
  initial = net.initial_state(int(rows.shape[0]))
  net(rows, initial)
  return initial


def group_updates(net: "Network", gradients: Sequence[tf.Tensor], state: State,
                  theta: Sequence[tf.Tensor] | None = None, batch_dims: int = 0
                  ) -> tuple[list[tf.Tensor], State]:
  """One net call for several variables: their gradient rows concatenated, the update rows split
  back; returns float32 updates shaped like the gradients, and the next state.

  ``theta``: the net's weights to apply (default: its own); ``batch_dims``: leading axes of the
  gradients (and state) that index separate inner problems.
  """
  rows = [net.to_rows(tf.cast(g, tf.float32), batch_dims) for g in gradients]
  all_rows = tf.concat(rows, -2) if len(rows) > 1 else rows[0]
  if theta is None:
    steps, next_state = net(all_rows, state)
  else:
    steps, next_state = net.apply(theta, all_rows, state)
  parts = tf.split(steps, [r.shape[-2] for r in rows], -2) if len(rows) > 1 else [steps]
  return [net.from_rows(part, g.shape) for part, g in zip(parts, gradients)], next_state


def net_updates(net: "Network | TensorNetwork", params: Sequence[tf.Tensor],
                grads: Sequence[tf.Tensor], loss: tf.Tensor | None, state: State
                ) -> tuple[list[tf.Tensor], State]:
  """One step of ``net`` for a group of variables: their float32 updates and the next state.

  Row nets see only the gradients (``group_updates``); a ``TensorNetwork`` also the current values
  and the loss, which it then needs.
  """
  # Embeddings' IndexedSlices become dense tensors of the parameter's static shape.
  grads = [tf.reshape(tf.convert_to_tensor(g), p.shape) for g, p in zip(grads, params)]
  if isinstance(net, TensorNetwork):
    if loss is None:
      raise ValueError(f"{type(net).__name__} reads the loss: pass it (LearnedOptimizer.apply(..., "
                       "loss=loss)).")
    return net.updates(params, grads, loss, state)
  return group_updates(net, grads, state)


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


def _truncated_normal(fan_in: int) -> snt.initializers.Initializer:
  return snt.initializers.TruncatedNormal(stddev=1.0 / np.sqrt(fan_in))


def _output_layer(initializers: dict, output_size: int, input_size: int
                  ) -> tuple[tf.Variable, tf.Variable]:
  """Feature-major linear layer ``w [output, input] @ x + b [output, 1]``, initialised by
  ``initializers`` (see ``_initializers``) or as ``snt.Linear``."""
  w_init = initializers.get("w_init", _truncated_normal(input_size))
  b_init = initializers.get("b_init", snt.initializers.Zeros())
  return (tf.Variable(w_init([output_size, input_size], tf.float32), name="w"),
          tf.Variable(b_init([output_size, 1], tf.float32), name="b"))


def _feature_major(rows: tf.Tensor) -> tf.Tensor:
  """[..., N, d] <-> [..., d, N]."""
  return tf.linalg.matrix_transpose(rows)


@tf.recompute_grad
def _lstm_cell(w: tf.Tensor, b: tf.Tensor, x: tf.Tensor, h: tf.Tensor, c: tf.Tensor
               ) -> tuple[tf.Tensor, tf.Tensor]:
  """One LSTM layer over feature-major rows: (next hidden, next cell).

  Differentiated by recomputing its gates from the inputs (``tf.recompute_grad``): over a
  ``tf.while_loop`` unroll only x, h and c are stacked for the backward pass, not the gate-sized
  intermediates. The recomputation costs less than the memory traffic it saves: MNIST
  meta-training 1.27 → 1.10 s per epoch (``bench/mnist_speed.py``), and the compiled
  meta-iteration's peak memory is 4× lower (``bench/meta_step.py``).
  """
  hidden = h.shape[-2]
  gates = tf.matmul(w, tf.concat([x, h], -2)) + b
  sigmoid_gates, cell_gate = tf.split(gates, [3 * hidden, hidden], -2)
  input_gate, forget_gate, output_gate = tf.split(tf.sigmoid(sigmoid_gates), 3, -2)
  c = forget_gate * c + input_gate * tf.tanh(cell_gate)
  return output_gate * tf.tanh(c), c


def lstm_stack_apply(theta: Sequence[tf.Tensor], inputs: tf.Tensor, prev_state
                     ) -> tuple[tf.Tensor, tuple]:
  """The maths of ``LSTMStack`` at weights ``theta = [w_0, b_0, w_1, b_1, ...]``.

  inputs ``[..., input_size, N]``; returns (top hidden state ``[..., hidden, N]``, next state).
  """
  next_state, x = [], inputs
  for i, (h, c) in enumerate(prev_state):
    x, c = _lstm_cell(tf.convert_to_tensor(theta[2 * i]), tf.convert_to_tensor(theta[2 * i + 1]),
                      x, h, c)
    next_state.append((x, c))
  return x, tuple(next_state)


class LSTMStack(snt.Module):
  """Stacked LSTMs for N independent rows at once, in feature-major layout.

  Every layer computes its four gates with one matmul, ``W [4h, in + h] @ [x; h_prev] + b``, in
  the order input, forget, output, cell, so one sigmoid covers three gates. Inputs, hidden and cell
  states are ``[features, N]``: with the many rows (one per optimizee coordinate) on the minor axis,
  the small matmuls and the gate arithmetic run markedly faster on CPU than ``snt.DeepRNN`` of
  ``snt.LSTM`` in ``[N, features]`` layout (``bench/meta_step.py``). The maths is ``snt.LSTM``'s,
  with the same initialisation (truncated normal, stddev 1/√fan-in, zero bias, forget bias 1).
  """

  def __init__(self, hidden_sizes: Sequence[int], forget_bias: float = 1.0,
               name: str = "lstm_stack"):
    """Args:
      hidden_sizes: hidden size of each layer, bottom first.
      forget_bias: initial bias of the forget gate (the other gates' biases start at 0).
      name: module name.
    """
    super().__init__(name=name)
    self.hidden_sizes = [int(h) for h in hidden_sizes]
    self._forget_bias = forget_bias

  @snt.once
  def build(self, input_size: int):
    self.w, self.b = [], []
    for i, hidden in enumerate(self.hidden_sizes):
      w_x = _truncated_normal(input_size)([4 * hidden, input_size], tf.float32)
      w_h = _truncated_normal(hidden)([4 * hidden, hidden], tf.float32)
      self.w.append(tf.Variable(tf.concat([w_x, w_h], 1), name=f"w_{i}"))
      bias = np.repeat([0.0, self._forget_bias, 0.0, 0.0], hidden)[:, None]
      self.b.append(tf.Variable(tf.constant(bias, tf.float32), name=f"b_{i}"))
      input_size = hidden

  def weight_list(self) -> list[tf.Variable]:
    return [v for pair in zip(self.w, self.b) for v in pair]

  def initial_state(self, num_rows: int) -> tuple[tuple[tf.Tensor, tf.Tensor], ...]:
    """Zero (hidden, cell) states, each ``[hidden, num_rows]``, one pair per layer."""
    return tuple((tf.zeros([h, num_rows]), tf.zeros([h, num_rows])) for h in self.hidden_sizes)

  def __call__(self, inputs: tf.Tensor, prev_state) -> tuple[tf.Tensor, tuple]:
    """inputs: ``[input_size, N]``; returns (top hidden state ``[hidden, N]``, next state)."""
    self.build(int(inputs.shape[-2]))
    return lstm_stack_apply(self.weight_list(), inputs, prev_state)


class DeepLSTM(Network):
  """Preprocessing, a stack of LSTMs and a linear output layer scaled by ``scale``, over the rows
  of a ``RowLayout``: the recurrent core and the row layout are composed, so the three public
  forms below differ only in their layout."""

  def __init__(self, layout: RowLayout, output_size: int, layers: Sequence[int] = (20, 20),
               preprocess_name: str = "identity", preprocess_options: dict | None = None,
               scale: float = 1.0, initializer: str | dict | None = None,
               name: str = "deep_lstm"):
    """Args:
      layout: how variables become rows.
      output_size: width d of an update row.
      layers: hidden sizes of the stacked LSTMs; () for a linear net without state.
      preprocess_name: "identity", "LogAndSign" or "Clamp" (a module of ``l2l.preprocess``).
      preprocess_options: keyword arguments of the preprocessing module, e.g. {"k": 5}.
      scale: factor on the linear output (the paper's output scaling).
      initializer: initializer of the output layer: None (truncated normal with stddev 1/√fan-in
        and zero bias, as ``snt.Linear``), "zeros", "ones", or a dict {"w": ..., "b": ...}.
      name: module name.
    """
    super().__init__(name=name)
    self.layout = layout
    self._output_size = output_size
    self._scale = scale
    self._preprocess = _preprocessor(preprocess_name, preprocess_options)
    self.core = LSTMStack(layers) if layers else None
    self._initializers = _initializers(initializer)

  @snt.once
  def build(self, row_width: int):
    features = int(self._preprocess(tf.zeros([1, row_width])).shape[-1])
    if self.core is not None:
      self.core.build(features)
      features = self.core.hidden_sizes[-1]
    self.w, self.b = _output_layer(self._initializers, self._output_size, features)

  def weight_list(self) -> list[tf.Variable]:
    core = self.core.weight_list() if self.core is not None else []
    return core + [self.w, self.b]

  def initial_state(self, num_rows: int) -> State:
    return self.core.initial_state(num_rows) if self.core is not None else ()

  def apply(self, theta: Sequence[tf.Tensor], rows: tf.Tensor, state: State
            ) -> tuple[tf.Tensor, State]:
    """rows: gradient rows [..., N, d]; returns (update rows [..., N, output_size], next state)."""
    features = _feature_major(self._preprocess(rows))
    *core_theta, w, b = theta
    if self.core is not None:
      features, state = lstm_stack_apply(core_theta, features, state)
    outputs = tf.matmul(w, features) + b
    return _feature_major(outputs) * self._scale, state


class StandardDeepLSTM(DeepLSTM):
  """A DeepLSTM that sees each variable whole, as one row."""

  def __init__(self, output_size: int, name: str = "deep_lstm", **kwargs):
    """Args: output_size: the variables' size; others as ``DeepLSTM``."""
    super().__init__(TensorRows(), output_size, name=name, **kwargs)


class CoordinateWiseDeepLSTM(DeepLSTM):
  """The paper's optimizer: one small LSTM shared by every coordinate, state per coordinate."""

  def __init__(self, name: str = "cw_deep_lstm", **kwargs):
    """Args: as ``DeepLSTM`` without ``layout`` and ``output_size``."""
    super().__init__(CoordinateRows(), 1, name=name, **kwargs)


class KernelDeepLSTM(DeepLSTM):
  """An LSTM over conv kernels: one row per (input, output) channel pair holding the k×k window."""

  def __init__(self, kernel_shape: Sequence[int], name: str = "kernel_deep_lstm", **kwargs):
    """Args: kernel_shape: [height, width] of the kernels. Others as ``DeepLSTM``."""
    super().__init__(KernelRows(kernel_shape), int(np.prod(kernel_shape)), name=name, **kwargs)


class Sgd(Network):
  """Hand-designed SGD as a net: ``update = -learning_rate * gradient``."""

  def __init__(self, learning_rate: float = 0.001, name: str = "sgd"):
    super().__init__(name=name)
    self._learning_rate = learning_rate

  def apply(self, theta, rows, state):
    del theta
    return -self._learning_rate * rows, state


class Adam(Network):
  """Hand-designed Adam as a net, with bias correction; state (m, v, t) per coordinate."""

  def __init__(self, learning_rate: float = 0.1, beta1: float = 0.9, beta2: float = 0.999,
               epsilon: float = 1e-8, name: str = "adam"):
    super().__init__(name=name)
    self._learning_rate = learning_rate
    self._beta1, self._beta2, self._epsilon = beta1, beta2, epsilon

  def initial_state(self, num_rows: int) -> State:
    return tuple(tf.zeros([num_rows, 1]) for _ in range(3))

  def apply(self, theta, rows, state):
    del theta
    m, v, t = state
    t = t + 1
    m = self._beta1 * m + (1 - self._beta1) * rows
    v = self._beta2 * v + (1 - self._beta2) * tf.square(rows)
    m_hat = m / (1 - tf.pow(self._beta1, t))
    v_hat = v / (1 - tf.pow(self._beta2, t))
    return -self._learning_rate * m_hat / (tf.sqrt(v_hat) + self._epsilon), (m, v, t)


class NNAdam(Network):
  """Adam whose step size and momentum an LSTM sets at every step from statistics of the gradients.

  The idea of Metz et al. 2020 ("Using a thousand optimization tasks to learn hyperparameter search
  strategies", NN-Adam): per coordinate this is exactly Adam, so a step costs Adam's arithmetic plus
  a few sums over the coordinates and one LSTM step on a single row, instead of an LSTM per
  coordinate (``bench/learned_optimizer.py``). The LSTM reads three scale-free features of all the
  net's coordinates together (use ``net_assignments`` for one net per variable group):

  - the cosine between the gradient and the previous momentum (positive: keep going; negative:
    oscillating),
  - log of the gradient's energy over the second-moment estimate's (a spike or a calm),
  - log of the momentum's energy over the second-moment estimate's (signal over noise);

  and outputs ``a`` and ``b``: step size ``learning_rate * exp(a)`` and momentum
  ``sigmoid(logit(beta1) + b)``. With the default zero-initialised output layer the net starts as
  Adam(learning_rate, beta1, beta2, epsilon). The bias corrections use the running product of the
  momentum factors actually used.
  """

  def __init__(self, learning_rate: float = 0.01, beta1: float = 0.9, beta2: float = 0.999,
               epsilon: float = 1e-8, layers: Sequence[int] = (20,),
               initializer: str | dict | None = "zeros", name: str = "nn_adam"):
    """Args:
      learning_rate, beta1, beta2, epsilon: the Adam the net starts from.
      layers: hidden sizes of the LSTM over the features.
      initializer: of the output layer, as ``StandardDeepLSTM``'s; "zeros" starts at Adam.
      name: module name.
    """
    super().__init__(name=name)
    self._learning_rate = learning_rate
    self._beta1_logit = float(np.log(beta1 / (1 - beta1)))
    self._beta2, self._epsilon = beta2, epsilon
    self.core = LSTMStack(layers)
    self._initializers = _initializers(initializer)

  @snt.once
  def build(self, row_width: int):
    del row_width
    self.core.build(3)
    self.w, self.b = _output_layer(self._initializers, 2, self.core.hidden_sizes[-1])

  def weight_list(self) -> list[tf.Variable]:
    return self.core.weight_list() + [self.w, self.b]

  def initial_state(self, num_rows: int) -> State:
    """(m [N, 1], v [N, 1], products of the momentum factors used [1, 2], LSTM state on one row)."""
    return (tf.zeros([num_rows, 1]), tf.zeros([num_rows, 1]), tf.ones([1, 2]),
            self.core.initial_state(1))

  def apply(self, theta: Sequence[tf.Tensor], rows: tf.Tensor, state: State
            ) -> tuple[tf.Tensor, State]:
    """rows: gradient rows [..., N, 1]; returns (update rows [..., N, 1], next state)."""
    m, v, powers, core_state = state
    *core_theta, w, b = theta
    tiny = 1e-30

    def total(x):
      return tf.reduce_sum(x, [-2, -1], keepdims=True)

    v = self._beta2 * v + (1 - self._beta2) * tf.square(rows)
    power1, power2 = powers[..., :1], powers[..., 1:] * self._beta2
    sum_gg, sum_gm = total(tf.square(rows)), total(rows * m)
    sum_mm, sum_v = total(tf.square(m)), total(v) / (1 - power2)
    features = tf.concat([
        sum_gm / tf.sqrt(sum_gg * sum_mm + tiny),
        tf.math.log((sum_gg + tiny) / (sum_v + tiny)),
        # Bias-corrected momentum energy: sum_mm / (1 - power1)^2.
        tf.math.log((sum_mm + tiny) / (tf.square(1 - power1) * sum_v + tiny))], -2)
    hidden, core_state = lstm_stack_apply(core_theta, features, core_state)
    log_rate, beta1_offset = tf.split(tf.matmul(w, hidden) + b, 2, -2)
    beta1 = tf.sigmoid(self._beta1_logit + beta1_offset)
    m = beta1 * m + (1 - beta1) * rows
    power1 = power1 * beta1
    step_size = self._learning_rate * tf.exp(log_rate) / (1 - power1)
    # max: where squared gradients underflow to 0, sqrt's derivative would be inf (NaN with
    # second derivatives).
    update = -step_size * m / (tf.sqrt(tf.maximum(v / (1 - power2), tiny)) + self._epsilon)
    return update, (m, v, tf.concat([power1, power2], -1), core_state)


NETS = {cls.__name__: cls for cls in
        (StandardDeepLSTM, CoordinateWiseDeepLSTM, KernelDeepLSTM, Sgd, Adam, NNAdam, Celo)}


def factory(net: str, net_options: Any = (), net_path: str | None = None) -> Network:
  """Builds the net class named ``net`` with ``net_options`` and loads weights from ``net_path``."""
  if net not in NETS:
    raise ValueError(f"Unknown net {net!r}; choose one of {sorted(NETS)}.")
  network = NETS[net](**dict(net_options))
  # What rebuilds the net (not its weights); a string, so that module tracking leaves it alone.
  network.config_json = json.dumps(
      {"net": net, "net_options": dict(net_options)},
      default=lambda o: dict(o) if hasattr(o, "keys") else list(o))  # Tracking wrappers.
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

