"""Speed and memory of one PES outer step against the same computation in JAX.

Setting (the core v2 issue's): K = 8 tasks of a 64-32-10 ReLU MLP on 8×8-downsampled MNIST
(embedded data, minibatches of 128), one antithetic pair per task (16 unrolls), truncation 20,
horizon 200, σ = 0.01, the "original" LSTM preset (coordinatewise LSTM 20-20, LogAndSign k = 5,
scale 0.01); one outer step is the library's ``FamilyEstimate.step``: 20 inner steps of all 16
problems, the PES estimate, one Adam step on the LSTM (``l2l.outer.OuterLearner``), the tasks'
state carried on (and reset at their horizons).

The reference is exactly that computation written in JAX here (``jax.jit`` of ``lax.scan`` with
``vmap``-ed losses and gradients and batched LSTM matmuls, the same per-task reset check, PES
accumulators and Adam). Before timing, both run one estimate from the same weights, task state,
noise and minibatches (TF's, handed to JAX) and must agree. Timed, each draws its own noise and
minibatches. The columns: ms per outer step (median of interleaved blocks), inner steps × tasks
per second (20 × 16 per step), the ratio to JAX in the same run, XLA compile seconds.

Memory: peak bytes of TensorFlow's CPU allocator during one outer step (after a warm-up), PES and
TBPTT (K = 8 tasks, one unroll each) at truncation 20 / 200 / 2000; TBPTT keeps every step's
activations for the backward pass, so its memory grows with the truncation while PES's does not.

Run: ``.venv/bin/python bench/estimators.py`` (writes bench/results/estimators.json; needs the
bench extra for the JAX row: ``pip install -e ".[bench]"``).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import print_table, time_interleaved, write_results  # noqa: E402
from l2l import estimators  # noqa: E402
from l2l import meta  # noqa: E402
from l2l import outer  # noqa: E402
from l2l import tasks  # noqa: E402
from l2l import routing  # noqa: E402
from problems import families  # noqa: E402

NUM_TASKS, TRUNCATION, HORIZON, SIGMA, LR, BATCH = 8, 20, 200, 0.01, 1e-4, 128
HIDDEN, K, SCALE = 20, 5.0, 0.01


def family() -> families.MLPClassifier:
  return families.mnist((32,), "relu", batch_size=BATCH, image_size=8, init_stddev=None)


def library_run(estimator: str = "pes", truncation: int = TRUNCATION, jit: bool = True):
  """(the library's outer step as a callable, its FamilyEstimate, the MLP family)."""
  tf.random.set_seed(0)
  mlp = family()
  optimizer = meta.MetaOptimizer.from_preset("original")
  config = estimators.EstimatorConfig(estimator, NUM_TASKS, 1, SIGMA, truncation,
                                      tasks.ConstantHorizon(HORIZON))
  groups = routing.NetGroups(optimizer.nets, [("coordinatewise", [0, 1, 2, 3])])
  groups.build(mlp.param_shapes())
  learner = outer.OuterLearner(groups.theta(), LR)
  run = estimators.FamilyEstimate(mlp, optimizer.nets, None, config, learner, tasks.as_seed(1),
                                  jit)
  counter = [0]

  def step():
    counter[0] += 1
    return run.step(tasks.fold(tasks.as_seed(2), counter[0]))[0].numpy()

  return step, run, mlp


def jax_reference(run: estimators.FamilyEstimate, mlp: families.MLPClassifier):
  """(timed step, check(noise, images, labels) -> (losses, grads)) in JAX, from ``run``'s current
  weights and task state; None without jax."""
  try:
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  eps = np.finfo(np.float32).eps
  images = jnp.asarray(mlp._images.numpy())  # pylint: disable=protected-access
  labels = jnp.asarray(mlp._labels.numpy())  # pylint: disable=protected-access
  shapes = [tuple(s) for s in mlp.param_shapes()]
  sizes = [int(np.prod(s)) for s in shapes]
  pairs = NUM_TASKS
  problems = 2 * pairs

  def mlp_loss(params, x, y):
    for i in range(0, len(params), 2):
      x = x @ params[i] + params[i + 1]
      if i + 2 < len(params):
        x = jax.nn.relu(x)
    log_probs = jax.nn.log_softmax(x)
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], 1))

  def lstm_update(theta, grads, state):
    """One problem: theta = [w0, b0, w1, b1, w_out, b_out], grads flat [N]."""
    g = grads[None, :]
    x = jnp.concatenate([jnp.maximum(jnp.log(jnp.abs(g) + eps) / K, -1.0),
                         jnp.clip(g * np.exp(K), -1.0, 1.0)], 0)
    next_state = []
    for layer in range(2):
      h, c = state[layer]
      gates = theta[2 * layer] @ jnp.concatenate([x, h], 0) + theta[2 * layer + 1]
      sig = jax.nn.sigmoid(gates[:3 * HIDDEN])
      c = sig[HIDDEN:2 * HIDDEN] * c + sig[:HIDDEN] * jnp.tanh(gates[3 * HIDDEN:])
      x = sig[2 * HIDDEN:] * jnp.tanh(c)
      next_state.append((x, c))
    return ((theta[4] @ x + theta[5]) * SCALE)[0], tuple(next_state)

  def flatten(params):
    return jnp.concatenate([p.reshape(-1) for p in params])

  def unflatten(flat):
    return [part.reshape(s) for part, s in zip(jnp.split(flat, np.cumsum(sizes)[:-1]), shapes)]

  def init_params(key):
    keys = jax.random.split(key, len(shapes))
    return [jax.random.normal(k, s) / np.sqrt(s[0]) if len(s) == 2 else jnp.zeros(s)
            for k, s in zip(keys, shapes)]

  zero_state = tuple((jnp.zeros([HIDDEN, sum(sizes)]),) * 2 for _ in range(2))

  def truncation(thetas, carry, batches):
    """20 inner steps of every problem; batches(t, step) -> (x [B, 128, 64], y [B, 128])."""
    def body(carry, t):
      params, lstm, step, key = carry
      x, y = batches(t, step)
      losses, grads = jax.vmap(jax.value_and_grad(mlp_loss))(params, x, y)
      updates, lstm = jax.vmap(lstm_update)(thetas, jax.vmap(flatten)(grads), lstm)
      params = jax.vmap(lambda p, u: [a + b for a, b in zip(p, unflatten(u))])(params, updates)
      step = step + 1
      diverged = jnp.any(~jnp.isfinite(losses).reshape(2, NUM_TASKS), 0)
      done = (step >= HORIZON) | jnp.tile(diverged, 2)
      key, sub = jax.random.split(key)

      def reset(operand):
        params, lstm = operand
        fresh = jax.vmap(init_params)(jax.random.split(sub, NUM_TASKS))
        fresh = [jnp.tile(f, (2,) + (1,) * (f.ndim - 1)) for f in fresh]
        pick = lambda new, old: jnp.where(done.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)
        fresh_lstm = jax.tree.map(lambda z: jnp.broadcast_to(z, (problems,) + z.shape), zero_state)
        return ([pick(n, o) for n, o in zip(fresh, params)], jax.tree.map(pick, fresh_lstm, lstm))

      params, lstm = jax.lax.cond(jnp.any(done), reset, lambda o: o, (params, lstm))
      return (params, lstm, jnp.where(done, 0, step), key), (losses, done)

    (params, lstm, step, key), (losses, done) = jax.lax.scan(body, carry, jnp.arange(TRUNCATION))
    return losses.mean(0), (params, lstm, step, key), done.any(0)

  def estimate(theta, carry, accumulated, noise, batches):
    accumulated = [a + n for a, n in zip(accumulated, noise)]
    thetas = [jnp.concatenate([w + n, w - n], 0) for w, n in zip(theta, noise)]
    losses, carry, reset = truncation(thetas, carry, batches)
    difference = losses[:pairs] - losses[pairs:]
    grads = [jnp.tensordot(difference, a, 1) / (2 * SIGMA ** 2 * pairs) for a in accumulated]
    keep = 1.0 - reset[:pairs].astype(jnp.float32)
    accumulated = [a * keep.reshape((-1,) + (1,) * (a.ndim - 1)) for a in accumulated]
    return losses, grads, carry, accumulated

  def sampled_batches(key):
    def batches(t, step):
      indices = jax.random.randint(jax.random.fold_in(key, t), (problems, BATCH), 0,
                                   labels.shape[0])
      return images[indices], labels[indices]
    return batches

  @jax.jit
  def outer_step(theta, adam, carry, accumulated, key):
    key, noise_key, data_key = jax.random.split(key, 3)
    noise = [SIGMA * jax.random.normal(k, (pairs,) + w.shape)
             for k, w in zip(jax.random.split(noise_key, len(theta)), theta)]
    losses, grads, carry, accumulated = estimate(theta, carry, accumulated, noise,
                                                 sampled_batches(data_key))
    meta_loss = losses.mean()
    norm = jnp.sqrt(sum(jnp.sum(g * g) for g in grads))
    finite = jnp.isfinite(meta_loss) & jnp.isfinite(norm)
    m, v, t = adam
    t = t + 1
    m = [0.9 * a + 0.1 * g for a, g in zip(m, grads)]
    v = [0.999 * a + 0.001 * g * g for a, g in zip(v, grads)]
    step_size = LR * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
    new_theta = [w - step_size * a / (jnp.sqrt(b) + 1e-8) for w, a, b in zip(theta, m, v)]
    theta = [jnp.where(finite, n, w) for n, w in zip(new_theta, theta)]
    return meta_loss, theta, (m, v, t), carry, accumulated, key

  state = run._current()  # pylint: disable=protected-access
  theta = [jnp.asarray(w.numpy()) for w in run.groups.theta()]
  task = state.unroll_state
  lstm = tuple((jnp.asarray(h.numpy()), jnp.asarray(c.numpy())) for h, c in task.opt_state[0])
  carry = ([jnp.asarray(p.numpy()) for p in task.params], lstm, jnp.asarray(task.step.numpy()),
           jax.random.PRNGKey(0))
  accumulated = [jnp.asarray(a.numpy()) for a in state.accumulated]
  zeros = [jnp.zeros_like(w) for w in theta]
  loop = [(theta, (zeros, zeros, jnp.zeros([])), carry, accumulated, jax.random.PRNGKey(1))]

  def step():
    meta_loss, *loop[0] = outer_step(*loop[0])
    return meta_loss.block_until_ready()

  @jax.jit
  def check(noise, xs, ys):
    batches = lambda t, step: (xs[t], ys[t])
    losses, grads, _, _ = estimate(theta, carry, accumulated, noise, batches)
    return losses, grads

  step.compile = lambda: outer_step.lower(*loop[0]).compile()
  return step, check


def check_same_numbers(run: estimators.FamilyEstimate, mlp, check) -> dict:
  """One estimate from the same state, noise and minibatches: TF's and JAX's per-problem losses
  and PES gradients; returns the largest relative differences."""
  state = run._current()  # pylint: disable=protected-access
  theta = run.groups.theta()
  noise_seed = tasks.as_seed(99)
  _, grads, _ = run.estimator.estimate(theta, state, noise_seed)
  noise = estimators.antithetic_noise(theta, NUM_TASKS, SIGMA, noise_seed)
  thetas = estimators.perturb(theta, noise)
  result = run.unroll(thetas, state.unroll_state, TRUNCATION)
  task = state.unroll_state
  xs, ys = [], []
  for t in range(TRUNCATION):
    batch = [mlp.batch((), tasks.fold(task.task_seed[b], 3, task.step[b] + t))
             for b in range(2 * NUM_TASKS)]
    xs.append(np.stack([x.numpy() for x, _ in batch]))
    ys.append(np.stack([y.numpy() for _, y in batch]))
  losses, jax_grads = check([n.numpy() for n in noise], np.stack(xs), np.stack(ys))
  loss_error = float(np.max(np.abs(np.asarray(losses) - result.losses.numpy())
                            / np.abs(result.losses.numpy())))
  grad_error = max(float(np.max(np.abs(np.asarray(j) - g.numpy())) / np.max(np.abs(g.numpy())))
                   for j, g in zip(jax_grads, grads))
  assert loss_error < 1e-4 and grad_error < 2e-2, (loss_error, grad_error)
  return {"max_rel_loss_difference": loss_error, "max_rel_grad_difference": grad_error}


def peak_memory_mib(estimator: str, truncation: int) -> float:
  step, _, _ = library_run(estimator, truncation)
  step()
  tf.config.experimental.reset_memory_stats("CPU:0")
  resting = tf.config.experimental.get_memory_info("CPU:0")["current"]
  step()
  return (tf.config.experimental.get_memory_info("CPU:0")["peak"] - resting) / 2**20


def main():
  step, run, mlp = library_run()
  fns = {"l2l PES, jit_compile": step}
  compile_s = {}
  start = time.perf_counter()
  step()
  compile_s["l2l PES, jit_compile"] = time.perf_counter() - start
  reference = jax_reference(run, mlp)
  agreement = None
  if reference is None:
    print("jax is not installed: no JAX row (pip install -e '.[bench]').")
  else:
    jax_step, check = reference
    agreement = check_same_numbers(run, mlp, check)
    print(f"same numbers: {agreement}")
    start = time.perf_counter()
    jax_step.compile()
    jax_step()
    compile_s["JAX (reference)"] = time.perf_counter() - start
    fns["JAX (reference)"] = jax_step
  graph_step, _, _ = library_run(jit=False)
  start = time.perf_counter()
  graph_step()
  compile_s["l2l PES, graph"] = time.perf_counter() - start
  fns["l2l PES, graph"] = graph_step
  baseline = "JAX (reference)" if reference else None
  timings = time_interleaved(fns, repeats=9, number=5, baseline=baseline)
  inner = TRUNCATION * 2 * NUM_TASKS
  rows = [{"outer step": name, "ms": 1e3 * t["median_s"], "min_ms": 1e3 * t["min_s"],
           "inner_steps_x_tasks_per_s": inner / t["median_s"],
           "vs_jax": t["ratio"] if baseline else None, "first_call_s": compile_s[name]}
          for name, t in timings.items()]
  print_table(rows, ["outer step", "ms", "min_ms", "inner_steps_x_tasks_per_s", "vs_jax",
                     "first_call_s"])
  memory = []
  for estimator in ("pes", "tbptt"):
    for truncation in (20, 200, 2000):
      if estimator == "tbptt" and truncation == 2000:
        memory.append({"estimator": estimator, "truncation": truncation, "peak_MiB": None})
        continue  # Linear growth: ≈ 10× the 200-step peak, more than this machine should hold.
      memory.append({"estimator": estimator, "truncation": truncation,
                     "peak_MiB": peak_memory_mib(estimator, truncation)})
  print()
  print_table(memory, ["estimator", "truncation", "peak_MiB"])
  path = write_results(
      "estimators", rows, memory=memory, agreement=agreement, target_vs_jax=1.0,
      setting=f"PES, {NUM_TASKS} tasks x 1 antithetic pair, 64-32-10 ReLU MLP on 8x8 MNIST, "
              f"batch {BATCH}, truncation {TRUNCATION}, horizon {HORIZON}, original LSTM preset; "
              "median of 9 interleaved blocks of 5 outer steps")
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
