"""Sine-wave meta-learning: speed of the compiled training loop and few-shot quality.

Reptile as the demo does it (``variant="seed"``: 5 minibatch SGD steps of 0.02 over the 50 points,
then θ ← θ + ε(φ − θ), ε from 0.1 annealed to 0, 30 000 iterations of one task) over 5 seeds;
Reptile through ``reptile_step`` and FOMAML / MAML through ``fomaml_step`` / ``maml_step`` (10
points, 5 full-batch steps) with their outer step size picked from a grid on 100 validation tasks
(seed 2). Every row is then evaluated on the same 200 held-out tasks (seed 1): mean and median MSE
over the 50 points after k SGD steps of 0.02 on 10 points.

Speed: iterations per second of the training loop alone (the whole run is one compiled XLA call;
compilation is reported separately), the same in train.py's default calls of 1 000 iterations, and
the same loop driven from Python one iteration per call. TensorFlow runs on one intra-op thread, as
train.py runs this problem (``problems.intra_op_threads``).
When ``jax`` is installed (``pip install -e ".[bench]"``, as ``make bench`` does), the demo loop is
also written in JAX, one ``jax.jit`` of a ``lax.fori_loop`` over the same tasks from the same
initial weights, and timed in the same run: the like-for-like reference for the speed target, whose
absolute figure was measured on a faster day of this machine. The same JAX loop is timed again in a
child process with XLA's YNNPACK matmul kernels switched off (``vs_jax_without_ynnpack`` in the
summary): jaxlib's newer XLA runs ten of the loop's dots through them, TensorFlow's XLA none, and
the two ratios show how much of the difference is those kernels. When ``torch`` is installed (the
bench extra pins the CPU build 2.13.0), the demo's own PyTorch loop runs as written for every seed:
its speed is the "seed loop" of the speed-up, and its final weights are compared with ours. The
seed variant is also evaluated on 2 000 held-out tasks (seed 1), a figure less dependent on the
draw of 200.

Run: ``.venv/bin/python bench/sinusoid.py`` (writes bench/results/sinusoid.json).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.
import problems  # noqa: E402

cli.set_intra_op_threads(problems.intra_op_threads("sinusoid"))  # As train.py runs it.

import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.common import print_table, write_results  # noqa: E402
from problems import sinusoid_training  # noqa: E402
from problems import sinusoid  # noqa: E402

ITERATIONS, INNER_STEPS, INNER_LR = 30000, 5, 0.02
SEEDS = (0, 1, 2, 3, 4)
OUTER_GRID = (0.1, 0.03, 0.01, 0.003, 0.001)
ADAPT_STEPS = [0, 1, 8, 32]
TARGET_IT_PER_S, TARGET_MSE_32 = 40000, 0.13


def train(algorithm: str, variant: str, outer_lr: float, seed: int, chunk: int = ITERATIONS):
  return sinusoid_training.train_sinusoid(algorithm, ITERATIONS, 1, INNER_STEPS, INNER_LR, outer_lr,
                                       seed, logging_period=chunk, variant=variant)


def evaluate(params, num_tasks: int = 200, seed: int = 1) -> dict:
  return sinusoid_training.evaluate_sinusoid(params, num_tasks, ADAPT_STEPS, INNER_LR, seed)["mse"]


def row(name: str, outer_lr: float, seed: int, result, mse: dict) -> dict:
  out = {"run": name, "outer_lr": outer_lr, "seed": seed,
         "it_per_s": result.iterations_per_second, "compile_s": result.compile_seconds}
  for k in ADAPT_STEPS:
    out[f"mse_{k}"] = mse[str(k)]["mean"]
  out["median_mse_32"] = mse["32"]["median"]
  return out


def tuned(algorithm: str, variant: str) -> tuple[float, object]:
  """The outer step size of the grid with the lowest 8-step MSE on validation tasks."""
  best = None
  for outer_lr in OUTER_GRID:
    try:
      result = train(algorithm, variant, outer_lr, seed=0)
    except FloatingPointError:
      continue
    score = evaluate(result.params, num_tasks=100, seed=2)["8"]["mean"]
    if np.isfinite(score) and (best is None or score < best[0]):
      best = (score, outer_lr, result)
  return best[1], best[2]


def jax_demo_loop(seed: int):
  """The demo's Reptile loop in JAX: (result with it/s and params, or None without jax)."""
  try:
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  tasks = sinusoid_training.draw_tasks(seed, ITERATIONS, 1)
  amplitude, phase, order = tasks["amplitude"][:, 0], tasks["phase"][:, 0], tasks["order"][:, 0]
  initial = sinusoid.init_params(seed)
  names = sorted(initial)
  params = [(jnp.asarray(initial[n]["w"].numpy()), jnp.asarray(initial[n]["b"].numpy()))
            for n in names]
  points = sinusoid.NUM_TRAIN_POINTS

  def mse(params, x, y):
    h = x
    for i, (w, b) in enumerate(params):
      h = h @ w + b
      h = jnp.tanh(h) if i < len(params) - 1 else h
    return jnp.mean(jnp.square(h - y))

  @jax.jit
  def run(params, amplitude, phase, order):
    x_all = jnp.asarray(sinusoid.X_ALL)

    def iteration(i, params):
      x = x_all[order[i]]
      y = amplitude[i] * jnp.sin(x + phase[i])
      adapted = params
      for step in range(INNER_STEPS):
        start = (step % (len(sinusoid.X_ALL) // points)) * points
        grads = jax.grad(mse)(adapted, x[start:start + points], y[start:start + points])
        adapted = jax.tree.map(lambda p, g: p - INNER_LR * g, adapted, grads)
      step_size = 0.1 * (1.0 - i / ITERATIONS)
      return jax.tree.map(lambda p, q: p + step_size * (q - p), params, adapted)

    return jax.lax.fori_loop(0, ITERATIONS, iteration, params)

  start = time.perf_counter()
  compiled = run.lower(params, amplitude, phase, order).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  params = jax.block_until_ready(compiled(params, amplitude, phase, order))
  seconds = time.perf_counter() - start
  return _result(params, ITERATIONS / seconds, compile_s)


def jax_demo_loop_without_ynnpack(seed: int) -> float | None:
  """Iterations per second of ``jax_demo_loop(seed)`` with XLA's YNNPACK matmul kernels switched
  off (None without jax). The same XLA program otherwise; it runs in a child process because XLA
  reads its flags once per process. TensorFlow 2.21's XLA puts none in this loop (forced on, they
  slow it down), so this is the reference on equal matmul kernels."""
  code = (f"from bench import sinusoid; result = sinusoid.jax_demo_loop({seed}); "
          "print(result and result.iterations_per_second)")
  env = {**os.environ, "XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=True)
  value = out.stdout.split()[-1]
  return None if value == "None" else float(value)


def torch_demo_loop(seed: int):
  """The demo's PyTorch loop as written (training part, no plotting): (result with it/s and
  params, or None without torch). Its weights after 30 000 iterations are compared with ours."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  from copy import deepcopy  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(seed)
  torch.manual_seed(seed)
  x_all = np.linspace(-5, 5, 50)[:, None]
  points = sinusoid.NUM_TRAIN_POINTS

  def gen_task():
    phase = rng.uniform(low=0, high=2 * np.pi)
    amplitude = rng.uniform(0.1, 5)
    return lambda x: np.sin(x + phase) * amplitude

  model = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                              torch.nn.Tanh(), torch.nn.Linear(64, 1))

  def train_on_batch(x, y):
    x, y = torch.Tensor(x), torch.Tensor(y)
    model.zero_grad()
    loss = (model(x) - y).pow(2).mean()
    loss.backward()
    for param in model.parameters():
      param.data -= INNER_LR * param.grad.data

  gen_task()  # The demo's plotting task and points come first in its random stream.
  rng.choice(len(x_all), size=points)
  start = time.perf_counter()
  for iteration in range(ITERATIONS):
    weights_before = deepcopy(model.state_dict())
    f = gen_task()
    y_all = f(x_all)
    inds = rng.permutation(len(x_all))
    for begin in range(0, len(x_all), points):
      train_on_batch(x_all[inds[begin:begin + points]], y_all[inds[begin:begin + points]])
    weights_after = model.state_dict()
    step_size = 0.1 * (1 - iteration / ITERATIONS)
    model.load_state_dict({name: weights_before[name]
                           + (weights_after[name] - weights_before[name]) * step_size
                           for name in weights_before})
  seconds = time.perf_counter() - start
  layers = [(layer.weight.detach().numpy().T, layer.bias.detach().numpy())
            for layer in model if isinstance(layer, torch.nn.Linear)]
  return _result(layers, ITERATIONS / seconds, 0.0)


def _result(layers, iterations_per_second: float, compile_s: float):
  """A ``SinusoidResult`` from another framework's final (w [in, out], b) per layer."""
  leaves = [tf.constant(np.asarray(a), tf.float32) for w, b in layers for a in (b, w)]
  return sinusoid_training.SinusoidResult(sinusoid.pack(leaves), iterations_per_second, compile_s, 0)


def _max_difference(a, b) -> float:
  return max(float(np.abs(x.numpy() - y.numpy()).max())
             for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)))


def main():
  rows, weight_differences, population, ours, without_ynnpack = [], [], [], [], []
  for seed in SEEDS:
    result = train("reptile", "seed", 0.1, seed)
    rows.append(row("reptile (seed variant)", 0.1, seed, result, evaluate(result.params)))
    chunked = train("reptile", "seed", 0.1, seed, sinusoid_training.LOGGING_PERIOD)
    rows.append(row("reptile (seed variant), train.py's chunks", 0.1, seed, chunked,
                    evaluate(chunked.params)))
    population.append(evaluate(result.params, num_tasks=2000)["32"]["mean"])
    reference = jax_demo_loop(seed)  # Right after, so that both see the same machine load.
    if reference is not None:
      rows.append(row("JAX demo loop (reference)", 0.1, seed, reference,
                      evaluate(reference.params)))
      without_ynnpack.append((result.iterations_per_second, jax_demo_loop_without_ynnpack(seed)))
    ours.append(result.params)
  for seed, params in zip(SEEDS, ours):  # After the compiled loops: PyTorch's threads stay busy.
    demo = torch_demo_loop(seed)
    if demo is not None:
      rows.append(row("PyTorch demo loop (the seed)", 0.1, seed, demo, evaluate(demo.params)))
      weight_differences.append(_max_difference(params, demo.params))
  for algorithm, variant in (("reptile", "library"), ("fomaml", "library"), ("maml", "library")):
    outer_lr, result = tuned(algorithm, variant)
    rows.append(row(f"{algorithm} (library)", outer_lr, 0, result, evaluate(result.params)))
  print_table(rows, list(rows[0]))
  seed_rows = [r for r in rows if r["run"] == "reptile (seed variant)"]
  jax_rows = [r for r in rows if r["run"] == "JAX demo loop (reference)"]
  mse_32 = [r["mse_32"] for r in seed_rows]
  compiled = float(np.median([r["it_per_s"] for r in seed_rows]))
  chunked_rows = [r for r in rows if r["run"] == "reptile (seed variant), train.py's chunks"]
  per_call = sinusoid_training.train_sinusoid("reptile", 2000, 1, INNER_STEPS, INNER_LR, 0.1, 0,
                                           logging_period=1).iterations_per_second
  summary = {"seed_variant_median_mse_32": float(np.median(mse_32)),
             "seed_variant_mse_32_range": [float(min(mse_32)), float(max(mse_32))],
             "seed_variant_median_mse_32_on_2000_tasks": float(np.median(population)),
             "seed_variant_it_per_s": compiled,
             "train_py_chunks_it_per_s": float(np.median([r["it_per_s"] for r in chunked_rows])),
             "train_py_chunks_cost": 1 - float(np.median(
                 [c["it_per_s"] / r["it_per_s"] for r, c in zip(seed_rows, chunked_rows)])),
             "python_loop_it_per_s": per_call,
             "speedup_vs_python_loop": compiled / per_call}
  if jax_rows:
    summary["jax_reference_it_per_s"] = float(np.median([r["it_per_s"] for r in jax_rows]))
    summary["vs_jax_reference"] = float(np.median([r["it_per_s"] / j["it_per_s"]
                                                   for r, j in zip(seed_rows, jax_rows)]))
    summary["train_py_chunks_vs_jax_reference"] = float(np.median(
        [c["it_per_s"] / j["it_per_s"] for c, j in zip(chunked_rows, jax_rows)]))
    summary["jax_without_ynnpack_it_per_s"] = float(np.median([j for _, j in without_ynnpack]))
    summary["vs_jax_without_ynnpack"] = float(np.median([o / j for o, j in without_ynnpack]))
  demo_rows = [r for r in rows if r["run"] == "PyTorch demo loop (the seed)"]
  if demo_rows:
    summary["seed_loop_it_per_s"] = float(np.median([r["it_per_s"] for r in demo_rows]))
    summary["speedup_vs_seed_loop"] = compiled / summary["seed_loop_it_per_s"]
    summary["max_weight_difference_vs_seed_loop"] = max(weight_differences)
  print()
  for key, value in summary.items():
    print(f"{key}: {value}")
  path = write_results("sinusoid", rows, summary=summary, target_it_per_s=TARGET_IT_PER_S,
                       target_median_mse_32=TARGET_MSE_32,
                       setting=f"{ITERATIONS} iterations, 1 task each, {INNER_STEPS} inner steps of "
                               f"{INNER_LR}; 200 held-out tasks (seed 1)")
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
