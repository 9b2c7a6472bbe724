"""Optimizer updates over nested structures, compatible with ivy's Container gradient methods.

Each update is a small pure function in the style of optax: it takes the weights (a tensor or a nested
dict / list of tensors), the gradients and the hyperparameters, and returns new values without
touching any ``tf.Variable``. The first structured argument (``w``; ``dcdw`` for ``adam_step``) sets the
structure. Every other argument is either the same structure or a single value broadcast into every
leaf; a mismatch raises ``ValueError`` naming the key chains. Norms (LARS, LAMB) are taken per leaf over
the whole flattened leaf. Outputs keep the float dtype of the structure-setting argument.

The numbers follow ivy 1.0.0.5's functions of the same names with three corrections: with
``decay_lambda > 0`` ``lars_update`` is standard LARS (trust ‖w‖ / (‖g‖ + λ‖w‖), step along g + λw)
and ``lamb_update`` standard LAMB (the decay λw joins the Adam step in the update, not only in the
norm), and no output is promoted to float64.
"""

from typing import Any, Callable

import tensorflow as tf

from l2l import nest

Nested = Any  # A tensor-like leaf, or a nested dict / list / tuple of them.

_MIN_DENOMINATOR = 1e-12  # ivy.min_denominator, used by stable_divide.


def _map_leaves(leaf_fn: Callable[..., Any], ref: Nested, ref_name: str, **args: Any) -> Any:
  """Applies ``leaf_fn(ref_leaf, **arg_leaves)`` per key chain of ``ref`` and repacks the results.

  ``ref_leaf`` arrives as a float tensor; the argument leaves arrive unconverted so that Python
  numbers can still be combined in double precision before they are cast (as ivy does).
  """
  ref_flat = nest.flatten(ref)
  if not ref_flat:
    raise ValueError(f"{ref_name} is an empty structure: there is nothing to update.")
  flat_args = {name: nest.broadcast_like(ref, ref_flat, value, ref_name, name)
               for name, value in args.items()}
  results = {}
  for chain, leaf in ref_flat.items():
    leaf = nest.to_tensor(leaf, nest.float_dtype(leaf))
    results[chain] = leaf_fn(leaf, **{name: flat[chain] for name, flat in flat_args.items()})
  first = next(iter(results.values()))
  if isinstance(first, tuple):
    return tuple(nest.rebuild(ref, {k: r[i] for k, r in results.items()})
                 for i in range(len(first)))
  return nest.rebuild(ref, results)


def _maybe_stop(x: tf.Tensor, stop_gradients: bool) -> tf.Tensor:
  return tf.stop_gradient(x) if stop_gradients else x


def _norm(x: tf.Tensor) -> tf.Tensor:
  """L2 norm of the whole leaf, flattened."""
  return tf.norm(tf.reshape(x, [-1]))


def _adam_leaf(g, mw, vw, step, beta1, beta2, epsilon):
  """One Adam step on one leaf; returns ``(delta, mw, vw)``.

  ivy computes the bias correction in double precision from a step rounded to the input dtype, and
  puts epsilon into its denominator too; this reproduces both.
  """
  dtype = g.dtype
  c = lambda x: nest.to_tensor(x, dtype)
  mw = c(beta1) * c(mw) + c(1 - beta1) * g
  vw = c(beta2) * c(vw) + c(1 - beta2) * tf.square(g)
  step = tf.cast(tf.reshape(c(step), []), tf.float64)
  b1, b2, eps = (nest.to_tensor(x, tf.float64) for x in (beta1, beta2, epsilon))
  alpha = tf.sqrt(1.0 - tf.pow(b2, step)) / (1.0 - tf.pow(b1, step) + eps)
  delta = mw / (tf.sqrt(tf.maximum(vw, 0.0)) + c(epsilon)) * tf.cast(alpha, dtype)
  return delta, mw, vw


def _descend(w: Nested, direction: Nested, lr: Any, stop_gradients: bool,
             direction_name: str) -> Nested:
  def leaf(w, lr, **direction):
    c = lambda x: nest.to_tensor(x, w.dtype)
    return _maybe_stop(w - c(direction[direction_name]) * c(lr), stop_gradients)
  return _map_leaves(leaf, w, "w", **{direction_name: direction, "lr": lr})


def optimizer_update(w: Nested, effective_grad: Nested, lr: Any, /, *,
                     stop_gradients: bool = True) -> Nested:
  """``w - effective_grad * lr`` per leaf: applies an already computed update direction."""
  return _descend(w, effective_grad, lr, stop_gradients, "effective_grad")


def gradient_descent_update(w: Nested, dcdw: Nested, lr: Any, /, *,
                            stop_gradients: bool = True) -> Nested:
  """Plain gradient descent, ``w - dcdw * lr`` per leaf."""
  return _descend(w, dcdw, lr, stop_gradients, "dcdw")


def adam_step(dcdw: Nested, mw: Nested, vw: Nested, step: Any, /, *, beta1: Any = 0.9,
              beta2: Any = 0.999, epsilon: Any = 1e-7) -> tuple[Nested, Nested, Nested]:
  """The Adam direction for gradients ``dcdw``; returns ``(delta, mw, vw)``.

  ``mw`` / ``vw`` are the running first / second moments from the previous step and ``step`` the
  1-based step count (bias correction). ``delta`` is to be subtracted (times a learning rate).
  """
  return _map_leaves(_adam_leaf, dcdw, "dcdw", mw=mw, vw=vw, step=step, beta1=beta1, beta2=beta2,
                     epsilon=epsilon)


def adam_update(w: Nested, dcdw: Nested, lr: Any, mw_tm1: Nested, vw_tm1: Nested, step: Any, /, *,
                beta1: Any = 0.9, beta2: Any = 0.999, epsilon: Any = 1e-7,
                stop_gradients: bool = True) -> tuple[Nested, Nested, Nested]:
  """One Adam update of ``w``; returns ``(w_new, mw, vw)``."""
  def leaf(w, dcdw, lr, mw_tm1, vw_tm1, step, beta1, beta2, epsilon):
    c = lambda x: nest.to_tensor(x, w.dtype)
    delta, mw, vw = _adam_leaf(c(dcdw), mw_tm1, vw_tm1, step, beta1, beta2, epsilon)
    return _maybe_stop(w - delta * c(lr), stop_gradients), mw, vw
  return _map_leaves(leaf, w, "w", dcdw=dcdw, lr=lr, mw_tm1=mw_tm1, vw_tm1=vw_tm1, step=step,
                     beta1=beta1, beta2=beta2, epsilon=epsilon)


def lamb_update(w: Nested, dcdw: Nested, lr: Any, mw_tm1: Nested, vw_tm1: Nested, step: Any, /, *,
                beta1: Any = 0.9, beta2: Any = 0.999, epsilon: Any = 1e-7,
                max_trust_ratio: Any = 10, decay_lambda: Any = 0,
                stop_gradients: bool = True) -> tuple[Nested, Nested, Nested]:
  """One LAMB update (You et al. 2019) of ``w``; returns ``(w_new, mw, vw)``.

  With ``d`` the Adam direction and ``u = d + decay_lambda * w``, the layer-wise trust ratio is
  ``r = min(‖w‖ / ‖u‖, max_trust_ratio)`` and ``w_new = w - u * (r * lr)``. A leaf with ``w = 0``
  gets ``r = 0`` and stays where it is.
  """
  def leaf(w, dcdw, lr, mw_tm1, vw_tm1, step, beta1, beta2, epsilon, max_trust_ratio,
           decay_lambda):
    c = lambda x: nest.to_tensor(x, w.dtype)
    delta, mw, vw = _adam_leaf(c(dcdw), mw_tm1, vw_tm1, step, beta1, beta2, epsilon)
    direction = delta + c(decay_lambda) * w
    ratio = tf.minimum(_norm(w) / (_norm(direction) + _MIN_DENOMINATOR), c(max_trust_ratio))
    return _maybe_stop(w - direction * (ratio * c(lr)), stop_gradients), mw, vw
  return _map_leaves(leaf, w, "w", dcdw=dcdw, lr=lr, mw_tm1=mw_tm1, vw_tm1=vw_tm1, step=step,
                     beta1=beta1, beta2=beta2, epsilon=epsilon, max_trust_ratio=max_trust_ratio,
                     decay_lambda=decay_lambda)


def lars_update(w: Nested, dcdw: Nested, lr: Any, /, *, decay_lambda: Any = 0,
                stop_gradients: bool = True) -> Nested:
  """One LARS update (You et al. 2017) of ``w``.

  Per leaf: ``trust = ‖w‖ / (‖dcdw‖ + decay_lambda·‖w‖)`` and
  ``w_new = w - lr · trust · (dcdw + decay_lambda·w)``.
  """
  def leaf(w, dcdw, lr, decay_lambda):
    c = lambda x: nest.to_tensor(x, w.dtype)
    dcdw, decay_lambda = c(dcdw), c(decay_lambda)
    w_norm = _norm(w)
    local_lr = w_norm * c(lr) / (_norm(dcdw) + decay_lambda * w_norm + _MIN_DENOMINATOR)
    return _maybe_stop(w - (dcdw + decay_lambda * w) * local_lr, stop_gradients)
  return _map_leaves(leaf, w, "w", dcdw=dcdw, lr=lr, decay_lambda=decay_lambda)


def stop_gradient(x: Nested, /, *, preserve_type: bool = True) -> Nested:
  """``x`` with gradients stopped, structure kept (``preserve_type`` has no effect in TF)."""
  del preserve_type  # Accepted for ivy compatibility.
  return nest.rebuild(x, {k: tf.stop_gradient(nest.to_tensor(v))
                          for k, v in nest.flatten(x).items()})
