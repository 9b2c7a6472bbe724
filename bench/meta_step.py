"""Speed and memory of one meta-iteration of the MetaOptimizer on the quadratic.

Setting: quadratic 128 × 10 (uniform W, y), the "original" preset (coordinatewise LSTM 20-20,
LogAndSign k = 5, scale 0.01), unroll 20, first-order meta-gradients unless said otherwise. One
meta-iteration is what ``train.py`` runs per unroll: ``step()`` (unroll, meta-gradient, one Adam
step on the net) and ``update()`` (carry the unroll's end over).

Three references compute the same numbers from the same weights (checked before timing):

- "JAX lax.scan + remat" (when ``jax`` is installed: ``pip install -e ".[bench]"``, as ``make bench``
  does): the carefully written JAX version the target is set against (≈ 13 ms in the design notes'
  measurement): feature-major LSTM, ``lax.scan`` over ``jax.checkpoint``-ed steps, the whole
  meta-iteration (unroll, meta-gradient, Adam) in one ``jax.jit``;
- "hand-fused TF": the usual fast plain-TF form, an LSTM in ``[N, features]`` layout with one matmul
  per layer on ``[x, h]`` (the issue's "best plain-TF version", ≈ 15 ms on its reference machine),
  one ``tf.function`` with the unroll in a ``tf.while_loop``;
- "Sonnet 2 usual": ``snt.DeepRNN`` of ``snt.LSTM`` and ``snt.Linear`` (≈ 17 ms there), likewise.

The target is to match or beat the JAX version. This machine's speed drifts from day to day (the
references' absolute times vary 2× between sessions), so compare within one run: the column
``vs_jax`` is the median over interleaved blocks of l2l's time over the JAX version's.
TensorFlow runs on one intra-op thread, as train.py runs the quadratic
(``problems.intra_op_threads``: its kernels are too small to share out over a thread pool). Trace
time is Python tracing into a graph; the first call adds XLA compilation where jit_compile.
Memory: the peak bytes of TensorFlow's CPU allocator during one meta-iteration (after a warm-up
call), at unroll 20 / 100 / 400.

Run: ``.venv/bin/python bench/meta_step.py`` (writes bench/results/meta_step.json).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.
import problems  # noqa: E402

cli.set_intra_op_threads(problems.intra_op_threads("quadratic"))  # As train.py runs it.

import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402

import l2l  # noqa: E402
from bench.common import median_ratio, print_table, time_interleaved, write_results  # noqa: E402
from l2l import preprocess  # noqa: E402
from problems import quadratic  # noqa: E402

BATCH, DIMS, UNROLL, LR = 128, 10, 20, 1e-4
JAX = "JAX lax.scan + remat (reference)"


def library_step(unroll: int = UNROLL, second_derivatives: bool = False, jit: bool = True):
  """(meta-iteration as a tf.function, its MetaStep, the net) for a fresh problem and optimizer."""
  optimizer = l2l.MetaOptimizer.from_preset("original")
  ops = optimizer.meta_minimize(quadratic.quadratic(BATCH, DIMS), unroll, LR,
                                second_derivatives=second_derivatives)
  step = tf.function(lambda: (ops.step(), ops.update())[0], jit_compile=jit)
  return step, ops, optimizer.nets["coordinatewise"]


def _reference_step(ops: l2l.MetaStep, weights: list[tf.Variable], net_step):
  """The meta-iteration written out by hand around ``net_step(gradients [N, 1], state)``."""
  w, y = ops.meta_loss.constants
  x_var = tf.Variable(ops.x[0])
  state_vars = [tf.Variable(tf.zeros([BATCH * DIMS, 20])) for _ in range(4)]
  optimizer = snt.optimizers.Adam(LR)

  def loss_fn(x):
    return tf.reduce_mean(tf.reduce_sum(tf.square(tf.reduce_sum(w * x[:, None, :], -1) - y), 1))

  def body(t, x, state, total):
    with tf.GradientTape() as tape:
      tape.watch(x)
      fx = loss_fn(x)
    update, state = net_step(tf.reshape(tf.stop_gradient(tape.gradient(fx, x)), [-1, 1]), state)
    return t + 1, x + tf.reshape(update, x.shape), state, total + fx

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      _, x, state, total = tf.while_loop(
          lambda t, *_: t < UNROLL, body,
          (0, x_var.read_value(), [v.read_value() for v in state_vars], 0.0),
          maximum_iterations=UNROLL)
      loss = total + loss_fn(x)
    optimizer.apply(tape.gradient(loss, weights), weights)
    x_var.assign(x)
    for var, value in zip(state_vars, state):
      var.assign(value)
    return loss

  return step


def hand_fused_step(ops: l2l.MetaStep, net: l2l.networks.CoordinateWiseDeepLSTM):
  """[N, features] LSTM, one matmul per layer, gates (i, f, o | g), the net's weights copied."""
  w = [tf.Variable(tf.transpose(v)) for v in net.core.w]
  b = [tf.Variable(tf.transpose(v)) for v in net.core.b]
  w_out, b_out = tf.Variable(tf.transpose(net.w)), tf.Variable(tf.transpose(net.b))
  log_and_sign = preprocess.LogAndSign(5)

  def net_step(g, state):
    x, next_state = log_and_sign(g), []
    for i in range(2):
      h, c = state[2 * i:2 * i + 2]
      gates = tf.matmul(tf.concat([x, h], 1), w[i]) + b[i]
      sigmoid_gates, cell_gate = tf.split(gates, [60, 20], 1)
      in_gate, forget_gate, out_gate = tf.split(tf.sigmoid(sigmoid_gates), 3, 1)
      c = forget_gate * c + in_gate * tf.tanh(cell_gate)
      x = out_gate * tf.tanh(c)
      next_state += [x, c]
    return (tf.matmul(x, w_out) + b_out) * 0.01, next_state

  return _reference_step(ops, w + b + [w_out, b_out], net_step)


def sonnet_step(ops: l2l.MetaStep, net: l2l.networks.CoordinateWiseDeepLSTM):
  """``snt.DeepRNN`` of ``snt.LSTM`` + ``snt.Linear``, written the usual way, the net's weights."""
  core = snt.DeepRNN([snt.LSTM(20), snt.LSTM(20)])
  linear = snt.Linear(1)
  log_and_sign = preprocess.LogAndSign(5)
  core(tf.zeros([1, 2]), core.initial_state(1))
  linear(tf.zeros([1, 20]))
  for lstm, w, b in zip(core.submodules, net.core.w, net.core.b):
    i, f, o, g = tf.split(tf.transpose(w), 4, 1)
    weights = tf.concat([i, f, g, o], 1)  # Sonnet's gate order.
    inputs = lstm.input_to_hidden.shape[0]
    lstm.input_to_hidden.assign(weights[:inputs])
    lstm.hidden_to_hidden.assign(weights[inputs:])
    i, f, o, g = tf.split(b[:, 0], 4)
    lstm.b.assign(tf.concat([i, f, g, o], 0))
  linear.w.assign(tf.transpose(net.w))
  linear.b.assign(net.b[:, 0])

  def net_step(g, state):
    lstm_state = (snt.LSTMState(state[0], state[1]), snt.LSTMState(state[2], state[3]))
    out, (s1, s2) = core(log_and_sign(g), lstm_state)
    return linear(out) * 0.01, [s1.hidden, s1.cell, s2.hidden, s2.cell]

  return _reference_step(ops, list(core.trainable_variables + linear.trainable_variables),
                         net_step)


def jax_step(ops: l2l.MetaStep, net: l2l.networks.CoordinateWiseDeepLSTM):
  """The meta-iteration in JAX from the same weights, problem and start (None without jax)."""
  try:
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  w, y = (jnp.asarray(v.numpy()) for v in ops.meta_loss.constants)
  hidden, k, eps = 20, 5.0, np.finfo(np.float32).eps

  def loss_fn(x):
    return jnp.mean(jnp.sum(jnp.square(jnp.sum(w * x[:, None, :], -1) - y), 1))

  def meta_loss(params, x, state):
    @jax.checkpoint
    def body(carry, _):
      x, state = carry
      fx, g = jax.value_and_grad(loss_fn)(x)
      g = jax.lax.stop_gradient(g).reshape(1, -1)
      features = jnp.concatenate([jnp.maximum(jnp.log(jnp.abs(g) + eps) / k, -1.0),
                                  jnp.clip(g * np.exp(k), -1.0, 1.0)], 0)
      next_state = []
      for layer, (h, c) in enumerate(state):
        gates = params["w"][layer] @ jnp.concatenate([features, h], 0) + params["b"][layer]
        sigmoid_gates = jax.nn.sigmoid(gates[:3 * hidden])
        c = sigmoid_gates[hidden:2 * hidden] * c + sigmoid_gates[:hidden] * jnp.tanh(
            gates[3 * hidden:])
        features = sigmoid_gates[2 * hidden:] * jnp.tanh(c)
        next_state.append((features, c))
      update = (params["w_out"] @ features + params["b_out"]) * 0.01
      return (x + update.reshape(x.shape), tuple(next_state)), fx

    (x, state), fxs = jax.lax.scan(body, (x, state), None, length=UNROLL)
    return jnp.sum(fxs) + loss_fn(x), (x, state)

  @jax.jit
  def iteration(carry):
    params, m, v, t, x, state = carry
    (loss, (x, state)), grads = jax.value_and_grad(meta_loss, has_aux=True)(params, x, state)
    t = t + 1
    m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
    v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
    step_size = LR * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
    params = jax.tree.map(lambda p, m, v: p - step_size * m / (jnp.sqrt(v) + 1e-8), params, m, v)
    return loss, (params, m, v, t, x, state)

  params = {"w": [jnp.asarray(v.numpy()) for v in net.core.w],
            "b": [jnp.asarray(v.numpy()) for v in net.core.b],
            "w_out": jnp.asarray(net.w.numpy()), "b_out": jnp.asarray(net.b.numpy())}
  zeros = jax.tree.map(jnp.zeros_like, params)
  rows = BATCH * DIMS
  carry = [(params, zeros, zeros, jnp.zeros([]), jnp.asarray(ops.x[0].numpy()),
            tuple((jnp.zeros([hidden, rows]), jnp.zeros([hidden, rows])) for _ in range(2)))]

  def step():
    loss, carry[0] = iteration(carry[0])
    return loss.block_until_ready()

  step.get_concrete_function = lambda: iteration.lower(carry[0])
  return step


def first_call(fn) -> tuple[float, float, float]:
  """(seconds to trace, seconds of the first call: XLA compile where jit and one run, its result)."""
  start = time.perf_counter()
  fn.get_concrete_function()
  traced = time.perf_counter()
  result = float(fn())
  return traced - start, time.perf_counter() - traced, result


def peak_memory_bytes(unroll: int, jit: bool) -> int:
  """Peak allocator bytes above the resting level during one meta-iteration (after a warm-up)."""
  fn, _, _ = library_step(unroll, jit=jit)
  fn()
  tf.config.experimental.reset_memory_stats("CPU:0")
  resting = tf.config.experimental.get_memory_info("CPU:0")["current"]
  fn()
  return tf.config.experimental.get_memory_info("CPU:0")["peak"] - resting


def main():
  tf.random.set_seed(0)
  step, ops, net = library_step()
  fns = {"l2l, jit_compile": step, "hand-fused TF (reference)": hand_fused_step(ops, net),
         "Sonnet 2 usual (reference)": sonnet_step(ops, net)}
  jax_fn = jax_step(ops, net)  # Built before any step runs: the same start as the others.
  if jax_fn is None:
    print("jax is not installed: no JAX row (pip install -e '.[bench]').")
  else:
    fns[JAX] = jax_fn
  first = {name: first_call(fn) for name, fn in fns.items()}
  losses = [loss for _, _, loss in first.values()]
  np.testing.assert_allclose(losses, losses[0], rtol=1e-4)  # The same computation.
  for name, second, jit in (("l2l, graph", False, False), ("l2l 2nd derivs, jit_compile", True, True),
                            ("l2l 2nd derivs, graph", True, False)):
    fns[name] = library_step(second_derivatives=second, jit=jit)[0]
    first[name] = first_call(fns[name])
  timings = time_interleaved(fns, repeats=15, number=10, baseline="hand-fused TF (reference)")
  rows = [{"meta-iteration": name, "ms": 1e3 * t["median_s"], "min_ms": 1e3 * t["min_s"],
           "vs_hand_fused": t["ratio"],
           "vs_jax": median_ratio(t["block_s"], timings[JAX]["block_s"]) if JAX in fns else None,
           "trace_s": first[name][0], "first_call_s": first[name][1]}
          for name, t in timings.items()]
  print_table(rows, ["meta-iteration", "ms", "min_ms", "vs_hand_fused", "vs_jax", "trace_s",
                     "first_call_s"])
  memory = [{"unroll": unroll, "jit_compile": jit, "peak_MiB": peak_memory_bytes(unroll, jit) / 2**20}
            for unroll in (20, 100, 400) for jit in (True, False)]
  print()
  print_table(memory, ["unroll", "jit_compile", "peak_MiB"])
  path = write_results(
      "meta_step", rows, memory=memory, target_vs_jax=1.0,
      intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
      setting=f"quadratic {BATCH}x{DIMS}, original preset (LSTM 20-20, LogAndSign k=5, scale 0.01), "
              f"unroll {UNROLL}; median of 15 interleaved blocks of 10 meta-iterations")
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
