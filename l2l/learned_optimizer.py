"""A trained optimizer applied to any TF2 model, like a Sonnet 2 or Keras optimizer.

``LearnedOptimizer.load(path)`` reads what ``train.py`` / ``MetaOptimizer.save`` wrote and
``apply(gradients, variables)`` updates ``tf.Variable``s in place, as ``snt.optimizers.Adam`` does.
Every coordinate keeps its own recurrent state, created on the first ``apply`` and carried across
calls in variables; all variables assigned to one net go through one net call per step.

``KerasLearnedOptimizer`` is the same as a ``keras.optimizers.Optimizer``, for
``model.compile(optimizer=...)``, with the same grouping.

Both load a saved directory or a shipped optimizer by name (``l2l.pretrained``), and pass the
loss to nets that read it (``TensorNetwork`` s such as Celo): ``apply(..., loss=loss)``; in Keras
the loss of the train step is picked up on its way through ``scale_loss``.
"""

import json
from typing import Mapping, Sequence

import keras
import sonnet as snt
import tensorflow as tf

from l2l import meta
from l2l import networks
from l2l import routing
from l2l import variables as variables_lib

NetFor = routing.NetFor


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
    self._net_for = routing.net_chooser(self.nets, net_for)
    self._source = _source
    # The variables of the first apply, in order (ids: Keras variables have no ref()).
    self._parameter_ids: list[int] = []
    self._parameter_names: list[str] = []
    self._groups: routing.NetGroups | None = None
    self.states: list[networks.State] = []  # Per group: state variables, [hidden, rows] each.
    self._initial_states: list[networks.State] = []

  @classmethod
  def load(cls, path: str, net_for: NetFor | None = None,
           num_steps: int | None = None) -> "LearnedOptimizer":
    """The optimizer saved at ``path`` by ``train.py``, or shipped under the name ``path``.

    ``num_steps``: the number of steps the training is planned for, for optimizers that follow
    a schedule over the training (Celo: past it, the schedule stays at its end); others ignore
    it.
    """
    source = meta.MetaOptimizer.load(path, num_steps=num_steps)
    return cls(source.nets, net_for, _source=source)

  @property
  def groups(self) -> list[tuple[str, list[int]]]:
    """``[(net key, parameter indices)]``, once the first ``apply`` has built them."""
    return self._groups.groups if self._groups is not None else []

  @snt.once
  def _initialize(self, parameters: Sequence[tf.Variable]):
    self._parameter_ids = [id(p) for p in parameters]
    self._parameter_names = [p.name for p in parameters]
    self._groups = routing.NetGroups(
        self.nets, routing.groups_by_chooser(parameters, self._net_for))
    with tf.init_scope():  # Build the nets and the states eagerly, also when first called traced.
      self._initial_states = self._groups.build([p.shape for p in parameters])
      self.states = [variables_lib.state_variables(initial, f"state_{key}")
                     for (key, _), initial in zip(self._groups.groups, self._initial_states)]
      if self._source is not None:
        self._source.check_restored()

  def apply(self, updates: Sequence[tf.Tensor | None], parameters: Sequence[tf.Variable],
            loss: tf.Tensor | None = None) -> None:
    """One optimizer step: ``parameter += net(update)`` for every pair (None updates: no change).

    The parameters must be the same variables, in the same order, on every call (ValueError
    otherwise), as the optimizer's state belongs to them. ``loss``, the loss the updates are the
    gradient of, is needed by nets that read it (Celo).
    """
    if len(updates) != len(parameters) or not parameters:
      raise ValueError(f"apply got {len(updates)} updates for {len(parameters)} parameters; pass "
                       "one (possibly None) update per parameter.")
    self._initialize(parameters)
    self._check_same_parameters(parameters)
    gradients = [tf.zeros(p.shape) if u is None else u for p, u in zip(parameters, updates)]
    steps, next_states = self._groups.updates(
        [tf.convert_to_tensor(p) for p in parameters], gradients, loss,
        tf.nest.map_structure(lambda v: v.read_value(), self.states))
    for parameter, update, step in zip(parameters, updates, steps):
      if update is not None:
        parameter.assign_add(tf.cast(step, parameter.dtype))
    tf.nest.map_structure(lambda v, s: v.assign(s), self.states, next_states)

  def _check_same_parameters(self, parameters: Sequence[tf.Variable]) -> None:
    """The optimizer state belongs to the variables of the first call: refuse any others."""
    if [id(p) for p in parameters] == self._parameter_ids:
      return
    first = self._parameter_names
    names = [p.name for p in parameters]
    raise ValueError(
        f"apply got {len(names)} variables {names[:4]}{'...' if len(names) > 4 else ''}, not the "
        f"{len(first)} it was first called with {first[:4]}{'...' if len(first) > 4 else ''} "
        "(the same variables, in the same order): the optimizer's state belongs to those. Use "
        "one LearnedOptimizer per list of variables.")

  def reset(self) -> None:
    """Zeroes the recurrent states, as for a fresh optimization of the same variables."""
    for state, initial in zip(self.states, self._initial_states):
      tf.nest.map_structure(lambda v, s: v.assign(s), state, initial)


@keras.saving.register_keras_serializable(package="l2l")
class KerasLearnedOptimizer(keras.optimizers.Optimizer):
  """The learned optimizer as a Keras optimizer: ``model.compile(optimizer=...)``.

  Keras' ``learning_rate`` is not used (the nets produce the update); it is fixed at 1. A model
  compiled with it saves and loads like any Keras model (``model.save("m.keras")``,
  ``keras.models.load_model``): the config holds the net configuration, the weights file the
  nets' weights and the optimizer's state (iteration, per-coordinate states), so training goes on
  where it stopped.
  """

  def __init__(self, nets: Mapping[str, networks.Network] | meta.NetConfig,
               net_for: NetFor | None = None, name: str = "learned_optimizer", **kwargs):
    """Args:
      nets: the optimizer nets by key, as ``LearnedOptimizer``'s, or their configuration
        ``{key: {"net": ..., "net_options": ...}}`` (fresh weights; ``get_config`` gives it).
      net_for, name: as ``LearnedOptimizer``'s.
      kwargs: go to ``keras.optimizers.Optimizer`` (a ``learning_rate`` is ignored).
    """
    kwargs.pop("learning_rate", None)  # In every config Keras writes; the nets set the steps.
    super().__init__(learning_rate=1.0, name=name, **kwargs)
    if all(isinstance(spec, Mapping) for spec in nets.values()):
      nets = meta.MetaOptimizer(**nets).nets
    self._nets = dict(nets)
    self._net_for = routing.net_chooser(self._nets, net_for)
    self._net_for_given = net_for is not None
    self._source = None
    self._loss = self.add_variable((), name="loss")  # The last train step's, for Celo-like nets.

  @classmethod
  def load(cls, path: str, net_for: NetFor | None = None, num_steps: int | None = None,
           **kwargs) -> "KerasLearnedOptimizer":
    """The optimizer saved at ``path`` by ``train.py``, or shipped under the name ``path``;
    ``num_steps`` as in ``LearnedOptimizer.load``."""
    source = meta.MetaOptimizer.load(path, num_steps=num_steps)
    optimizer = cls(source.nets, net_for, **kwargs)
    optimizer._source = source
    return optimizer

  def scale_loss(self, loss):
    """Keras' train step passes its loss here before the gradients: it is kept for the nets that
    read it (custom loops call ``scale_loss(loss)`` before ``apply`` for them)."""
    self._loss.assign(tf.cast(loss, tf.float32))
    return super().scale_loss(loss)

  def get_config(self) -> dict:
    if self._net_for_given and len(self._nets) > 1:
      raise ValueError("A KerasLearnedOptimizer with several nets and a net_for function cannot "
                       "be serialized (the function is code): save the model with "
                       "model.save_weights and compile the loaded model with the optimizer.")
    missing = sorted(key for key, net in self._nets.items() if not hasattr(net, "config_json"))
    if missing:
      raise ValueError(f"Nets {missing} were not built by networks.factory (or MetaOptimizer), "
                       "so there is no configuration to save them with.")
    return {**super().get_config(),
            "nets": {key: json.loads(net.config_json) for key, net in self._nets.items()}}

  def _net_weights(self) -> list[tf.Variable]:
    return [v for key in sorted(self._nets) for v in networks.weights(self._nets[key])]

  def save_own_variables(self, store) -> None:
    """The optimizer's variables (as Keras saves them), then the nets' weights."""
    for i, variable in enumerate(list(self.variables) + self._net_weights()):
      store[str(i)] = variable.numpy()

  def load_own_variables(self, store) -> None:
    targets = list(self.variables) + self._net_weights()
    if len(store.keys()) != len(targets):
      raise ValueError(f"The saved state of optimizer {self.name!r} has {len(store.keys())} "
                       f"arrays, this optimizer {len(targets)}: it was saved for other variables "
                       "or other nets.")
    for i, variable in enumerate(targets):
      if tuple(variable.shape) != tuple(store[str(i)].shape):
        raise ValueError(f"The saved state of optimizer {self.name!r} does not fit: array {i} "
                         f"has shape {store[str(i)].shape}, {variable.name} {variable.shape}.")
      variable.assign(store[str(i)])

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    self._groups = routing.NetGroups(self._nets,
                                     routing.groups_by_chooser(var_list, self._net_for))
    with tf.init_scope():  # Keras may build inside its traced train step; nets are built eagerly.
      self._structure = self._groups.build([v.shape for v in var_list])
      flat = tf.nest.flatten(self._structure)
      self._states = [self.add_variable(s.shape, name=f"state_{j}") for j, s in enumerate(flat)]
      for v, s in zip(self._states, flat):
        v.assign(s)
      if self._source is not None:
        self._source.check_restored()

  def _backend_update_step(self, grads, trainable_variables, learning_rate):
    """All variables of a net in one net call per step (Keras' default is one call per variable,
    which would give a net that reads the loss or global statistics one step per variable)."""
    del learning_rate
    # Keras leaves out variables without a gradient: they get a zero gradient and no update.
    given = {self._get_variable_index(v): g for g, v in zip(grads, trainable_variables)}
    variables = self._trainable_variables
    state = tf.nest.pack_sequence_as(self._structure,
                                     [tf.convert_to_tensor(v) for v in self._states])
    steps, next_state = self._groups.updates(
        [tf.convert_to_tensor(v) for v in variables],
        [given.get(i, tf.zeros(v.shape)) for i, v in enumerate(variables)],
        tf.convert_to_tensor(self._loss), state)
    for i, (variable, step) in enumerate(zip(variables, steps)):
      if i in given:
        self.assign_add(variable, tf.cast(step, variable.dtype))
    for v, s in zip(self._states, tf.nest.flatten(next_state)):
      self.assign(v, s)

  def update_step(self, gradient, variable, learning_rate):
    raise NotImplementedError("KerasLearnedOptimizer updates all variables of a net together "
                              "(_backend_update_step).")
