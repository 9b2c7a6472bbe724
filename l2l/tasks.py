"""Tasks, task families, augmentation and horizon schedules, all driven by explicit stateless seeds.

A ``TaskFamily`` is a distribution of optimization problems whose parameters have fixed shapes:

=================================  ============================================================
``sample(seed) -> config``         draws one task: a nest of tensors (e.g. a quadratic's matrix,
                                   a sine wave's amplitude, augmentation scales); () if the
                                   family has one task whose randomness is all in init / batch.
``init(config, seed) -> params``   the task's initial parameters, a list of tensors.
``batch(config, seed) -> data``    one minibatch (a nest of tensors; () for data-free tasks).
``loss(config, params, data)``     the scalar training loss.
=================================  ============================================================

Every random draw is a ``tf.random.stateless_*`` op on the seed it is given (``int64 [2]``), so a
task, its initialisation and its minibatches are reproducible from seeds alone, and K tasks can
be sampled, reset and checkpointed independently. ``Task`` binds a family to one config and has
the plain ``init(seed)``, ``batch(seed)``, ``loss(params, data)`` interface.

The functions are written for one task. ``batched_loss`` runs the loss of many (a leading task
axis on every argument) as one vectorised program, not a loop over tasks: as it is where the
family's loss broadcasts over leading axes (``loss_broadcasts``), else through
``tf.vectorized_map``. ``mapped`` runs the random draws over tasks.

``from_make_loss`` turns any ``make_loss`` problem (Sonnet modules, batch norm, its own minibatch
sampler) into a family through ``l2l.variables``. Its initialisers and samplers are the problem's
own, stateful ones: those draws follow TF's random seed, not the seeds given.
"""

import math
import re
from typing import Any, Callable, NamedTuple, Sequence

import tensorflow as tf

from l2l import variables as variables_lib

Params = list[tf.Tensor]
Config = Any
Data = Any


def fold(seed: tf.Tensor, *values: int | tf.Tensor) -> tf.Tensor:
  """A new ``int64 [2]`` seed from ``seed`` and integers (stateless, reproducible)."""
  seed = tf.cast(seed, tf.int64)
  for value in values:
    seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(value, tf.int64))
  return seed


def as_seed(seed: int | tf.Tensor) -> tf.Tensor:
  """An ``int64 [2]`` stateless seed from an integer (or a seed already)."""
  seed = tf.cast(seed, tf.int64)
  return tf.stack([seed, tf.zeros_like(seed)]) if seed.shape.rank == 0 else seed


class TaskFamily(tf.Module):
  """Base class; see the module docstring. Subclasses set ``name``."""

  def sample(self, seed: tf.Tensor) -> Config:
    del seed
    return ()

  def init(self, config: Config, seed: tf.Tensor) -> Params:
    raise NotImplementedError

  def batch(self, config: Config, seed: tf.Tensor) -> Data:
    del config, seed
    return ()

  def loss(self, config: Config, params: Sequence[tf.Tensor], data: Data) -> tf.Tensor:
    raise NotImplementedError

  # True where ``loss`` is written for any leading batch axes (matmuls and reductions on the
  # trailing axes): then it runs batched as it is.
  loss_broadcasts = False

  def batched_loss(self, config: Config, params: Sequence[tf.Tensor], data: Data) -> tf.Tensor:
    """``loss`` of many tasks at once, every argument with a leading task axis: [B] losses."""
    if self.loss_broadcasts:
      return self.loss(config, params, data)
    return batched(self.loss, config, list(params), data)

  def param_names(self) -> list[str]:
    """Names of the parameters, in ``init``'s order (for routing variables to nets)."""
    return [f"param_{i}" for i in range(len(self.param_shapes()))]

  def param_shapes(self) -> list[tf.TensorShape]:
    seed = as_seed(0)
    specs = tf.function(lambda: self.init(self.sample(seed), seed)).get_concrete_function()
    return [tf.TensorShape(s.shape) for s in specs.structured_outputs]

  def task(self, seed: int | tf.Tensor) -> "Task":
    """The task drawn from ``seed``."""
    return Task(self, self.sample(as_seed(seed)))


class Task(NamedTuple):
  """One task of a family: ``init(seed)``, ``batch(seed)``, ``loss(params, data)``."""
  family: TaskFamily
  config: Config

  def init(self, seed: int | tf.Tensor) -> Params:
    return self.family.init(self.config, as_seed(seed))

  def batch(self, seed: int | tf.Tensor) -> Data:
    return self.family.batch(self.config, as_seed(seed))

  def loss(self, params: Sequence[tf.Tensor], data: Data) -> tf.Tensor:
    return self.family.loss(self.config, params, data)


def batched(fn: Callable[..., Any], *args: Any) -> Any:
  """``fn`` over the leading axis of every leaf of ``args`` (one task per index), vectorised:
  for the deterministic maths (losses, gradients)."""
  return tf.vectorized_map(lambda a: fn(*a), args, fallback_to_while_loop=True)


def mapped(fn: Callable[..., Any], *args: Any) -> Any:
  """``fn`` over the leading axis of ``args`` in a loop with a static trip count: for the random
  draws (samples, initialisations, minibatches), whose per-task seeds ``tf.vectorized_map``
  cannot vectorise. Cheap next to the losses, and it compiles with XLA."""
  first = fn(*tf.nest.map_structure(lambda leaf: leaf[0], args))
  if not tf.nest.flatten(first):
    return first  # Nothing drawn (a family without data).
  signature = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), first)
  return tf.map_fn(lambda a: fn(*a), args, fn_output_signature=signature)


class Reparameterize(TaskFamily):
  """The optimizer sees ``w'`` where the task computes with ``w = s · w'``, s log-uniform in
  ``[low, high]``: one s for all parameters ("global"), one per tensor ("tensor"), or one per
  coordinate ("parameter"). A learned optimizer trained on it cannot rely on the weights' scale.
  """

  MODES = ("global", "tensor", "parameter")

  def __init__(self, family: TaskFamily, mode: str = "tensor", low: float = 1e-3,
               high: float = 1e3):
    super().__init__(name=f"reparameterized_{family.name}")
    if mode not in self.MODES:
      raise ValueError(f"Unknown reparameterisation mode {mode!r}; choose one of {self.MODES}.")
    if not 0 < low <= high:
      raise ValueError(f"Scales need 0 < low <= high, got low={low}, high={high}.")
    self.family, self.mode, self._low, self._high = family, mode, low, high

  def _log_uniform(self, shape, seed) -> tf.Tensor:
    u = tf.random.stateless_uniform(shape, seed=seed)
    return tf.exp(math.log(self._low) + u * (math.log(self._high) - math.log(self._low)))

  def sample(self, seed: tf.Tensor) -> Config:
    shapes = self.family.param_shapes()
    if self.mode == "global":
      scale = self._log_uniform([], fold(seed, 1))
      scales = [scale * tf.ones(s) for s in shapes]
    elif self.mode == "tensor":
      scales = [self._log_uniform([], fold(seed, 1, i)) * tf.ones(s) for i, s in enumerate(shapes)]
    else:
      scales = [self._log_uniform(s, fold(seed, 1, i)) for i, s in enumerate(shapes)]
    return (self.family.sample(fold(seed, 0)), scales)

  def init(self, config: Config, seed: tf.Tensor) -> Params:
    inner, scales = config
    return [p / s for p, s in zip(self.family.init(inner, seed), scales)]

  def batch(self, config: Config, seed: tf.Tensor) -> Data:
    return self.family.batch(config[0], seed)

  def loss(self, config: Config, params: Sequence[tf.Tensor], data: Data) -> tf.Tensor:
    inner, scales = config
    return self.family.loss(inner, [p * s for p, s in zip(params, scales)], data)

  def batched_loss(self, config: Config, params: Sequence[tf.Tensor], data: Data) -> tf.Tensor:
    inner, scales = config
    return self.family.batched_loss(inner, [p * s for p, s in zip(params, scales)], data)

  def param_names(self) -> list[str]:
    return self.family.param_names()


class ReducedBatch(TaskFamily):
  """The family with minibatches cut to their first ``batch_size`` examples (noisier gradients)."""

  def __init__(self, family: TaskFamily, batch_size: int):
    super().__init__(name=f"{family.name}_batch_{batch_size}")
    if batch_size < 1:
      raise ValueError(f"batch_size must be positive, got {batch_size}.")
    self.family, self._batch_size = family, batch_size

  def sample(self, seed):
    return self.family.sample(seed)

  def init(self, config, seed):
    return self.family.init(config, seed)

  def batch(self, config, seed):
    data = self.family.batch(config, seed)
    if not tf.nest.flatten(data):
      raise ValueError(f"Task family {self.family.name!r} has no data batches to reduce.")
    return tf.nest.map_structure(lambda leaf: leaf[:self._batch_size], data)

  def loss(self, config, params, data):
    return self.family.loss(config, params, data)

  def batched_loss(self, config, params, data):
    return self.family.batched_loss(config, params, data)

  def param_names(self) -> list[str]:
    return self.family.param_names()


AUGMENTATIONS = ("none", "reparam")


def augment(family: TaskFamily, augmentation: str) -> TaskFamily:
  """The family under a named augmentation: "none", or "reparam" (per-tensor scales in
  [1e-3, 1e3], ``Reparameterize``)."""
  if augmentation not in AUGMENTATIONS:
    raise ValueError(f"Unknown augmentation {augmentation!r}; choose one of {AUGMENTATIONS}.")
  return Reparameterize(family) if augmentation == "reparam" else family


class MakeLossFamily(TaskFamily):
  """A ``make_loss`` problem as a family (see ``from_make_loss``)."""

  def __init__(self, make_loss: variables_lib.MakeLoss, name: str = "make_loss"):
    super().__init__(name=re.sub(r"\W", "_", name))  # Module names are identifiers.
    self._make_loss = make_loss
    self.record = variables_lib.record_variables(make_loss)
    if not self.record.trainable:
      raise ValueError("make_loss creates no trainable variables: there is nothing to optimize. "
                       + variables_lib.OUTSIDE_HINT)
    self.per_task_constants = variables_lib.constants_substitutable(make_loss, self.record)

  def sample(self, seed):
    """The problem's constants (its data, targets), freshly drawn: unless make_loss writes to
    them (batch-norm statistics), in which case every task shares the recorded ones."""
    del seed
    if not self.per_task_constants:
      return ()
    values = variables_lib.fresh_values(self._make_loss, self.record)
    return [v for v, t in zip(values, self.record.trainable_mask) if not t]

  def init(self, config, seed):
    del config, seed
    values = variables_lib.fresh_values(self._make_loss, self.record)
    return [v for v, t in zip(values, self.record.trainable_mask) if t]

  def loss(self, config, params, data):
    del data
    constants = config if self.per_task_constants else None
    return tf.cast(variables_lib.loss_with_custom_variables(
        self._make_loss, self.record, params, constants), tf.float32)

  def param_names(self) -> list[str]:
    return self.record.trainable_names()

  def param_shapes(self) -> list[tf.TensorShape]:
    return [v.shape for v in self.record.trainable]


def from_make_loss(make_loss: variables_lib.MakeLoss, name: str = "make_loss") -> MakeLossFamily:
  """Any ``make_loss`` problem as a task family: ``init`` draws fresh values with the problem's
  initialisers; ``loss`` runs it on the given parameters; call it eagerly."""
  return MakeLossFamily(make_loss, name)


class ConstantHorizon(NamedTuple):
  """Every task runs ``steps`` steps."""
  steps: int

  def sample(self, seed: tf.Tensor) -> tf.Tensor:
    del seed
    return tf.constant(self.steps, tf.int32)


class LogUniformHorizon(NamedTuple):
  """Task lengths log-uniform in ``[low, high]`` steps."""
  low: int
  high: int

  def sample(self, seed: tf.Tensor) -> tf.Tensor:
    u = tf.random.stateless_uniform([], seed=seed, dtype=tf.float64)
    log_steps = math.log(self.low) + u * (math.log(self.high + 1) - math.log(self.low))
    return tf.minimum(tf.cast(tf.floor(tf.exp(log_steps)), tf.int32), self.high)


Horizon = ConstantHorizon | LogUniformHorizon


def longest(horizon: Horizon) -> int:
  """The most steps a task of ``horizon`` runs."""
  return horizon.steps if isinstance(horizon, ConstantHorizon) else horizon.high


def parse_horizon(spec: str | int) -> Horizon:
  """``"100"`` (constant) or ``"loguniform:100:2000"``."""
  text = str(spec)
  parts = text.split(":")
  try:
    if len(parts) == 1:
      horizon = ConstantHorizon(int(parts[0]))
      valid = horizon.steps >= 1
    elif len(parts) == 3 and parts[0] == "loguniform":
      horizon = LogUniformHorizon(int(parts[1]), int(parts[2]))
      valid = 1 <= horizon.low <= horizon.high
    else:
      valid = False
  except ValueError:
    valid = False
  if not valid:
    raise ValueError(f"Bad horizon {text!r}: use a positive number of steps (100) or "
                     "loguniform:LOW:HIGH with 1 <= LOW <= HIGH (loguniform:100:2000).")
  return horizon
