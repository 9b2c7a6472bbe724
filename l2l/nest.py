"""Nested structures addressed by key chains.

A *key chain* names a leaf or a sub-tree of a nested structure by joining its keys with "/", as ivy's
Containers do: ``"layer/w"``. The meta-learning steps and the optimizer updates work on flat
``{key_chain: leaf}`` dicts (ordered as ``tree.flatten`` orders leaves) and rebuild nested dicts at the
end; these helpers do the conversion and the structure checks, so that every public function reports a
mismatch the same way.
"""

from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tree

KeyChain = str
Flat = dict[KeyChain, Any]


def is_structure(x: Any) -> bool:
  """True for a (possibly nested) dict, list or tuple; False for a leaf."""
  return isinstance(x, (Mapping, list, tuple))


def flatten(structure: Any) -> Flat:
  """``{key_chain: leaf}`` for every leaf of ``structure``, in ``tree.flatten`` order."""
  return {"/".join(str(k) for k in path): leaf
          for path, leaf in tree.flatten_with_path(structure)}


def unflatten(flat: Flat) -> dict:
  """Builds a nested dict from ``{key_chain: leaf}`` (the inverse of ``flatten`` for dicts)."""
  out: dict = {}
  for chain, leaf in flat.items():
    keys = chain.split("/")
    node = out
    for key in keys[:-1]:
      node = node.setdefault(key, {})
    node[keys[-1]] = leaf
  return out


def float_dtype(x: Any) -> tf.DType:
  """The float dtype a leaf computes in: its own if floating, else TensorFlow's float32."""
  dtype = getattr(x, "dtype", None)
  if dtype is not None:
    dtype = tf.as_dtype(dtype)
    if dtype.is_floating:
      return dtype
  return tf.float32


def to_tensor(x: Any, dtype: tf.DType | None = None) -> tf.Tensor:
  """Converts a leaf (Tensor, Variable, numpy array, Python number or list) to a Tensor.

  With ``dtype`` the result is cast to it, so that float32 inputs stay float32 whatever the
  precision of a Python or numpy argument.
  """
  if isinstance(x, tf.Variable):
    x = tf.convert_to_tensor(x)  # Reads the value, eagerly or in a graph.
  if dtype is None:
    return tf.convert_to_tensor(x)
  if isinstance(x, tf.Tensor):
    return x if x.dtype == dtype else tf.cast(x, dtype)
  try:
    return tf.convert_to_tensor(x, dtype=dtype)
  except (TypeError, ValueError):
    return tf.cast(tf.convert_to_tensor(x), dtype)


def check_same_keys(ref: Flat, other: Flat, ref_name: str, other_name: str) -> None:
  """Raises ValueError naming the key chains present in one structure and not the other."""
  if set(ref) == set(other):
    return
  missing = [k for k in ref if k not in other]
  extra = [k for k in other if k not in ref]
  parts = []
  if missing:
    parts.append(f"key chain(s) {missing} of {ref_name} are missing from {other_name}")
  if extra:
    parts.append(f"key chain(s) {extra} of {other_name} are not in {ref_name}")
  raise ValueError(
      f"Nested structure mismatch: {'; '.join(parts)}. Pass {other_name} either with exactly "
      f"the key chains of {ref_name} or as a single value to broadcast into every leaf.")


def broadcast_like(ref: Any, ref_flat: Flat, arg: Any, ref_name: str, arg_name: str) -> Flat:
  """``arg`` as a flat dict keyed like ``ref_flat``.

  A dict (or, when ``ref`` itself is a list/tuple, a list/tuple) must have the same key chains as
  ``ref``; anything else is one leaf broadcast into every key chain.
  """
  structured = isinstance(arg, Mapping) or (
      isinstance(arg, (list, tuple)) and isinstance(ref, (list, tuple)))
  if not structured:
    return {k: arg for k in ref_flat}
  if not is_structure(ref):
    raise ValueError(
        f"{arg_name} is a nested structure but {ref_name} is a single tensor; pass {arg_name} as a "
        f"single value or {ref_name} as a structure with the same key chains.")
  arg_flat = flatten(arg)
  check_same_keys(ref_flat, arg_flat, ref_name, arg_name)
  return arg_flat


def rebuild(ref: Any, flat: Flat) -> Any:
  """Packs ``flat`` back into the shape of ``ref``: a single leaf, or a nested dict/list."""
  if not is_structure(ref):
    return flat[""] if "" in flat else next(iter(flat.values()))
  if isinstance(ref, Mapping):
    return unflatten(flat)
  return tree.unflatten_as(ref, [flat[k] for k in flatten(ref)])
