"""Gradient-based meta-learning steps: Reptile, first-order MAML and MAML, compatible with ivy.

Each step adapts the variables to every task with ``inner_grad_steps`` steps of an inner optimizer and
returns the meta cost and the meta gradients for the outer leaves; it never modifies the caller's
variables, so any optimizer (a ``snt.Optimizer``, or the nested updates of ``l2l.updates``) can apply
the gradients. All three work eagerly and inside ``tf.function``. The numbers are those of ivy
1.0.0.5's functions of the same names; the one deliberate difference is that ``maml_step`` with
``batched=False`` returns gradients shaped like the variables (ivy sums them over the first axis).

Batches and variables are nested dicts addressed by key chains (``"layer/w"``). Tasks are either the
rows of the batch (``batched=False``: task ``i`` sees ``leaf[i:i+1]`` of every batch leaf and starts
from the shared variables) or handled at once by a cost function that sees the whole batch
(``batched=True``: by convention the variables carry a leading task axis, every gradient taken inside
is scaled by ``num_tasks``, and the outer gradients are reduced over that axis).
"""

import dataclasses
from collections.abc import Mapping
from typing import Any, Callable

import tensorflow as tf

from l2l import nest
from l2l.updates import gradient_descent_update

Nested = Any
CostFn = Callable[[dict, dict], tf.Tensor]
KeySelection = Any  # None, a key chain, a list of key chains, or a nested dict of key chains.

@dataclasses.dataclass(frozen=True)
class _MetaStepConfig:
  """Everything about a meta step that is the same for every task."""
  inner_cost_fn: CostFn
  outer_cost_fn: CostFn | None
  structure: Nested  # The caller's variables, for rebuilding what cost functions receive.
  inner_grad_steps: int
  inner_learning_rate: Any
  inner_optimization_step: Callable[..., Nested]
  second_order: bool
  average_across_steps: bool
  stop_gradients: bool


def _check_cost(cost: Any, name: str) -> tf.Tensor:
  cost = tf.convert_to_tensor(cost)
  if cost.shape.rank != 0:
    raise ValueError(
        f"{name} must return a scalar (0-d) cost, got shape {cost.shape}. Reduce it, e.g. with "
        "tf.reduce_mean, inside the cost function.")
  return cost


def _non_finite_to_zero(g: tf.Tensor) -> tf.Tensor:
  return tf.where(tf.math.is_finite(g), g, tf.constant(0, g.dtype))


def _cost_and_grads(cost_fn: CostFn, name: str, batch: Nested, theta: nest.Flat, keys: list[str],
                    structure: Nested, scale: Any) -> tuple[tf.Tensor, nest.Flat]:
  """``cost_fn(batch, theta)`` and ``scale * d cost / d theta[keys]``.

  Leaves the cost does not reach get zero gradients; non-finite gradients become zero (as ivy).
  An enclosing tape records this computation, which is how ``maml_step`` gets second derivatives.
  """
  watched = [theta[k] for k in keys]
  with tf.GradientTape(watch_accessed_variables=False) as tape:
    tape.watch(watched)
    cost = _check_cost(cost_fn(batch, nest.rebuild(structure, theta)), name)
  grads = tape.gradient(cost, watched, unconnected_gradients=tf.UnconnectedGradients.ZERO)
  grads = [_non_finite_to_zero(g) for g in grads]
  if not (isinstance(scale, int) and scale == 1):
    grads = [g * tf.cast(scale, g.dtype) for g in grads]
  return cost, dict(zip(keys, grads))


def _select_learning_rate(lr: Any, keys: list[str]) -> Any:
  """A per-leaf learning-rate dict restricted to the adapted leaves; a single value as it is."""
  if not isinstance(lr, Mapping):
    return lr
  flat = nest.flatten(lr)
  missing = [k for k in keys if k not in flat]
  if missing:
    raise ValueError(f"inner_learning_rate has no entry for the adapted key chain(s) {missing}.")
  return nest.unflatten({k: flat[k] for k in keys})


def _inner_update(setup: _MetaStepConfig, theta: nest.Flat, grads: nest.Flat,
                  stop_gradients: bool) -> nest.Flat:
  """Applies ``inner_optimization_step`` to the adapted leaves; the others stay as they are."""
  keys = list(grads)
  new = setup.inner_optimization_step(
      nest.unflatten({k: theta[k] for k in keys}), nest.unflatten(grads),
      _select_learning_rate(setup.inner_learning_rate, keys), stop_gradients=stop_gradients)
  if not isinstance(new, Mapping):
    raise TypeError(
        "inner_optimization_step must return the updated weights as a dict, got "
        f"{type(new).__name__}. Updates that also return optimizer state (adam_update, lamb_update) "
        "need a wrapper that keeps that state.")
  new_flat = nest.flatten(new)
  nest.check_same_keys(grads, new_flat, "the adapted variables",
                       "the result of inner_optimization_step")
  return {k: new_flat.get(k, v) for k, v in theta.items()}


def _mean_of(terms: list[tf.Tensor]) -> tf.Tensor:
  return tf.add_n(terms) / len(terms) if len(terms) > 1 else terms[0]


def _adapt_one_task(setup: _MetaStepConfig, inner_batch: Nested, outer_batch: Nested,
                    theta: nest.Flat, inner_keys: list[str], outer_keys: list[str],
                    outer_is_inner: bool, scale: Any
                    ) -> tuple[tf.Tensor, nest.Flat | None, nest.Flat]:
  """The inner loop on one task (or on the whole batch when batched).

  ``outer_is_inner``: the outer cost is the inner cost on the same leaves (Reptile's case), so
  with ``average_across_steps`` each step's inner cost and gradients are its outer ones too.

  Returns the cost, the first-order outer gradients (``None`` for second order, where the caller's
  tape differentiates the cost) and the adapted variables.
  """
  outer_cost_fn = setup.outer_cost_fn or setup.inner_cost_fn
  first_order = not setup.second_order

  def outer(theta: nest.Flat) -> tuple[tf.Tensor, nest.Flat | None]:
    if first_order:
      return _cost_and_grads(outer_cost_fn, "outer_cost_fn", outer_batch, theta, outer_keys,
                             setup.structure, scale)
    return _check_cost(outer_cost_fn(outer_batch, nest.rebuild(setup.structure, theta)),
                       "outer_cost_fn"), None

  costs, grads = [], []
  for _ in range(setup.inner_grad_steps):
    cost, inner_grads = _cost_and_grads(setup.inner_cost_fn, "inner_cost_fn", inner_batch, theta,
                                        inner_keys, setup.structure, scale)
    if setup.average_across_steps:
      step_grads = inner_grads
      if not outer_is_inner:
        cost, step_grads = outer(theta)
      costs.append(cost)
      grads.append(step_grads)
    theta = _inner_update(setup, theta, inner_grads,
                          stop_gradients=setup.stop_gradients and first_order)
  cost, final_grads = outer(theta)
  costs.append(cost)
  grads.append(final_grads)
  mean_grads = None
  if first_order:
    mean_grads = {k: _mean_of([g[k] for g in grads]) for k in outer_keys}
  if setup.stop_gradients and first_order:
    theta = {k: tf.stop_gradient(v) for k, v in theta.items()}
  return _mean_of(costs), mean_grads, theta


# ----------------------------------------------------------------------------------------------
# Key-chain selection and task splitting.


def _is_per_task(selection: KeySelection) -> bool:
  """ivy's rule: a list whose first element is a list, tuple, dict or None holds one entry per task."""
  return (isinstance(selection, (list, tuple)) and len(selection) > 0
          and (selection[0] is None or isinstance(selection[0], (list, tuple, Mapping))))


def _select_keys(all_keys: list[str], selection: KeySelection, keep: bool, name: str) -> list[str]:
  """The key chains of ``all_keys`` chosen by ``selection`` (its complement when ``keep`` is False)."""
  if selection is None:
    return list(all_keys)
  if isinstance(selection, str):
    chains = [selection]
  elif isinstance(selection, Mapping):
    chains = list(nest.flatten(selection))
  elif isinstance(selection, (list, tuple)) and all(isinstance(c, str) for c in selection):
    chains = list(selection)
  else:
    raise TypeError(
        f"{name} must be None, a key chain string, a list of key chains or a nested dict, got "
        f"{selection!r}.")
  chosen = set()
  for chain in chains:
    chain = chain.strip("/")
    matched = [k for k in all_keys if k == chain or k.startswith(chain + "/")]
    if not matched:
      raise ValueError(
          f"{name}: key chain {chain!r} is not in the variables; their key chains are {all_keys}.")
    chosen.update(matched)
  keys = [k for k in all_keys if (k in chosen) == keep]
  if not keys:
    raise ValueError(f"{name}={selection!r} with keep={keep} selects no variables.")
  return keys


def _num_tasks(batch: nest.Flat, num_tasks: Any, need_static: bool) -> Any:
  """Resolves ``num_tasks`` against the leading dimension of the batch leaves, checking both."""
  leading = {k: v.shape[0] for k, v in batch.items() if v.shape.rank}
  static = {d for d in leading.values() if d is not None}
  if num_tasks is None:
    if len(static) > 1:
      raise ValueError(
          f"The batch leaves have different leading dimensions {leading}; pass num_tasks to say "
          "how many tasks the batch holds.")
    if len(static) == 1 and None not in leading.values():
      return static.pop()
    if need_static or not leading:
      raise ValueError(
          "num_tasks could not be read from the batch (no leaf with a statically known leading "
          "dimension); pass num_tasks explicitly.")
    return tf.shape(batch[next(iter(leading))])[0]
  if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
    raise ValueError(f"num_tasks must be a positive int, got {num_tasks!r}.")
  if static and num_tasks > min(static):
    raise ValueError(
        f"num_tasks={num_tasks} is larger than the batch: its leaves have leading dimensions "
        f"{leading}.")
  return num_tasks


def _apply_batch_fn(fn: Callable[[Nested], Nested] | None, batch: Nested) -> Nested:
  return batch if fn is None else fn(batch)


def _reduce_task_axis(flat: nest.Flat, reduce: Callable[..., tf.Tensor]) -> nest.Flat:
  """Reduces every leaf over its leading (task) axis; 0-d leaves have none and stay."""
  return {k: reduce(v, axis=0) if v.shape.rank else v for k, v in flat.items()}


# ----------------------------------------------------------------------------------------------
# The shared driver.


def _adapt_all_tasks(setup: _MetaStepConfig, batch: Nested, variables: Nested, *,
                     inner_batch_fn, outer_batch_fn, batched: bool, inner_v: KeySelection,
                     keep_inner_v: bool, outer_v: KeySelection, keep_outer_v: bool,
                     return_inner_v: Any, num_tasks: Any, theta: nest.Flat | None = None):
  """Runs the inner loop on every task; returns ``(cost, grads, inner_vars_or_None)`` (flat dicts).

  ``theta`` overrides the variables' values (``maml_step`` passes tensors its tape watches).
  """
  batch_flat = {k: nest.to_tensor(v) for k, v in nest.flatten(batch).items()}
  if theta is None:
    theta = _as_tensors(variables)
  all_keys = list(theta)
  tasks = _num_tasks(batch_flat, num_tasks, need_static=not batched)

  if batched:
    if _is_per_task(inner_v) or _is_per_task(outer_v):
      raise ValueError("Per-task lists of inner_v / outer_v need batched=False.")
    whole = nest.rebuild(batch, batch_flat)
    outer_is_inner = setup.outer_cost_fn is None and inner_v is None and outer_v is None
    cost, grads, adapted = _adapt_one_task(
        setup, _apply_batch_fn(inner_batch_fn, whole), _apply_batch_fn(outer_batch_fn, whole),
        theta, _select_keys(all_keys, inner_v, keep_inner_v, "inner_v"),
        _select_keys(all_keys, outer_v, keep_outer_v, "outer_v"), outer_is_inner, tasks)
    if grads is not None:
      grads = _reduce_task_axis(grads, tf.reduce_mean)
    inner_vars = None
    if return_inner_v == "first":
      inner_vars = {k: v[0:1] if v.shape.rank else v for k, v in adapted.items()}
    elif return_inner_v:
      inner_vars = adapted
    return cost, grads, inner_vars

  per_task = {}
  for name, selection in (("inner_v", inner_v), ("outer_v", outer_v)):
    if _is_per_task(selection) and len(selection) < tasks:
      raise ValueError(f"{name} has {len(selection)} per-task entries for {tasks} tasks.")
    per_task[name] = _is_per_task(selection)
  costs, grads, adapted = [], [], []
  outer_keys = None
  for i in range(tasks):
    sub_batch = nest.rebuild(batch, {k: v[i:i + 1] for k, v in batch_flat.items()})
    task_inner_v = inner_v[i] if per_task["inner_v"] else inner_v
    task_outer_v = outer_v[i] if per_task["outer_v"] else outer_v
    task_outer_keys = _select_keys(all_keys, task_outer_v, keep_outer_v, "outer_v")
    if outer_keys is not None and task_outer_keys != outer_keys:
      raise ValueError("Per-task outer_v entries must select the same key chains for every task.")
    outer_keys = task_outer_keys
    outer_is_inner = setup.outer_cost_fn is None and task_inner_v is None and task_outer_v is None
    cost, task_grads, task_vars = _adapt_one_task(
        setup, _apply_batch_fn(inner_batch_fn, sub_batch),
        _apply_batch_fn(outer_batch_fn, sub_batch), theta,
        _select_keys(all_keys, task_inner_v, keep_inner_v, "inner_v"), outer_keys, outer_is_inner, 1)
    costs.append(cost)
    grads.append(task_grads)
    if return_inner_v == "first" and i > 0:
      continue
    adapted.append(task_vars)
  mean_grads = None
  if grads[0] is not None:
    mean_grads = {k: _mean_of([g[k] for g in grads]) for k in outer_keys}
  inner_vars = None
  if return_inner_v:
    inner_vars = {k: tf.concat([v[k][tf.newaxis] for v in adapted], axis=0) for k in all_keys}
  return _mean_of(costs), mean_grads, inner_vars


def _as_tensors(variables: Nested) -> nest.Flat:
  """The variables' current values as distinct float tensors, keyed by key chain."""
  flat = nest.flatten(variables)
  if not flat:
    raise ValueError("variables is empty: there is nothing to meta-learn.")
  return {k: tf.identity(nest.to_tensor(v, nest.float_dtype(v))) for k, v in flat.items()}


def _check_arguments(inner_grad_steps: Any, return_inner_v: Any) -> None:
  if isinstance(inner_grad_steps, bool) or not isinstance(inner_grad_steps, int) \
      or inner_grad_steps < 0:
    raise ValueError(f"inner_grad_steps must be an int >= 0, got {inner_grad_steps!r}.")
  valid = (return_inner_v is None or isinstance(return_inner_v, bool)
           or (isinstance(return_inner_v, str) and return_inner_v in ("first", "all")))
  if not valid:
    raise ValueError(
        f"return_inner_v must be False, True, 'first' or 'all', got {return_inner_v!r}.")


def _maybe_stop_gradient(cost: tf.Tensor, stop_gradients: bool) -> tf.Tensor:
  return tf.stop_gradient(cost) if stop_gradients else cost


def _first_order(batch, inner_cost_fn, outer_cost_fn, variables, inner_grad_steps,
                 inner_learning_rate, inner_optimization_step, average_across_steps,
                 stop_gradients, **task_kwargs):
  _check_arguments(inner_grad_steps, task_kwargs["return_inner_v"])
  setup = _MetaStepConfig(inner_cost_fn, outer_cost_fn, variables, inner_grad_steps, inner_learning_rate,
                 inner_optimization_step, second_order=False,
                 average_across_steps=average_across_steps, stop_gradients=stop_gradients)
  cost, grads, inner_vars = _adapt_all_tasks(setup, batch, variables, **task_kwargs)
  return _maybe_stop_gradient(cost, stop_gradients), grads, inner_vars


def _as_step_outputs(cost: tf.Tensor, grads: nest.Flat, inner_vars: nest.Flat | None,
              return_inner_v: Any) -> tuple:
  """``(cost, grads)`` or ``(cost, grads, inner_vars)`` as nested dicts (reptile / fomaml)."""
  if return_inner_v:
    return cost, nest.unflatten(grads), nest.unflatten(inner_vars)
  return cost, nest.unflatten(grads)


# ----------------------------------------------------------------------------------------------
# Public steps.


def reptile_step(batch: Nested, cost_fn: CostFn, variables: Nested, inner_grad_steps: int,
                 inner_learning_rate: Any, /, *,
                 inner_optimization_step: Callable[..., Nested] = gradient_descent_update,
                 batched: bool = True, return_inner_v: bool | str = False,
                 num_tasks: int | None = None, stop_gradients: bool = True):
  """One Reptile meta step (Nichol et al. 2018), as ivy computes it.

  Per task, the gradient is the mean of the ``inner_grad_steps + 1`` cost gradients along the
  inner trajectory divided by ``inner_learning_rate``, and the cost is the mean of the costs along it.

  Args:
    batch: nested dict of task data; its leading axis indexes tasks.
    cost_fn: ``cost_fn(batch, variables) -> scalar``.
    variables: nested dict of tensors or ``tf.Variable``s (never modified).
    inner_grad_steps: number of inner steps K.
    inner_learning_rate: the inner step size (a number, or a dict per key chain).
    inner_optimization_step: ``step(weights, grads, lr, stop_gradients=...) -> weights``.
    batched: True to give the whole batch to ``cost_fn`` at once (see the module docstring).
    return_inner_v: False, ``'first'``, ``'all'`` or True: also return the adapted variables.
    num_tasks: number of tasks; the batch's leading dimension by default.
    stop_gradients: detach the returned cost and the inner updates (values are unchanged).

  Returns:
    ``(cost, grads)``, or ``(cost, grads, inner_variables)`` when ``return_inner_v`` is set.
  """
  cost, grads, inner_vars = _first_order(
      batch, cost_fn, None, variables, inner_grad_steps, inner_learning_rate,
      inner_optimization_step, True, stop_gradients, inner_batch_fn=None, outer_batch_fn=None,
      batched=batched, inner_v=None, keep_inner_v=True, outer_v=None, keep_outer_v=True,
      return_inner_v=return_inner_v, num_tasks=num_tasks)
  lr = nest.broadcast_like(variables, nest.flatten(variables), inner_learning_rate, "variables",
                          "inner_learning_rate")
  grads = {k: g / nest.to_tensor(lr[k], g.dtype) for k, g in grads.items()}
  return _as_step_outputs(cost, grads, inner_vars, return_inner_v)


def fomaml_step(batch: Nested, inner_cost_fn: CostFn, outer_cost_fn: CostFn | None,
                variables: Nested, inner_grad_steps: int, inner_learning_rate: Any, /, *,
                inner_optimization_step: Callable[..., Nested] = gradient_descent_update,
                inner_batch_fn: Callable[[Nested], Nested] | None = None,
                outer_batch_fn: Callable[[Nested], Nested] | None = None,
                average_across_steps: bool = False, batched: bool = True,
                inner_v: KeySelection = None, keep_inner_v: bool = True,
                outer_v: KeySelection = None, keep_outer_v: bool = True,
                return_inner_v: bool | str = False, num_tasks: int | None = None,
                stop_gradients: bool = True):
  """One first-order MAML meta step (Finn et al. 2017, first-order variant), as ivy computes it.

  The outer gradient is ``d outer_cost / d theta_K`` at the adapted point (or its mean over the
  steps with ``average_across_steps``), without differentiating through the inner updates.

  Args:
    batch, variables, inner_grad_steps, inner_learning_rate, inner_optimization_step, batched,
    return_inner_v, num_tasks, stop_gradients: as for ``reptile_step``.
    inner_cost_fn: cost adapted in the inner loop, ``inner_cost_fn(batch, variables) -> scalar``.
    outer_cost_fn: cost whose gradient is returned; None to use ``inner_cost_fn``.
    inner_batch_fn / outer_batch_fn: map a task's batch to the batch each cost sees.
    average_across_steps: average cost and gradients over the K+1 points of the trajectory.
    inner_v / outer_v: key chains adapted in the inner loop / receiving outer gradients
      (None: all). ``keep_*=False`` takes the complement. With ``batched=False``, a list whose first
      element is a list, tuple, dict or None gives one selection per task.

  Returns:
    ``(cost, grads)``, or ``(cost, grads, inner_variables)`` when ``return_inner_v`` is set.
  """
  cost, grads, inner_vars = _first_order(
      batch, inner_cost_fn, outer_cost_fn, variables, inner_grad_steps, inner_learning_rate,
      inner_optimization_step, average_across_steps, stop_gradients, inner_batch_fn=inner_batch_fn,
      outer_batch_fn=outer_batch_fn, batched=batched, inner_v=inner_v, keep_inner_v=keep_inner_v,
      outer_v=outer_v, keep_outer_v=keep_outer_v, return_inner_v=return_inner_v,
      num_tasks=num_tasks)
  return _as_step_outputs(cost, grads, inner_vars, return_inner_v)


def maml_step(batch: Nested, inner_cost_fn: CostFn, outer_cost_fn: CostFn | None,
              variables: Nested, inner_grad_steps: int, inner_learning_rate: Any, /, *,
              inner_optimization_step: Callable[..., Nested] = gradient_descent_update,
              inner_batch_fn: Callable[[Nested], Nested] | None = None,
              outer_batch_fn: Callable[[Nested], Nested] | None = None,
              average_across_steps: bool = False, batched: bool = True,
              inner_v: KeySelection = None, keep_inner_v: bool = True,
              outer_v: KeySelection = None, keep_outer_v: bool = True,
              return_inner_v: bool | str = False, num_tasks: int | None = None,
              stop_gradients: bool = True):
  """One second-order MAML meta step (Finn et al. 2017), as ivy computes it.

  The gradient of the meta cost with respect to the initial outer leaves, differentiated through
  every inner update (``inner_optimization_step`` is called with ``stop_gradients=False``). Batched:
  summed over the task axis. Unbatched: the gradient of the mean task cost, shaped like the
  variables. Arguments as for ``fomaml_step``.

  Returns:
    ``(cost, grads, rest)``: ``rest`` is the adapted-variables dict when ``return_inner_v`` is set,
    else ``()``.
  """
  _check_arguments(inner_grad_steps, return_inner_v)
  setup = _MetaStepConfig(inner_cost_fn, outer_cost_fn, variables, inner_grad_steps, inner_learning_rate,
                 inner_optimization_step, second_order=True,
                 average_across_steps=average_across_steps, stop_gradients=stop_gradients)
  theta = _as_tensors(variables)
  selection = outer_v[0] if _is_per_task(outer_v) and not batched else outer_v
  outer_keys = _select_keys(list(theta), selection, keep_outer_v, "outer_v")
  with tf.GradientTape(watch_accessed_variables=False) as tape:
    tape.watch([theta[k] for k in outer_keys])
    cost, _, inner_vars = _adapt_all_tasks(
        setup, batch, variables, inner_batch_fn=inner_batch_fn, outer_batch_fn=outer_batch_fn,
        batched=batched, inner_v=inner_v, keep_inner_v=keep_inner_v, outer_v=outer_v,
        keep_outer_v=keep_outer_v, return_inner_v=return_inner_v, num_tasks=num_tasks,
        theta=theta)
  grads = tape.gradient(cost, [theta[k] for k in outer_keys],
                        unconnected_gradients=tf.UnconnectedGradients.ZERO)
  grads = {k: _non_finite_to_zero(g) for k, g in zip(outer_keys, grads)}
  if batched:
    grads = _reduce_task_axis(grads, tf.reduce_sum)
  rest = ()
  if return_inner_v:
    rest = nest.unflatten({k: tf.stop_gradient(v) if stop_gradients else v
                           for k, v in inner_vars.items()})
  return _maybe_stop_gradient(cost, stop_gradients), nest.unflatten(grads), rest
