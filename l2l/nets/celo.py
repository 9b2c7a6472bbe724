"""Celo (Moudgil et al., "Celo: Training Versatile Learned Optimizers on a Compute Diet", TMLR 2025).

A per-parameter MLP (two hidden layers of 4 units) over 30 channels (14 groups) of Adam-, Adafactor- and
momentum-style features of each tensor, each channel normalised by its RMS over the tensor. It
outputs a direction and a log-magnitude; the step is relative to the tensor's RMS and scaled by a
learning-rate multiplier that one small LSTM (the "scheduler") sets from the fraction of training
done (``step / num_steps``) and nine features of the loss history, the same for every tensor.

Every number below is the published code's (config "celo"); ``l2l/pretrained/celo`` ships its
published weights. The maths is float32 throughout.

State (a nested structure of tensors, so it can live in variables or a loop): the step counter, the
planned horizon (``num_steps`` unless ``with_horizon`` sets another, so that meta-training gives each
task its own), the LSTM state, the loss buffer (bias-corrected exponential means of the loss at 10 half-lives
log-spaced from 10 to ``num_steps`` steps, and their running minima), and per tensor: momentum at
β = 0.9 / 0.99 / 0.999, the second moment at 0.999, and factored second moments (Adafactor) at
0.9 / 0.99 / 0.999 — row and column accumulators for tensors of two or more dimensions, one per
coordinate otherwise. Each accumulator keeps its three decays on a leading axis (the published code
has them last), so that every channel is a contiguous tensor that XLA's loops vectorise.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from l2l.nets.base import State, TensorNetwork

MOMENTUM_DECAYS = (0.9, 0.99, 0.999)
SECOND_MOMENT_DECAY = 0.999
FACTORED_DECAYS = (0.9, 0.99, 0.999)
TRAINING_FRACTION_SHIFTS = (0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1)
NUM_LOSS_TIMESCALES = 10
LSTM_SIZE = 64
MLP_SIZE = 4
NUM_FEATURES = 30  # Per-parameter channels: the 14 groups of ``_tensor_update``.
GRADIENT_CLIP = 1000.0
STEP_MULT = 0.001  # Of the step, relative to the tensor's RMS.
EXP_MULT = 0.001  # Of the magnitude output.
RUNNING_MIN_START = 999999999999.0
# The weights, in the order of ``Celo.weight_list`` (the scheduler LSTM's, then the MLP's).
WEIGHT_NAMES = ("lstm_initial_h", "lstm_initial_c", "mix_w", "mix_b", "input_w", "input_b",
                "lstm_w", "lstm_b", "rate_w", "rate_b", "mlp_w0", "mlp_b0", "mlp_w1", "mlp_b1",
                "mlp_w2", "mlp_b2")


def factored_dims(shape: Sequence[int]) -> tuple[int, int] | None:
  """(d0, d1): the axes of the largest and second-largest dims (a stable sort, so ties put the
  later axis at d0); None for tensors of fewer than two dims, which are not factored."""
  if len(shape) < 2:
    return None
  order = sorted(range(len(shape)), key=lambda axis: shape[axis])  # Stable.
  return order[-1], order[-2]


def loss_buffer_decays(num_steps: tf.Tensor) -> tf.Tensor:
  """exp(-1 / half-life) for half-lives log-spaced from 10 to ``num_steps`` steps (float64 maths,
  float32 out)."""
  longest = tf.math.log(tf.cast(num_steps, tf.float64)) / np.log(10.0)
  exponents = 1.0 + (longest[..., None] - 1.0) * np.linspace(0.0, 1.0, NUM_LOSS_TIMESCALES)
  return tf.cast(tf.exp(-1.0 / 10.0 ** exponents), tf.float32)


class Celo(TensorNetwork):
  """The Celo update rule: ``updates(params, grads, loss, state) -> (updates, state)``."""

  def __init__(self, num_steps: int = 1000, start: str = "random",
               relative_learning_rate: float = 0.01, name: str = "celo"):
    """Args:
      num_steps: the horizon the training is planned for. It sets the "fraction of training done"
        features (they saturate past it) and the longest half-life of the loss features.
      start: the initial weights, for meta-training: "random", or "adam": the MLP passes the
        momentum-over-RMS channel (β = 0.9) through as the direction and the step is
        ``relative_learning_rate`` × the tensor's RMS: Adam relative to the weights' scale, a
        start from which ES / PES can improve (random weights give steps ≈ 1e-4 of the RMS in
        random directions).
      relative_learning_rate: the step of the "adam" start, relative to each tensor's RMS.
      name: module name.

    ``l2l.MetaOptimizer.load("celo")`` and ``LearnedOptimizer.load("celo", num_steps=...)`` give
    the published weights.
    """
    super().__init__(name=name)
    if int(num_steps) < 1:
      raise ValueError(f"num_steps must be a positive number of steps, got {num_steps}.")
    if start not in ("random", "adam"):
      raise ValueError(f"Unknown start {start!r}; choose 'random' or 'adam'.")
    self.num_steps = int(num_steps)
    inputs = len(TRAINING_FRACTION_SHIFTS) + NUM_LOSS_TIMESCALES - 1

    def normal(*shape):
      return tf.Variable(tf.random.truncated_normal(shape, stddev=1.0 / np.sqrt(shape[0])))

    def zeros(*shape):
      return tf.Variable(tf.zeros(shape))

    self.lstm_initial_h, self.lstm_initial_c = zeros(1, LSTM_SIZE), zeros(1, LSTM_SIZE)
    self.mix_w, self.mix_b = normal(inputs, LSTM_SIZE), zeros(LSTM_SIZE)
    self.input_w, self.input_b = normal(inputs, LSTM_SIZE), zeros(LSTM_SIZE)
    self.lstm_w, self.lstm_b = normal(2 * LSTM_SIZE, 4 * LSTM_SIZE), zeros(4 * LSTM_SIZE)
    self.rate_w, self.rate_b = zeros(LSTM_SIZE, 1), zeros(1)
    self.mlp_w0, self.mlp_b0 = normal(NUM_FEATURES, MLP_SIZE), zeros(MLP_SIZE)
    self.mlp_w1, self.mlp_b1 = normal(MLP_SIZE, MLP_SIZE), zeros(MLP_SIZE)
    self.mlp_w2, self.mlp_b2 = normal(MLP_SIZE, 3), zeros(3)
    if start == "adam":
      self._start_as_adam(relative_learning_rate)

  def _start_as_adam(self, relative_learning_rate: float) -> None:
    """Weights for which the step is −relative_learning_rate · RMS(tensor) · f, with f the
    β = 0.9 momentum over the second moment's root (channel 7), normalised over the tensor:
    relu(f) − relu(−f) = f through the two hidden layers, magnitude 0, the scheduler's output
    layer zero and its bias set to give the rate."""
    momentum_over_rms = 7
    w0 = np.zeros([NUM_FEATURES, MLP_SIZE], np.float32)
    w0[momentum_over_rms, :2] = [1.0, -1.0]
    w1 = np.zeros([MLP_SIZE, MLP_SIZE], np.float32)
    w1[0, 0] = w1[1, 1] = 1.0
    w2 = np.zeros([MLP_SIZE, 3], np.float32)
    w2[:2, 0] = [1.0, -1.0]
    for variable, value in ((self.mlp_w0, w0), (self.mlp_w1, w1), (self.mlp_w2, w2)):
      variable.assign(value)
    self.rate_b.assign([np.log(relative_learning_rate / (0.1 * STEP_MULT))])

  def initial_state(self, shapes: Sequence[Sequence[int]]) -> State:
    """The state before the first step for tensors of ``shapes``."""
    tensors = []
    for shape in shapes:
      shape = list(shape) or [1]  # A scalar is handled as [1].
      dims = factored_dims(shape)
      if dims is None:
        factored = (tf.zeros([3] + shape),)
      else:
        d0, d1 = dims
        factored = (tf.zeros([3] + [n for i, n in enumerate(shape) if i != d0]),
                    tf.zeros([3] + [n for i, n in enumerate(shape) if i != d1]))
      tensors.append((tf.zeros([3] + shape), tf.zeros(shape)) + factored)
    loss_buffer = (tf.zeros([NUM_LOSS_TIMESCALES]),
                   tf.fill([NUM_LOSS_TIMESCALES], RUNNING_MIN_START), tf.zeros([]))
    return {"step": tf.zeros([]), "num_steps": tf.constant(float(self.num_steps)),
            "lstm": (self.lstm_initial_h + 0.0, self.lstm_initial_c + 0.0),
            "loss_buffer": loss_buffer, "tensors": tuple(tensors)}

  def with_horizon(self, state: State, num_steps: tf.Tensor) -> State:
    return dict(state, num_steps=tf.cast(num_steps, tf.float32))

  def weight_list(self) -> list[tf.Variable]:
    return [getattr(self, name) for name in WEIGHT_NAMES]

  def apply(self, theta: Sequence[tf.Tensor], params: Sequence[tf.Tensor],
            grads: Sequence[tf.Tensor], loss: tf.Tensor, state: State
            ) -> tuple[list[tf.Tensor], State]:
    """One Celo step at weights ``theta``: the update to add to each tensor (``-Δ``), and the
    next state. (The LSTM's initial state is in ``state``, from the weights ``initial_state``
    read: changing those two weights here has no effect.)"""
    w = dict(zip(WEIGHT_NAMES, theta))
    loss_buffer, lstm_input = self._scheduler_input(loss, state)
    rate, lstm = self._learning_rate_multiplier(w, lstm_input[None], state["lstm"])
    steps, tensors = [], []
    for p, g, accumulators in zip(params, grads, state["tensors"]):
      step, accumulators = self._tensor_update(w, tf.cast(p, tf.float32), tf.cast(g, tf.float32),
                                               accumulators, rate)
      steps.append(step)
      tensors.append(accumulators)
    return steps, {"step": state["step"] + 1.0, "num_steps": state["num_steps"], "lstm": lstm,
                   "loss_buffer": loss_buffer, "tensors": tuple(tensors)}

  def _scheduler_input(self, loss: tf.Tensor, state: State) -> tuple[tuple, tf.Tensor]:
    """The loss buffer updated with ``loss``, and the scheduler LSTM's 18 inputs: the fraction of
    training done (before this step) through 9 shifted tanh, then the 9 loss features."""
    loss_buffer, loss_features = self._loss_features(
        tf.cast(loss, tf.float32), state["loss_buffer"], loss_buffer_decays(state["num_steps"]))
    fraction = state["step"] / state["num_steps"]
    return loss_buffer, tf.concat(
        [tf.tanh(10.0 * (fraction - tf.constant(TRAINING_FRACTION_SHIFTS))), loss_features], 0)

  def _loss_features(self, loss: tf.Tensor, buffer, decays: tf.Tensor):
    """Updates the loss buffer with ``loss``; returns it and the nine loss features."""
    means, running_min, count = buffer
    correction = 1.0 - decays ** (count + 1.0)
    anchor = tf.where(count == 0.0, loss, tf.reduce_max(means / correction))
    clipped = tf.minimum(2.0 * tf.abs(anchor), loss)
    means = decays * means + (1.0 - decays) * clipped
    running_min = tf.minimum(running_min, means / correction)
    count += 1.0
    corrected = means / (1.0 - decays ** count)
    features = tf.clip_by_value(
        (corrected[:-1] - running_min[:-1]) / tf.maximum(1e-8, corrected[1:] - running_min[:-1])
        - 1.0, -1.0, 1.0)
    features = tf.where(count <= 2.0, tf.zeros_like(features), features)
    return (means, running_min, count), features

  def _learning_rate_multiplier(self, w: dict, lstm_input: tf.Tensor, lstm_state):
    """The scheduler: the global learning-rate multiplier and the next LSTM state."""
    h, c = lstm_state
    mixed = tf.nn.relu(lstm_input @ w["mix_w"] + w["mix_b"])
    z = lstm_input @ w["input_w"] + w["input_b"] + mixed
    gates = tf.concat([z, h], 1) @ w["lstm_w"] + w["lstm_b"]
    i, g, f, o = tf.split(gates, 4, 1)
    c = tf.sigmoid(f + 1.0) * c + tf.sigmoid(i) * tf.tanh(g)
    h = tf.sigmoid(o) * tf.tanh(c)
    rate = 0.1 * tf.exp(h @ w["rate_w"] + w["rate_b"])
    return tf.reshape(rate, []), (h, c)

  def _tensor_update(self, w: dict, p: tf.Tensor, g: tf.Tensor, accumulators, rate: tf.Tensor):
    """The step of one tensor and its next accumulators.

    Channels travel in groups with a leading channel axis (the three decays of an accumulator,
    say), each channel a contiguous tensor of the parameter's shape; one product with ones sums a
    group's mean squares, and the MLP is written unit by unit over the channels, so that XLA emits
    the whole per-parameter network as one elementwise loop."""
    shape = p.shape
    if shape.rank == 0:
      p, g = p[None], g[None]
    g = tf.clip_by_value(g, -GRADIENT_CLIP, GRADIENT_CLIP)
    momentum, second_moment, *factored = accumulators
    betas = tf.reshape(MOMENTUM_DECAYS, [3] + [1] * p.shape.rank)
    momentum = betas * momentum + (1.0 - betas) * g
    second_moment = (SECOND_MOMENT_DECAY * second_moment
                     + (1.0 - SECOND_MOMENT_DECAY) * tf.square(g))
    betas_f = tf.reshape(FACTORED_DECAYS, [3] + [1] * (p.shape.rank - 1))
    g2 = tf.square(g) + 1e-30
    dims = factored_dims(p.shape)
    v = second_moment
    rsqrt_v = tf.math.rsqrt(v + 1e-6)
    # Groups 0–8 and 13 are per coordinate; 9–12 come from the factored accumulators.
    per_coordinate = [g[None], tf.clip_by_value(g, -0.1, 0.1)[None], p[None], momentum, v[None],
                      momentum * rsqrt_v, rsqrt_v[None]]
    if dims is None:
      (diagonal,) = factored
      diagonal = betas_f[..., None] * diagonal + (1.0 - betas_f[..., None]) * g2
      factored = (diagonal,)
      # Groups 9 and 10 are both the diagonal, 11 and 12 both its inverse root: each pair is one
      # channel (the same RMS) with the sum of the two groups' weights.
      w0 = tf.split(w["mlp_w0"], [15, 3, 3, 3, 3, 3], 0)
      hidden = _first_layer(per_coordinate + [
          g * tf.math.rsqrt(tf.maximum(diagonal + 1e-9, 1e-9)), (g * rsqrt_v)[None], diagonal,
          tf.math.rsqrt(diagonal + 1e-8), momentum * tf.math.rsqrt(diagonal)],
          tf.concat([w0[0], w0[1] + w0[2], w0[3] + w0[4], w0[5]], 0))
    else:
      d0, d1 = dims
      rows, cols = factored
      rows = betas_f * rows + (1.0 - betas_f) * tf.reduce_mean(g2, d0)
      cols = betas_f * cols + (1.0 - betas_f) * tf.reduce_mean(g2, d1)
      factored = (rows, cols)
      row_axis = d1 if d1 > d0 else d1 + 1  # d1 inside rows, which lack axis d0 (after channels).
      row_factor = tf.math.rsqrt(tf.maximum(
          rows / (tf.reduce_mean(rows, row_axis, keepdims=True) + 1e-9), 1e-9))
      col_factor = tf.math.rsqrt(tf.maximum(cols, 1e-9))
      scale = tf.expand_dims(row_factor, d0 + 1) * tf.expand_dims(col_factor, d1 + 1)
      # Groups 9–12 are constant along d0 or d1: their part of the first layer is computed on the
      # accumulators and broadcast (the same numbers, as each value repeats equally often).
      w0 = tf.split(w["mlp_w0"], [15, 3, 3, 3, 3, 3], 0)
      from_rows = _first_layer([rows, tf.math.rsqrt(rows + 1e-8)], tf.concat([w0[1], w0[3]], 0))
      from_cols = _first_layer([cols, tf.math.rsqrt(cols + 1e-8)], tf.concat([w0[2], w0[4]], 0))
      hidden = [h + tf.expand_dims(h_r, d0) + tf.expand_dims(h_c, d1) for h, h_r, h_c in zip(
          _first_layer(per_coordinate + [g * scale, (g * rsqrt_v)[None], momentum * scale],
                       tf.concat([w0[0], w0[5]], 0)), from_rows, from_cols)]
    hidden = _dense([tf.nn.relu(h + b) for h, b in zip(hidden, tf.unstack(w["mlp_b0"]))],
                    w["mlp_w1"])
    hidden = [tf.nn.relu(h + b) for h, b in zip(hidden, tf.unstack(w["mlp_b1"]))]
    direction, magnitude = (o + b for o, b in zip(_dense(hidden, w["mlp_w2"][:, :2]),
                                                  tf.unstack(w["mlp_b2"][:2])))
    param_scale = tf.sqrt(_mean_squares(p[None])[0] + 1e-9)
    step = -direction * param_scale * tf.exp(EXP_MULT * magnitude) * STEP_MULT * rate
    return tf.reshape(step, shape), (momentum, second_moment) + factored


def _dense(channels: list[tf.Tensor], w: tf.Tensor) -> list[tf.Tensor]:
  """``stack(channels, -1) @ w`` as a list of output channels, each a sum of scaled inputs: with
  a few channels and many coordinates, XLA fuses it with the elementwise work around it."""
  columns = tf.unstack(w)
  return [tf.add_n([x * column[j] for x, column in zip(channels, columns)])
          for j in range(int(w.shape[1]))]


def _mean_squares(group: tf.Tensor) -> tf.Tensor:
  """The mean of ``x²`` over each channel x of ``group`` ``[channels, ...]``. Channels of two or
  more dims are summed first by one product with a vector of ones over the last axis: XLA's CPU
  backend runs that as a vectorised kernel, several times faster than its reduction (which it
  splits into windows of 32 and does not vectorise)."""
  square = tf.square(group)
  if group.shape.rank < 3:
    return tf.reduce_mean(square, 1)
  last = group.shape[-1]
  sums = tf.matmul(tf.reshape(square, [-1, last]), tf.ones([last, 1]))
  return tf.reduce_sum(tf.reshape(sums, [group.shape[0], -1]), 1) / float(
      group.shape[1:].num_elements())


def _first_layer(groups: list[tf.Tensor], w: tf.Tensor) -> list[tf.Tensor]:
  """``_dense`` over the channels of ``groups`` (each ``[channels, ...]``), every channel first
  divided by its RMS (1e-5 inside the root); the division is folded into ``w``."""
  mean_squares = tf.concat([_mean_squares(group) for group in groups], 0)
  channels = [channel for group in groups for channel in tf.unstack(group)]
  return _dense(channels, w * tf.math.rsqrt(1e-5 + mean_squares)[:, None])


def published_weights(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The published ``celo_theta.npz`` arrays by the attribute names of ``Celo`` (the two unused
  layers of the published code are left out)."""
  mlp = "ff_mod_stack/~/"
  return {
      "lstm_initial_h": arrays["lstm_init_state/hidden"],
      "lstm_initial_c": arrays["lstm_init_state/cell"],
      "mix_w": arrays["rnn_params/linear_1/w"], "mix_b": arrays["rnn_params/linear_1/b"],
      "input_w": arrays["rnn_params/linear_2/w"], "input_b": arrays["rnn_params/linear_2/b"],
      "lstm_w": arrays["rnn_params/rnn/linear/w"], "lstm_b": arrays["rnn_params/rnn/linear/b"],
      "rate_w": arrays["rnn_params/step_size/w"], "rate_b": arrays["rnn_params/step_size/b"],
      # The 14 input groups' weights in feature order (the file's order is lexical).
      "mlp_w0": np.concatenate([arrays[f"{mlp}w0__{i}"][0] for i in range(14)], 0),
      "mlp_b0": arrays[f"{mlp}b0"][0], "mlp_w1": arrays[f"{mlp}w1"][0],
      "mlp_b1": arrays[f"{mlp}b1"][0], "mlp_w2": arrays[f"{mlp}w2"][0],
      "mlp_b2": arrays[f"{mlp}b2"][0],
  }
