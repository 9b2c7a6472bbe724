"""Variable interception: record a problem's variables, substitute tensors for them, re-initialise them.

A *problem* is a ``make_loss()`` callable that creates its variables (directly or through Sonnet
modules) and returns a scalar loss. The learned optimizer needs the loss as a function of tensors it
controls, so every ``tf.Variable`` creation inside ``make_loss`` is intercepted with
``tf.variable_creator_scope`` (TF2's replacement for the TF1 custom getter of the original code):

1. ``record_variables`` (eagerly, once) creates the variables for real, each as a non-trainable
   variable, and remembers which ones were meant to be trainable;
2. ``loss_with_custom_variables`` re-runs ``make_loss`` and hands it, in creation order, the supplied
   tensors for the trainable variables and the recorded variables for the constants;
3. ``reinitialize`` re-runs ``make_loss`` and assigns every recorded variable its fresh initial value
   (a new random problem); it works inside ``tf.function``.

A module built outside ``make_loss`` keeps its variables and never reaches the creator, which would
silently cut the gradients; the consumption checks turn that into an error.
"""

import dataclasses
from typing import Any, Callable, Sequence

import tensorflow as tf

MakeLoss = Callable[[], tf.Tensor]

OUTSIDE_HINT = ("Build every module and variable inside make_loss: a module or variable created "
                 "outside it keeps its own variables, which are then neither optimized nor reset.")


def _count_mismatch(created: int, recorded: int) -> str:
  return (f"make_loss created {created} variables, {recorded} when it was recorded; it must create "
          "the same variables on every call. State created lazily on the first call only "
          "(tf.random.get_global_generator(), a module or variable cached across calls) breaks "
          "this: create random generators before make_loss and build every module and variable "
          "inside make_loss.")


@dataclasses.dataclass
class VariableRecord:
  """The variables a ``make_loss`` creates, in creation order."""
  variables: list[tf.Variable]  # All of them, created non-trainable.
  trainable_mask: list[bool]

  @property
  def trainable(self) -> list[tf.Variable]:
    return [v for v, t in zip(self.variables, self.trainable_mask) if t]

  @property
  def constants(self) -> list[tf.Variable]:
    return [v for v, t in zip(self.variables, self.trainable_mask) if not t]

  def trainable_names(self) -> list[str]:
    """Names of the trainable variables without the ``:0`` suffix; checked to be unique."""
    names = [v.name.split(":")[0] for v in self.trainable]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
      raise ValueError(
          f"The problem's trainable variables have duplicate names {duplicates}, so they cannot be "
          "assigned to nets by name. Give the variables (or their Sonnet modules) distinct names.")
    return names


def _meant_trainable(kwargs: dict) -> bool:
  trainable = kwargs.get("trainable")
  if trainable is None:
    return kwargs.get("synchronization") != tf.VariableSynchronization.ON_READ
  return bool(trainable)


def _initial_value(kwargs: dict) -> tf.Tensor:
  value = kwargs["initial_value"]
  value = value() if callable(value) else value
  return tf.convert_to_tensor(value, dtype=kwargs.get("dtype"))


def record_variables(make_loss: MakeLoss) -> VariableRecord:
  """Calls ``make_loss`` once, eagerly, and records the variables it creates.

  Raises:
    RuntimeError: when called inside ``tf.function`` (variables must be created eagerly).
  """
  if not tf.executing_eagerly():
    raise RuntimeError(
        "Record a problem's variables eagerly (call meta_loss outside tf.function); tf.function only "
        "supports variables created on its first call.")
  variables, mask = [], []

  def creator(next_creator, **kwargs):
    mask.append(_meant_trainable(kwargs))
    kwargs["trainable"] = False
    variable = next_creator(**kwargs)
    variables.append(variable)
    return variable

  with tf.GradientTape() as tape, tf.variable_creator_scope(creator):
    make_loss()
  recorded = {id(v) for v in variables}
  outside = [v.name for v in tape.watched_variables() if id(v) not in recorded]
  if outside:
    raise ValueError(f"make_loss reads trainable variables {outside} that it did not create. "
                     + OUTSIDE_HINT)
  return VariableRecord(variables, mask)


def loss_with_custom_variables(make_loss: MakeLoss, record: VariableRecord,
                               tensors: Sequence[Any],
                               constants: Sequence[Any] | None = None) -> tf.Tensor:
  """``make_loss()`` with its trainable variables replaced, in creation order, by ``tensors``.

  ``tensors`` may hold tensors or ``tf.Variable``s (a tape then watches them as usual).
  ``constants``, when given, replace the non-trainable variables the same way (a problem that
  writes to them, such as batch norm's statistics, cannot take tensors: see
  ``constants_substitutable``).
  """
  tensors = list(tensors)
  supplied = sum(record.trainable_mask)
  if len(tensors) != supplied:
    raise ValueError(f"Got {len(tensors)} tensors for a problem with {supplied} trainable variables.")
  constants = None if constants is None else list(constants)
  if constants is not None and len(constants) != len(record.constants):
    raise ValueError(f"Got {len(constants)} constants for a problem with "
                     f"{len(record.constants)} non-trainable variables.")
  counter = {"created": 0, "used": 0, "constants": 0}

  def creator(next_creator, **kwargs):
    del next_creator
    index = counter["created"]
    counter["created"] += 1
    if index >= len(record.variables):
      raise ValueError(_count_mismatch(index + 1, len(record.variables)))
    recorded = record.variables[index]
    if _meant_trainable(kwargs) != record.trainable_mask[index]:
      raise ValueError(
          f"Variable #{index} ({kwargs.get('name')!r}) changed trainability since it was recorded.")
    if not record.trainable_mask[index]:
      if constants is None:
        return recorded
      counter["constants"] += 1
      return tf.convert_to_tensor(constants[counter["constants"] - 1], recorded.dtype)
    value = tensors[counter["used"]]
    counter["used"] += 1
    if value.dtype.base_dtype != recorded.dtype.base_dtype:
      raise ValueError(f"Variable #{index} ({recorded.name}) has dtype {recorded.dtype.name}, "
                       f"the tensor supplied for it {value.dtype.name}.")
    if not recorded.shape.is_compatible_with(value.shape):
      raise ValueError(f"Variable #{index} ({recorded.name}) has shape {recorded.shape}, the tensor "
                       f"supplied for it {value.shape}.")
    return value

  with tf.variable_creator_scope(creator):
    try:
      loss = make_loss()
    except AttributeError as error:
      if "Tensor' object has no attribute" not in str(error):
        raise
      raise TypeError(
          f"make_loss called a tf.Variable-only API on a substituted variable ({error}). During "
          "unrolls its trainable variables are tensors: read them (module attributes such as "
          "lin.w, or the variable itself) instead of calling assign*, or module."
          "trainable_variables, on them.") from error
  if counter["created"] != len(record.variables):
    raise ValueError(_count_mismatch(counter["created"], len(record.variables)))
  return loss


def state_variables(structure: Any, name: str) -> Any:
  """Non-trainable variables holding ``structure``'s tensors, nested alike: the state an optimizer
  or an unroll carries between calls."""
  return tf.nest.map_structure(lambda t: tf.Variable(t, trainable=False, name=name), structure)


def fresh_values(make_loss: MakeLoss, record: VariableRecord) -> list[tf.Tensor]:
  """Re-runs ``make_loss`` and returns every recorded variable's fresh initial value, in creation
  order (a new random problem, drawn by the problem's own initialisers)."""
  values = []

  def creator(next_creator, **kwargs):
    del next_creator
    index = len(values)
    if index >= len(record.variables):
      raise ValueError(_count_mismatch(index + 1, len(record.variables)))
    values.append(_initial_value(kwargs))
    return record.variables[index]

  with tf.variable_creator_scope(creator):
    make_loss()
  if len(values) != len(record.variables):
    raise ValueError(_count_mismatch(len(values), len(record.variables)))
  return values


def reinitialize(make_loss: MakeLoss, record: VariableRecord,
                 trainable_targets: Sequence[tf.Variable] | None = None) -> None:
  """Re-runs ``make_loss`` and assigns every recorded variable its fresh initial value.

  ``trainable_targets`` (one per trainable variable) receive the fresh trainable values instead of
  the recorded variables, e.g. the copies a learned optimizer carries across unrolls.
  """
  targets = list(record.variables)
  if trainable_targets is not None:
    trainable_targets = iter(trainable_targets)
    targets = [next(trainable_targets) if t else v for v, t in zip(targets, record.trainable_mask)]
  for target, value in zip(targets, fresh_values(make_loss, record)):
    target.assign(value)


def constants_substitutable(make_loss: MakeLoss, record: VariableRecord) -> bool:
  """Whether ``make_loss`` only reads its non-trainable variables, so that tensors can replace
  them (it fails to trace with tensors where it assigns to them, as batch norm does)."""
  if not record.constants:
    return False
  trace = tf.function(lambda: loss_with_custom_variables(
      make_loss, record, [v.read_value() for v in record.trainable],
      [v.read_value() for v in record.constants]))
  try:
    trace.get_concrete_function()
  except (AttributeError, TypeError, ValueError):
    return False
  return True
