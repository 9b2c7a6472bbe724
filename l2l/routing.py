"""Which optimizer net updates which parameters, and one step of all the nets.

Parameters are routed to nets in one of two ways, both giving ``groups``, ``[(net key, [parameter
indices])]``: by the original's ``net_assignments``, ``[(net key, [variable names])]``
(``assign_nets``), or by a function from a variable to its net's key (``groups_by_chooser``).
``NetGroups`` then runs every net once per step on all of its parameters: for the MetaOptimizer's
unroll, the deployed ``LearnedOptimizer`` / ``KerasLearnedOptimizer``, and the batched unroll of
meta-training over task families.
"""

from typing import Any, Callable, Mapping, Sequence

import tensorflow as tf

from l2l import networks
from l2l.nets.base import TensorNetwork

NetAssignments = Sequence[tuple[str, Sequence[str]]]
NetFor = Callable[[tf.Variable], str]
Groups = list[tuple[str, list[int]]]


def assign_nets(names: list[str], net_keys: Sequence[str],
                net_assignments: NetAssignments | None) -> Groups:
  """``[(net_key, [variable indices])]`` from the original's ``[(net_key, [names])]`` format."""
  if net_assignments is None:
    if len(net_keys) != 1:
      raise ValueError(f"The optimizer has {len(net_keys)} nets {list(net_keys)}; pass "
                       "net_assignments=[(net_key, [variable names]), ...] to say which net "
                       "optimizes which variables.")
    return [(net_keys[0], list(range(len(names))))]
  index = {name: i for i, name in enumerate(names)}
  subsets, seen = [], {}
  for key, var_names in net_assignments:
    if key not in net_keys:
      raise ValueError(f"net_assignments names net {key!r}; the nets are {list(net_keys)}.")
    indices = []
    for name in var_names:
      if name not in index:
        raise ValueError(f"net_assignments names variable {name!r}; the problem's trainable "
                         f"variables are {names}.")
      if name in seen:
        raise ValueError(f"Variable {name!r} is assigned to both {seen[name]!r} and {key!r}.")
      seen[name] = key
      indices.append(index[name])
    subsets.append((key, indices))
  missing = [n for n in names if n not in seen]
  if missing:
    raise ValueError(f"Variables {missing} are not assigned to any net in net_assignments.")
  return subsets


def net_chooser(nets: Mapping[str, Any], net_for: NetFor | None) -> NetFor:
  """``net_for`` (or the only net's key), checked to name one of ``nets``."""
  if net_for is None:
    if len(nets) != 1:
      raise ValueError(f"The optimizer has {len(nets)} nets {sorted(nets)}; pass net_for=lambda "
                       "variable: key to say which net updates which variable.")
    only = next(iter(nets))
    net_for = lambda variable: only

  def choose(variable: tf.Variable) -> str:
    key = net_for(variable)
    if key not in nets:
      raise ValueError(f"net_for({variable.name}) returned {key!r}; the nets are {sorted(nets)}.")
    return key

  return choose


def groups_by_chooser(variables: Sequence[tf.Variable], net_for: NetFor) -> Groups:
  """``[(net key, indices of its variables)]`` from a function variable -> net key."""
  groups: dict[str, list[int]] = {}
  for i, variable in enumerate(variables):
    groups.setdefault(net_for(variable), []).append(i)
  return list(groups.items())


class NetGroups:
  """The learned optimizer's step over all its nets: every net called once for its group.

  Pure in the nets' weights where asked (``theta``: every net's weights, nets in key order, as
  ``theta()`` lists them; with a leading problem axis when each problem has its own copy), so the
  same step serves the unrolls that are differentiated, perturbed or batched.
  """

  def __init__(self, nets: Mapping[str, networks.Network], groups: Sequence[tuple[str, list[int]]]):
    self.nets, self.groups = dict(nets), [(key, list(indices)) for key, indices in groups]
    self._keys = sorted({key for key, _ in self.groups})

  def build(self, shapes: Sequence[Sequence[int]]) -> list[Any]:
    """Creates the nets' weights for parameters of ``shapes``; each group's initial state."""
    return [networks.build_for(self.nets[key], [shapes[i] for i in indices])
            for key, indices in self.groups]

  def theta(self) -> list[tf.Variable]:
    """Every net's weights, nets in key order."""
    return [w for key in self._keys for w in self.nets[key].weight_list()]

  def _split(self, theta: Sequence[tf.Tensor]) -> dict[str, list[tf.Tensor]]:
    out, start = {}, 0
    for key in self._keys:
      count = len(self.nets[key].weight_list())
      out[key] = list(theta[start:start + count])
      start += count
    return out

  def batched_initial_state(self, shapes: Sequence[Sequence[int]], num_problems: int,
                            num_steps: tf.Tensor | None = None) -> list[Any]:
    """Per group, the state for ``num_problems`` problems (leading axis); ``num_steps``: each
    problem's planned horizon [num_problems], for the nets that read it (``with_horizon``)."""
    states = []
    for key, indices in self.groups:
      net = self.nets[key]
      if isinstance(net, TensorNetwork):
        initial = net.initial_state([shapes[i] for i in indices])
      else:
        initial = net.initial_state(
            sum(int(net.to_rows(tf.zeros(shapes[i])).shape[0]) for i in indices))
      initial = tf.nest.map_structure(
          lambda s: tf.tile(s[None], [num_problems] + [1] * s.shape.rank), initial)
      if num_steps is not None and isinstance(net, TensorNetwork):
        initial = net.with_horizon(initial, num_steps)
      states.append(initial)
    return states

  def updates(self, params: Sequence[tf.Tensor], grads: Sequence[tf.Tensor],
              loss: tf.Tensor | None, state: Sequence[Any],
              theta: Sequence[tf.Tensor] | None = None, batch_dims: int = 0
              ) -> tuple[list[tf.Tensor], list[Any]]:
    """One step: the float32 update of every parameter (to add to it) and the next states.

    ``theta`` None: the nets' own weights. ``batch_dims`` 1: a leading problem axis on params,
    grads and state (row nets only).
    """
    by_net = self._split(theta) if theta is not None else {}
    out, next_states = [None] * len(params), []
    for (key, indices), group_state in zip(self.groups, state):
      net = self.nets[key]
      if isinstance(net, TensorNetwork):
        steps, group_state = _tensor_net_updates(
            net, [params[i] for i in indices], [grads[i] for i in indices], loss, group_state,
            by_net.get(key), batch_dims)
      else:
        group_grads = [tf.reshape(tf.convert_to_tensor(grads[i]), params[i].shape)
                       for i in indices]
        steps, group_state = networks.group_updates(net, group_grads, group_state,
                                                    by_net.get(key), batch_dims)
      for i, step in zip(indices, steps):
        out[i] = step
      next_states.append(group_state)
    return out, next_states


def _tensor_net_updates(net: TensorNetwork, params: list[tf.Tensor], grads: list[tf.Tensor],
                        loss: tf.Tensor | None, state: Any, theta: list[tf.Tensor] | None,
                        batch_dims: int) -> tuple[list[tf.Tensor], Any]:
  """A ``TensorNetwork``'s step; over a leading problem axis (``batch_dims`` 1) it is vectorised
  with ``tf.vectorized_map``, as its per-tensor statistics are per problem. ``theta`` may carry
  the problem axis too (one perturbed copy per problem)."""
  if not batch_dims:
    if theta is None:
      return networks.net_updates(net, params, grads, loss, state)
    grads = [tf.reshape(tf.convert_to_tensor(g), p.shape) for g, p in zip(grads, params)]
    return net.apply(theta, params, grads, loss, state)
  theta = list(net.weight_list()) if theta is None else list(theta)
  own_copy = [t.shape.rank > w.shape.rank for t, w in zip(theta, net.weight_list())]
  shared = [t for t, own in zip(theta, own_copy) if not own]

  def one_problem(args):
    mapped, params, grads, loss, state = args
    shared_iter, mapped_iter = iter(shared), iter(mapped)
    weights = [next(mapped_iter) if own else next(shared_iter) for own in own_copy]
    return net.apply(weights, params, grads, loss, state)

  mapped = [t for t, own in zip(theta, own_copy) if own]
  return tf.vectorized_map(one_problem, (mapped, params, grads, loss, state),
                           fallback_to_while_loop=True)
