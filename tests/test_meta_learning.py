"""reptile_step / fomaml_step / maml_step against the seed's examples and independent computations."""

import numpy as np
import pytest
import tensorflow as tf

import l2l

T, N, K, LR = 3, 4, 3, 0.1


def seed_cost(batch, v):
  return tf.reduce_mean(batch["x"]) / tf.reduce_mean(v["latent"])


def regression_cost(batch, v):
  """Mean squared error of a tiny tanh model; x: [tasks, N, 2], y: [tasks, N]."""
  hidden = tf.tanh(tf.einsum("tnd,d->tn", batch["x"], v["layer"]["w"]) + v["layer"]["b"])
  return tf.reduce_mean((v["latent"] * hidden - batch["y"]) ** 2)


def l1_cost(batch, v):
  hidden = tf.tanh(tf.einsum("tnd,d->tn", batch["x"], v["layer"]["w"]) + v["layer"]["b"])
  return tf.reduce_mean(tf.abs(v["latent"] * hidden - batch["y"]))


def batched_regression_cost(batch, v):
  """The same model with one set of variables per task (leading task axis), mean over tasks."""
  hidden = tf.tanh(tf.einsum("tnd,td->tn", batch["x"], v["layer"]["w"]) + v["layer"]["b"][:, None])
  return tf.reduce_mean((v["latent"][:, None] * hidden - batch["y"]) ** 2)


def make_problem(dtype=tf.float32, seed=0):
  rng = np.random.default_rng(seed)
  batch = {"x": tf.constant(rng.normal(size=(T, N, 2)), dtype),
           "y": tf.constant(rng.normal(size=(T, N)), dtype)}
  variables = {"layer": {"w": tf.Variable(tf.constant(rng.normal(size=2), dtype)),
                         "b": tf.Variable(tf.constant(0.3, dtype))},
               "latent": tf.Variable(tf.constant(1.5, dtype))}
  return batch, variables


def per_task(variables, tasks=T):
  """The variables repeated along a new leading task axis, for batched mode."""
  return tf.nest.map_structure(lambda v: tf.repeat(tf.convert_to_tensor(v)[None], tasks, 0),
                               variables)


def flat(tree):
  return {"/".join(p): np.asarray(v) for p, v in _paths(tree)}


def _paths(tree, prefix=()):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _paths(v, prefix + (k,))
  else:
    yield prefix, tree


def assert_tree_close(a, b, rtol=1e-6, atol=1e-7):
  fa, fb = flat(a), flat(b)
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_allclose(fa[k], fb[k], rtol=rtol, atol=atol, err_msg=k)


# --- Hand-written references (plain tapes over explicit lists of tensors) ----------------------


def _values(variables):
  return [tf.convert_to_tensor(variables["layer"]["w"]), tf.convert_to_tensor(variables["layer"]["b"]),
          tf.convert_to_tensor(variables["latent"])]


def _as_dict(w, b, latent):
  return {"layer": {"w": w, "b": b}, "latent": latent}


def _grad(cost_fn, batch, params):
  with tf.GradientTape() as tape:
    tape.watch(params)
    cost = cost_fn(batch, _as_dict(*params))
  return cost, tape.gradient(cost, params)


def hand_fomaml(batch, variables, inner_fn, outer_fn, average, in_fn=None, out_fn=None):
  """First-order MAML per task written as explicit loops; returns (cost, [dw, db, dlatent])."""
  total_cost, total_grads = 0.0, [0.0, 0.0, 0.0]
  for i in range(T):
    task = {k: v[i:i + 1] for k, v in batch.items()}
    b_in = in_fn(task) if in_fn else task
    b_out = out_fn(task) if out_fn else task
    params = _values(variables)
    costs, grads = [], []
    for _ in range(K):
      c_in, g_in = _grad(inner_fn, b_in, params)
      if outer_fn is None:
        costs.append(c_in), grads.append(g_in)
      else:
        c_out, g_out = _grad(outer_fn, b_out, params)
        costs.append(c_out), grads.append(g_out)
      params = [p - LR * g for p, g in zip(params, g_in)]
    c_fin, g_fin = _grad(outer_fn or inner_fn, b_out, params)
    if not average:
      costs, grads = [], []
    costs.append(c_fin), grads.append(g_fin)
    total_cost += sum(costs) / len(costs)
    total_grads = [t + sum(gs) / len(gs) for t, gs in zip(total_grads, zip(*grads))]
  return total_cost / T, [g / T for g in total_grads]


def unrolled_cost(params, batch, inner_fn, outer_fn, average=False, in_fn=None, out_fn=None):
  """The full (differentiable) meta cost of unbatched MAML at initial params."""
  total = 0.0
  for i in range(T):
    task = {k: v[i:i + 1] for k, v in batch.items()}
    b_in = in_fn(task) if in_fn else task
    b_out = out_fn(task) if out_fn else task
    p = list(params)
    costs = []
    for _ in range(K):
      c_in, g_in = _grad(inner_fn, b_in, p)
      if average:
        costs.append(c_in if outer_fn is None else (outer_fn)(b_out, _as_dict(*p)))
      p = [a - LR * g for a, g in zip(p, g_in)]
    costs.append((outer_fn or inner_fn)(b_out, _as_dict(*p)))
    total += sum(costs) / len(costs)
  return total / T


def central_differences(fn, params, eps=1e-6):
  grads = []
  for j, p in enumerate(params):
    p_np = np.array(p.numpy())
    g = np.zeros_like(p_np)
    for idx in np.ndindex(p_np.shape):
      plus, minus = p_np.copy(), p_np.copy()
      plus[idx] += eps
      minus[idx] -= eps
      f_plus = fn([tf.constant(plus) if k == j else q for k, q in enumerate(params)])
      f_minus = fn([tf.constant(minus) if k == j else q for k, q in enumerate(params)])
      g[idx] = (float(f_plus) - float(f_minus)) / (2 * eps)
    grads.append(g)
  return grads


# --- The seed's worked examples (000_*.txt) ------------------------------------------------------


def test_seed_reptile_example_1_batched():
  batch = {"x": tf.range(1, 3, dtype=tf.float32)}
  variables = {"latent": tf.Variable(tf.repeat(tf.constant([[1.0]]), 2, axis=0))}
  cost, grads = l2l.reptile_step(batch, seed_cost, variables, 5, 0.01, num_tasks=2)
  assert cost.shape == () and cost.dtype == tf.float32
  np.testing.assert_allclose(cost, np.float32(1.4485182), rtol=1e-7)
  assert grads["latent"].shape == (1,)
  np.testing.assert_allclose(grads["latent"], [np.float32(-139.9569855)], rtol=1e-6)


def test_seed_reptile_example_2_unbatched_first():
  batch = {"x": tf.range(1, 4, dtype=tf.float32)}
  variables = {"latent": tf.Variable([1.0, 2.0])}
  cost, grads, firsts = l2l.reptile_step(batch, seed_cost, variables, 4, 0.025, batched=False,
                                         num_tasks=2, return_inner_v="first")
  np.testing.assert_allclose(cost, np.float32(0.9880483), rtol=1e-6)
  np.testing.assert_allclose(grads["latent"], [-13.01766968, -13.01766968], rtol=1e-6)
  assert firsts["latent"].shape == (1, 2)
  np.testing.assert_allclose(firsts["latent"], [[1.02197957, 2.02197981]], rtol=1e-6)
  np.testing.assert_array_equal(variables["latent"].numpy(), [1.0, 2.0])  # Never modified.


# --- Independent first-order checks ---------------------------------------------------------------


@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize("outer", [None, l1_cost])
def test_fomaml_unbatched_matches_hand_written_loop(average, outer):
  batch, variables = make_problem()
  cost, grads = l2l.fomaml_step(batch, regression_cost, outer, variables, K, LR, batched=False,
                                average_across_steps=average)
  ref_cost, (dw, db, dlatent) = hand_fomaml(batch, variables, regression_cost, outer, average)
  np.testing.assert_allclose(cost, ref_cost, rtol=1e-6)
  assert_tree_close(grads, _as_dict(dw, db, dlatent))


def test_average_across_steps_branch_a_uses_inner_batch_then_outer_batch():
  batch, variables = make_problem()
  first_half = lambda b: {"x": b["x"][:, :2], "y": b["y"][:, :2]}
  second_half = lambda b: {"x": b["x"][:, 2:], "y": b["y"][:, 2:]}
  cost, grads = l2l.fomaml_step(batch, regression_cost, None, variables, K, LR, batched=False,
                                average_across_steps=True, inner_batch_fn=first_half,
                                outer_batch_fn=second_half)
  ref_cost, ref = hand_fomaml(batch, variables, regression_cost, None, True, first_half,
                              second_half)
  np.testing.assert_allclose(cost, ref_cost, rtol=1e-6)
  assert_tree_close(grads, _as_dict(*ref))


def test_reptile_is_mean_trajectory_gradient_over_learning_rate():
  batch, variables = make_problem(tf.float64)
  cost, grads = l2l.reptile_step(batch, regression_cost, variables, K, LR, batched=False)
  _, adapted_grads = hand_fomaml(batch, variables, regression_cost, None, True)
  assert_tree_close(grads, _as_dict(*[g / LR for g in adapted_grads]), rtol=1e-12)
  # Per task with SGD: [(theta_0 - theta_K)/lr + g_K] / ((K+1) lr).
  _, _, adapted = l2l.reptile_step(batch, regression_cost, variables, K, LR, batched=False,
                                   return_inner_v="all")
  expected = 0.0
  for i in range(T):
    task = {k: v[i:i + 1] for k, v in batch.items()}
    theta_k = [adapted["layer"]["w"][i], adapted["layer"]["b"][i], adapted["latent"][i]]
    _, g_k = _grad(regression_cost, task, theta_k)
    expected += np.asarray(((_values(variables)[2] - theta_k[2]) / LR + g_k[2]) / ((K + 1) * LR))
  np.testing.assert_allclose(grads["latent"], expected / T, rtol=1e-10)


# --- Second order against finite differences -----------------------------------------------------


@pytest.mark.parametrize("average", [False, True])
def test_maml_unbatched_matches_central_differences(average):
  batch, variables = make_problem(tf.float64, seed=1)
  cost, grads, rest = l2l.maml_step(batch, regression_cost, l1_cost, variables, K, LR,
                                    batched=False, average_across_steps=average)
  assert rest == ()
  fn = lambda p: unrolled_cost(p, batch, regression_cost, l1_cost, average)
  np.testing.assert_allclose(cost, fn(_values(variables)), rtol=1e-12)
  dw, db, dlatent = central_differences(fn, _values(variables))
  assert grads["layer"]["w"].shape == (2,) and grads["latent"].shape == ()
  assert_tree_close(grads, _as_dict(dw, db, dlatent), rtol=1e-6, atol=1e-9)


def test_maml_batched_matches_central_differences():
  batch, variables = make_problem(tf.float64, seed=2)
  stacked = per_task(variables)

  def meta_cost(params):  # Batched: inner gradients scaled by T, cost as the function returns it.
    p = list(params)
    for _ in range(K):
      _, g = _grad(batched_regression_cost, batch, p)
      p = [a - LR * T * gi for a, gi in zip(p, g)]
    return batched_regression_cost(batch, _as_dict(*p))

  cost, grads, _ = l2l.maml_step(batch, batched_regression_cost, None, stacked, K, LR)
  params = _values(stacked)
  np.testing.assert_allclose(cost, meta_cost(params), rtol=1e-12)
  fd = [g.sum(axis=0) for g in central_differences(meta_cost, params)]
  assert_tree_close(grads, _as_dict(*fd), rtol=1e-6, atol=1e-9)


# --- Batched vs unbatched ---------------------------------------------------------------------------


def test_batched_equals_unbatched_for_mean_over_task_costs():
  batch, variables = make_problem(tf.float64, seed=3)
  stacked = per_task(variables)
  for step, args in ((l2l.reptile_step, (regression_cost,)),
                     (l2l.fomaml_step, (regression_cost, None)),
                     (l2l.maml_step, (regression_cost, None))):
    batched_args = (batched_regression_cost,) + args[1:]
    unbatched = step(batch, *args, variables, K, LR, batched=False)
    batched = step(batch, *batched_args, stacked, K, LR, batched=True)
    np.testing.assert_allclose(batched[0], unbatched[0], rtol=1e-10)
    assert_tree_close(batched[1], unbatched[1], rtol=1e-9, atol=1e-12)


# --- Key chains, return_inner_v, stop_gradients, tf.function --------------------------------------


def test_inner_v_adapts_only_selected_leaves_and_outer_v_selects_gradients():
  batch, variables = make_problem()
  cost, grads, inner = l2l.fomaml_step(batch, regression_cost, None, variables, K, LR,
                                       batched=False, inner_v="latent", outer_v="layer",
                                       return_inner_v="all")
  assert set(flat(grads)) == {"layer/w", "layer/b"}
  np.testing.assert_array_equal(inner["layer"]["w"], np.repeat(variables["layer"]["w"].numpy()[None], T, 0))
  assert not np.allclose(inner["latent"], variables["latent"].numpy())
  # The complement selections give the same split.
  _, grads2, inner2 = l2l.fomaml_step(batch, regression_cost, None, variables, K, LR, batched=False,
                                      inner_v=["layer/w", "layer/b"], keep_inner_v=False,
                                      outer_v={"latent": True}, keep_outer_v=False,
                                      return_inner_v="all")
  assert_tree_close(grads, grads2)
  assert_tree_close(inner, inner2)


def test_per_task_inner_v_list():
  batch, variables = make_problem()
  *_, inner = l2l.fomaml_step(batch, regression_cost, None, variables, K, LR, batched=False,
                              inner_v=[["latent"], None, ["layer/b"]], return_inner_v="all")
  w0, b0, l0 = (v.numpy() for v in _values(variables))
  np.testing.assert_array_equal(inner["layer"]["w"][0], w0)
  assert inner["latent"][0] != l0
  assert not np.allclose(inner["layer"]["w"][1], w0)  # None: every leaf adapts.
  assert inner["latent"][2] == l0 and inner["layer"]["b"][2] != b0


def test_return_inner_v_shapes():
  batch, variables = make_problem()
  stacked = per_task(variables)
  for mode, lead in (("first", 1), ("all", T), (True, T)):
    _, _, un = l2l.reptile_step(batch, regression_cost, variables, K, LR, batched=False,
                                return_inner_v=mode)
    _, _, ba = l2l.reptile_step(batch, batched_regression_cost, stacked, K, LR,
                                return_inner_v=mode)
    _, _, rest = l2l.maml_step(batch, regression_cost, None, variables, K, LR, batched=False,
                               return_inner_v=mode)
    for tree in (un, ba, rest):
      assert tree["layer"]["w"].shape == (lead, 2) and tree["latent"].shape == (lead,)


def test_stop_gradients_does_not_change_values():
  batch, variables = make_problem()
  for step, args in ((l2l.reptile_step, (regression_cost,)),
                     (l2l.fomaml_step, (regression_cost, l1_cost)),
                     (l2l.maml_step, (regression_cost, l1_cost))):
    a = step(batch, *args, variables, K, LR, batched=False, stop_gradients=True)
    b = step(batch, *args, variables, K, LR, batched=False, stop_gradients=False)
    np.testing.assert_array_equal(a[0], b[0])
    assert_tree_close(a[1], b[1], rtol=0, atol=0)


def test_tf_function_matches_eager_and_traces_once():
  batch, variables = make_problem()
  traces = []

  @tf.function
  def step(batch, variables):
    traces.append(1)
    return l2l.maml_step(batch, regression_cost, l1_cost, variables, K, LR, batched=False,
                         average_across_steps=True)[:2]

  eager = l2l.maml_step(batch, regression_cost, l1_cost, variables, K, LR, batched=False,
                        average_across_steps=True)
  compiled = step(batch, variables)
  np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-6)
  assert_tree_close(compiled[1], eager[1], rtol=1e-5, atol=1e-6)
  other_batch, _ = make_problem(seed=5)
  step(other_batch, variables)
  assert len(traces) == 1


def test_lars_inner_step_and_unreached_leaves():
  batch = {"x": tf.constant([[1.0, 2.0], [3.0, 4.0]], tf.float64)}
  variables = {"w": tf.constant([0.5, -1.0], tf.float64), "unused": tf.constant(2.0, tf.float64)}
  cost_fn = lambda b, v: tf.reduce_sum((b["x"] * v["w"]) ** 2)
  _, grads, inner = l2l.fomaml_step(batch, cost_fn, None, variables, 2, 0.1, batched=False,
                                    inner_optimization_step=l2l.lars_update, return_inner_v="all")
  np.testing.assert_array_equal(grads["unused"], 0.0)
  for i in range(2):  # LARS by hand: w -= lr * |w| / |g| * g.
    w = np.array([0.5, -1.0])
    for _ in range(2):
      g = 2 * batch["x"].numpy()[i] ** 2 * w
      w = w - 0.1 * np.linalg.norm(w) / np.linalg.norm(g) * g
    np.testing.assert_allclose(inner["w"][i], w, rtol=1e-9)


def test_non_finite_inner_gradients_are_zeroed():
  batch = {"x": tf.ones([1, 1])}
  variables = {"a": tf.constant([0.0, 4.0]), "b": tf.constant([1.0])}
  cost_fn = lambda b, v: tf.reduce_sum(tf.sqrt(v["a"])) + tf.reduce_sum(v["b"] ** 2)
  _, grads, inner = l2l.fomaml_step(batch, cost_fn, None, variables, 1, 0.1, batched=False,
                                    return_inner_v="all")
  np.testing.assert_allclose(inner["a"], [[0.0, 4.0 - 0.1 * 0.25]], rtol=1e-6)
  assert np.all(np.isfinite(grads["a"])) and grads["a"][0] == 0.0


# --- Bad input --------------------------------------------------------------------------------------


def test_unknown_key_chain():
  batch, variables = make_problem()
  with pytest.raises(ValueError, match=r"inner_v: key chain 'layer/z' is not in the variables"):
    l2l.fomaml_step(batch, regression_cost, None, variables, K, LR, inner_v="layer/z")
  with pytest.raises(ValueError, match=r"outer_v: key chain 'nope' is not in the variables"):
    l2l.maml_step(batch, regression_cost, None, variables, K, LR, outer_v=["nope"])


def test_num_tasks_larger_than_batch():
  batch, variables = make_problem()
  with pytest.raises(ValueError, match=r"num_tasks=5 is larger than the batch"):
    l2l.reptile_step(batch, regression_cost, variables, K, LR, batched=False, num_tasks=5)


def test_invalid_return_inner_v():
  batch, variables = make_problem()
  with pytest.raises(ValueError, match=r"return_inner_v must be False, True, 'first' or 'all', got 'last'"):
    l2l.reptile_step(batch, regression_cost, variables, K, LR, return_inner_v="last")


def test_non_scalar_cost():
  batch, variables = make_problem()
  per_point = lambda b, v: (v["latent"] * b["y"]) ** 2
  with pytest.raises(ValueError, match=r"inner_cost_fn must return a scalar \(0-d\) cost, got shape \(1, 4\)"):
    l2l.fomaml_step(batch, per_point, None, variables, K, LR, batched=False)


def test_mismatched_structure_from_inner_step_and_learning_rate():
  batch, variables = make_problem()
  bad_step = lambda w, g, lr, stop_gradients=True: {"latent": w["latent"]}
  with pytest.raises(ValueError, match=r"\['layer/b', 'layer/w'\] of the adapted variables are missing"):
    l2l.reptile_step(batch, regression_cost, variables, K, LR, inner_optimization_step=bad_step)
  with pytest.raises(ValueError, match=r"inner_learning_rate has no entry for the adapted key chain"):
    l2l.reptile_step(batch, regression_cost, variables, K, {"latent": 0.1})


def test_mismatched_batch_leading_dimensions():
  _, variables = make_problem()
  batch = {"x": tf.zeros([3, 4, 2]), "y": tf.zeros([2, 4])}
  with pytest.raises(ValueError, match=r"different leading dimensions"):
    l2l.reptile_step(batch, regression_cost, variables, K, LR, batched=False)
