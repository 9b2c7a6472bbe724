"""A trained optimizer applied to any TF2 model, like a Sonnet 2 or Keras optimizer.

``LearnedOptimizer.load(path)`` reads what ``train.py`` / ``MetaOptimizer.save`` wrote and
``apply(gradients, variables)`` updates ``tf.Variable``s in place, as ``snt.optimizers.Adam`` does.
Every coordinate keeps its own recurrent state, created on the first ``apply`` and carried across
calls in variables; all variables assigned to one net go through one net call per step.

``KerasLearnedOptimizer`` is the same as a ``keras.optimizers.Optimizer``, for
``model.compile(optimizer=...)``; there every variable has its own net call.
"""

from typing import Callable, Mapping, Sequence

import keras
import sonnet as snt
import tensorflow as tf

from l2l import meta
from l2l import networks

NetFor = Callable[[tf.Variable], str]


def _single_net(nets: Mapping[str, networks.Network], net_for: NetFor | None) -> NetFor:
  if net_for is not None:
    return net_for
  if len(nets) != 1:
    raise ValueError(f"The optimizer has {len(nets)} nets {sorted(nets)}; pass net_for=lambda "
                     "variable: key to say which net updates which variable.")
  key = next(iter(nets))
  return lambda variable: key


def _state_variables(state: networks.State, name: str):
  return tf.nest.map_structure(lambda s: tf.Variable(s, trainable=False, name=name), state)


class LearnedOptimizer(snt.Optimizer):
  """Applies trained optimizer nets to ``tf.Variable``s: ``apply(updates, parameters)``."""

  def __init__(self, nets: Mapping[str, networks.Network], net_for: NetFor | None = None,
               name: str = "learned_optimizer", _source: meta.MetaOptimizer | None = None):
    """Args:
      nets: the optimizer nets by key, e.g. ``MetaOptimizer(...).nets``.
      net_for: maps a variable to the key of the net that updates it; may be left out when there
        is one net.
      name: module name.
    """
    super().__init__(name=name)
    self.nets = dict(nets)
    self._net_for = _single_net(self.nets, net_for)
    self._source = _source
    self.groups: list[tuple[str, list[int]]] = []  # (net key, parameter indices).
    self.states: list[networks.State] = []  # Per group: state variables, [hidden, rows] each.
    self._initial_states: list[networks.State] = []

  @classmethod
  def load(cls, path: str, net_for: NetFor | None = None) -> "LearnedOptimizer":
    """The optimizer saved at ``path`` by ``train.py`` (``config.json`` + ``nets.*``)."""
    source = meta.MetaOptimizer.load(path)
    return cls(source.nets, net_for, _source=source)

  @snt.once
  def _initialize(self, parameters: Sequence[tf.Variable]):
    keys = {}
    for i, p in enumerate(parameters):
      key = self._net_for(p)
      if key not in self.nets:
        raise ValueError(f"net_for({p.name}) returned {key!r}; the nets are {sorted(self.nets)}.")
      keys.setdefault(key, []).append(i)
    with tf.init_scope():  # Build the nets and the states eagerly, also when first called traced.
      for key, indices in keys.items():
        net = self.nets[key]
        num_rows = sum(net.num_rows(parameters[i].shape) for i in indices)
        initial = net.initial_state(num_rows)
        rows = tf.concat([net.to_rows(tf.zeros(parameters[i].shape)) for i in indices], 0)
        net(rows, initial)
        self.groups.append((key, indices))
        self._initial_states.append(initial)
        self.states.append(_state_variables(initial, f"state_{key}"))
      if self._source is not None:
        self._source.check_restored()

  def apply(self, updates: Sequence[tf.Tensor | None], parameters: Sequence[tf.Variable]) -> None:
    """One optimizer step: ``parameter += net(update)`` for every pair (None updates: no change).

    The parameters must be the same variables, in the same order, on every call.
    """
    if len(updates) != len(parameters) or not parameters:
      raise ValueError(f"apply got {len(updates)} updates for {len(parameters)} parameters; pass "
                       "one (possibly None) update per parameter.")
    self._initialize(parameters)
    for (key, indices), state in zip(self.groups, self.states):
      net = self.nets[key]
      rows = [net.to_rows(tf.zeros(parameters[i].shape) if updates[i] is None
                          else tf.cast(updates[i], tf.float32)) for i in indices]
      steps, next_state = net(tf.concat(rows, 0) if len(rows) > 1 else rows[0],
                              tf.nest.map_structure(lambda v: v.read_value(), state))
      parts = tf.split(steps, [r.shape[0] for r in rows], 0) if len(rows) > 1 else [steps]
      for i, part in zip(indices, parts):
        if updates[i] is not None:
          parameters[i].assign_add(tf.cast(net.from_rows(part, parameters[i].shape),
                                           parameters[i].dtype))
      tf.nest.map_structure(lambda v, s: v.assign(s), state, next_state)

  def reset(self) -> None:
    """Zeroes the recurrent states, as for a fresh optimization of the same variables."""
    for state, initial in zip(self.states, self._initial_states):
      tf.nest.map_structure(lambda v, s: v.assign(s), state, initial)


class KerasLearnedOptimizer(keras.optimizers.Optimizer):
  """The learned optimizer as a Keras optimizer: ``model.compile(optimizer=...)``.

  Keras' ``learning_rate`` is not used (the nets produce the update); it is fixed at 1.
  """

  def __init__(self, nets: Mapping[str, networks.Network], net_for: NetFor | None = None,
               name: str = "learned_optimizer", **kwargs):
    """Args: as ``LearnedOptimizer``; ``kwargs`` go to ``keras.optimizers.Optimizer``."""
    super().__init__(learning_rate=1.0, name=name, **kwargs)
    self._nets = dict(nets)
    self._net_for = _single_net(self._nets, net_for)
    self._source = None

  @classmethod
  def load(cls, path: str, net_for: NetFor | None = None, **kwargs) -> "KerasLearnedOptimizer":
    """The optimizer saved at ``path`` by ``train.py``."""
    source = meta.MetaOptimizer.load(path)
    optimizer = cls(source.nets, net_for, **kwargs)
    optimizer._source = source
    return optimizer

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    self._net_keys, self._structures, self._states = [], [], []
    with tf.init_scope():  # Keras may build inside its traced train step; nets are built eagerly.
      for variable in var_list:
        key = self._net_for(variable)
        if key not in self._nets:
          raise ValueError(f"net_for({variable.name}) returned {key!r}; the nets are "
                           f"{sorted(self._nets)}.")
        net = self._nets[key]
        initial = net.initial_state(net.num_rows(variable.shape))
        net(net.to_rows(tf.zeros(variable.shape)), initial)
        states = [self.add_variable(s.shape, initializer="zeros",
                                    name=f"state_{len(self._states)}_{j}")
                  for j, s in enumerate(tf.nest.flatten(initial))]
        for v, s in zip(states, tf.nest.flatten(initial)):
          v.assign(s)
        self._net_keys.append(key)
        self._structures.append(initial)
        self._states.append(states)
      if self._source is not None:
        self._source.check_restored()

  def update_step(self, gradient, variable, learning_rate):
    del learning_rate
    index = self._get_variable_index(variable)
    net = self._nets[self._net_keys[index]]
    state = tf.nest.pack_sequence_as(self._structures[index],
                                     [tf.convert_to_tensor(v) for v in self._states[index]])
    step, next_state = net(net.to_rows(tf.cast(gradient, tf.float32)), state)
    self.assign_add(variable, tf.cast(net.from_rows(step, variable.shape), variable.dtype))
    for v, s in zip(self._states[index], tf.nest.flatten(next_state)):
      self.assign(v, s)
