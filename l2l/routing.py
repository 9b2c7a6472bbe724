"""Which optimizer net updates which parameters."""

from typing import Sequence

NetAssignments = Sequence[tuple[str, Sequence[str]]]


def assign_nets(names: list[str], net_keys: Sequence[str],
                net_assignments: NetAssignments | None) -> list[tuple[str, list[int]]]:
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
