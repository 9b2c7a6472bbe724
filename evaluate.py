"""Evaluation CLI on held-out problems (absl flags).

``--problem=quadratic`` (and the other problems of ``problems.get_config``): runs ``--optimizer``
(``L2L`` loaded from ``--path``, or a ``snt.optimizers`` baseline with ``--learning_rate``) on
``--num_epochs`` problems drawn from ``--seed``, each with a fresh problem and a freshly reset
optimizer state. Prints and writes to ``--output_json`` the log10 mean final loss, the mean final
loss, the mean loss curve per step and the seconds per epoch; ``--plot`` draws the curve.

``--problem=sinusoid``: loads an initialisation from ``--path`` (untrained without it), adapts with
k SGD steps on 10 points of each of ``--num_tasks`` held-out tasks and reports the mean and median
MSE over the 50 points for every k in ``--adapt_steps``.
"""

import cli

cli.quiet_tensorflow()  # Before anything imports TensorFlow.

# pylint: disable=wrong-import-position
from absl import app, flags

import problems
from l2l import checkpoint
from l2l import evaluation
from problems import sinusoid_training
from l2l import meta
from l2l import pretrained
from problems import sinusoid

FLAGS = flags.FLAGS
flags.DEFINE_enum("problem", "quadratic", list(problems.NAMES) + ["sinusoid"],
                  "Problem to evaluate on.")
flags.DEFINE_string("path", None, "Directory written by train.py.")
flags.DEFINE_string("data_dir", None, "MNIST / CIFAR-10 files (default MNIST: TensorFlow Datasets "
                    "if populated, else the embedded subset; CIFAR-10 needs it).")
flags.DEFINE_integer("seed", 1, "Seed of the held-out problems (training uses its own).")
flags.DEFINE_string("output_json", None, "Where to write the results as JSON.")
# Optimizers on problems.
flags.DEFINE_enum("optimizer", "L2L", list(evaluation.OPTIMIZERS) + sorted(pretrained.SHIPPED),
                  "Optimizer to evaluate: L2L (the one at --path), a baseline, or a shipped "
                  "learned optimizer (its planned horizon is --num_steps).")
flags.DEFINE_float("learning_rate", 0.001, "Learning rate of a baseline optimizer.",
                   lower_bound=0.0)
flags.DEFINE_integer("num_epochs", 100, "Held-out problems.", lower_bound=1)
flags.DEFINE_integer("num_steps", 100, "Optimization steps per problem.", lower_bound=1)
flags.DEFINE_integer("unroll_length", 20, "Steps per compiled unroll of the learned optimizer.",
                     lower_bound=1)
flags.DEFINE_boolean("jit_compile", True, "Compile the optimization loops with XLA.")
flags.DEFINE_string("plot", None, "PNG file for the mean learning curve.")
flags.DEFINE_boolean("diagnose", False, "Print step-by-step statistics (loss at steps 0/1/10/100, "
                     "update magnitude, fraction of coordinates moving) of the learned optimizer at "
                     "--path against Adam with --learning_rate, on --num_epochs problems.")
# Sinusoid.
flags.DEFINE_integer("num_tasks", 200, "Held-out tasks (sinusoid).", lower_bound=1)
flags.DEFINE_list("adapt_steps", ["0", "1", "8", "32"], "Adaptation steps to report (sinusoid).")
flags.DEFINE_float("adapt_learning_rate", 0.02, "SGD step size for adaptation (sinusoid).",
                   lower_bound=0.0)


def _write_json(results: dict) -> None:
  if FLAGS.output_json:
    checkpoint.write_json(FLAGS.output_json, results)
    print(f"wrote {FLAGS.output_json}")


def evaluate_sinusoid() -> None:
  try:
    adapt_steps = sorted({int(k) for k in FLAGS.adapt_steps})
  except ValueError:
    adapt_steps = [-1]
  if adapt_steps[0] < 0:
    raise app.UsageError(f"--adapt_steps must be non-negative integers, got {FLAGS.adapt_steps}")
  params = sinusoid_training.load_params(FLAGS.path)
  results = sinusoid_training.evaluate_sinusoid(params, FLAGS.num_tasks, adapt_steps,
                                             FLAGS.adapt_learning_rate, FLAGS.seed)
  results["path"] = FLAGS.path
  print(f"{'steps':>6} {'mean MSE':>10} {'median MSE':>11}")
  for k, row in results["mse"].items():
    print(f"{k:>6} {row['mean']:>10.4f} {row['median']:>11.4f}")
  _write_json(results)
  if FLAGS.plot:
    plot_sinusoid(params, FLAGS.plot)
    print(f"wrote {FLAGS.plot}")


def plot_sinusoid(params, path: str) -> None:
  """The demo's figure: one held-out task, its 10 points, predictions after 0, 8, 16, 24, 32 steps."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  task = sinusoid_training.held_out_tasks(1, FLAGS.seed)
  predictions = sinusoid_training.adapted_predictions(params, task["x_train"][0], task["y_train"][0],
                                                   32, FLAGS.adapt_learning_rate)
  x = sinusoid.X_ALL[:, 0]
  fig, ax = plt.subplots(figsize=(6, 4))
  for step in (0, 8, 16, 24, 32):
    ax.plot(x, predictions[step, :, 0], label=f"pred after {step}", color=(step / 32, 0, 1 - step / 32))
  ax.plot(x, task["y_all"][0, :, 0], label="true", color=(0, 1, 0))
  ax.plot(task["x_train"][0, :, 0], task["y_train"][0, :, 0], "x", label="train", color="k")
  ax.set_ylim(-4, 4)
  ax.legend(loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def diagnose(config: problems.ProblemConfig) -> None:
  """--diagnose: the learned optimizer against Adam, step by step, on the same problems."""
  results = {}
  for name in ("L2L", "Adam"):
    problems.seed_problem(config.make_loss, FLAGS.seed)
    results[name] = evaluation.diagnose(
        name, config.make_loss, FLAGS.num_steps, FLAGS.num_epochs, FLAGS.learning_rate,
        meta.MetaOptimizer.load(FLAGS.path) if name == "L2L" else None, config.net_assignments)
  steps = sorted({t for t in (0, 1, 10, 100, FLAGS.num_steps) if t <= FLAGS.num_steps})
  print(f"{FLAGS.problem}, {FLAGS.num_epochs} problems, {results['L2L']['num_coordinates']} "
        f"coordinates; Adam learning rate {FLAGS.learning_rate}; moving: |dx| > "
        f"{evaluation.MOVING_ABSOLUTE:g} + {evaluation.MOVING_RELATIVE:g}|x|")
  print(f"{'step':>5} {'optimizer':>9} {'loss':>11} {'mean |update|':>14} {'moving':>7}")
  for t in steps:
    for name, r in results.items():
      update = f"{r['mean_abs_update'][t - 1]:>14.3g}" if t else f"{'-':>14}"
      moving = f"{r['fraction_moving'][t - 1]:>7.1%}" if t else f"{'-':>7}"
      print(f"{t:>5} {name:>9} {r['loss'][t]:>11.4g} {update} {moving}")
  _write_json({"problem": FLAGS.problem, "path": FLAGS.path, **results})


def evaluate_optimizer() -> None:
  try:
    evaluation.check_unrolls(FLAGS.num_steps, FLAGS.unroll_length)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  if (FLAGS.optimizer == "L2L" or FLAGS.diagnose) and FLAGS.path is None:
    raise app.UsageError("--optimizer=L2L and --diagnose need --path, a directory written by "
                         "train.py.")
  config = problems.get_config(FLAGS.problem, "test", FLAGS.data_dir)
  if FLAGS.diagnose:
    diagnose(config)
    return
  if FLAGS.optimizer == "L2L":
    run = evaluation.learned_epoch_runner(meta.MetaOptimizer.load(FLAGS.path), config.make_loss,
                                          FLAGS.num_steps, FLAGS.unroll_length,
                                          config.net_assignments, FLAGS.jit_compile)
  elif FLAGS.optimizer in pretrained.SHIPPED:  # One net for every variable.
    run = evaluation.learned_epoch_runner(
        meta.MetaOptimizer.load(FLAGS.optimizer, num_steps=FLAGS.num_steps), config.make_loss,
        FLAGS.num_steps, FLAGS.unroll_length, None, FLAGS.jit_compile)
  else:
    run = evaluation.baseline_epoch_runner(FLAGS.optimizer, FLAGS.learning_rate,
                                           config.make_loss, FLAGS.num_steps, FLAGS.jit_compile)
  problems.seed_problem(config.make_loss, FLAGS.seed)
  results = evaluation.run_epochs(run, FLAGS.num_epochs)
  results.update(problem=FLAGS.problem, optimizer=FLAGS.optimizer, path=FLAGS.path,
                 learning_rate=(FLAGS.learning_rate if FLAGS.optimizer in evaluation.BASELINES
                                else None),
                 num_steps=FLAGS.num_steps, seed=FLAGS.seed)
  print(f"{FLAGS.optimizer} on {FLAGS.problem}: log10 mean final loss "
        f"{results['log10_mean_final_loss']:.3f} (mean final loss "
        f"{results['mean_final_loss']:.4g}) over {FLAGS.num_epochs} problems, "
        f"{results['seconds_per_epoch']:.4f} s/epoch")
  if FLAGS.plot:
    evaluation.plot_curves({FLAGS.optimizer: results["mean_loss_curve"]}, FLAGS.plot,
                           FLAGS.problem)
    print(f"wrote {FLAGS.plot}")
  _write_json(results)


def main(argv):
  del argv
  if FLAGS.problem == "sinusoid":
    evaluate_sinusoid()
  else:
    evaluate_optimizer()


if __name__ == "__main__":
  cli.run(main, default_threads=lambda: problems.intra_op_threads(FLAGS.problem))
