"""Meta-training CLI.

``--problem=sinusoid``: learns an initialisation of the sine-wave MLP with Reptile, first-order MAML
or MAML (see ``l2l/initialisation.py``), and writes a ``tf.train.Checkpoint`` of the parameters and
``config.json`` (problem, algorithm, flags, iterations per second) to ``--save_path``, which
``evaluate.py`` reads.
"""

from absl import app, flags
import tensorflow as tf

from l2l import initialisation

FLAGS = flags.FLAGS
flags.DEFINE_enum("problem", "sinusoid", ["sinusoid"], "Problem to meta-train on.")
flags.DEFINE_enum("algorithm", "reptile", ["reptile", "fomaml", "maml"],
                  "Meta-learning algorithm (sinusoid).")
flags.DEFINE_integer("num_iterations", 30000, "Outer iterations.", lower_bound=1)
flags.DEFINE_integer("meta_batch_size", 1, "Tasks per outer iteration.", lower_bound=1)
flags.DEFINE_integer("inner_steps", 5, "Inner SGD steps per task.", lower_bound=1)
flags.DEFINE_float("inner_learning_rate", 0.02, "Inner SGD step size.", lower_bound=0.0)
flags.DEFINE_float("outer_learning_rate", 0.1, "Initial outer step size (annealed to 0).",
                   lower_bound=0.0)
flags.DEFINE_integer("logging_period", 1000, "Iterations between progress lines.", lower_bound=1)
flags.DEFINE_string("save_path", None, "Directory for the checkpoint and config.json.")
flags.DEFINE_integer("seed", 0, "Seed for the initialisation and the task stream.")


def main(argv):
  del argv
  tf.random.set_seed(FLAGS.seed)
  params, iterations_per_second = initialisation.train_sinusoid(
      FLAGS.algorithm, FLAGS.num_iterations, FLAGS.meta_batch_size, FLAGS.inner_steps,
      FLAGS.inner_learning_rate, FLAGS.outer_learning_rate, FLAGS.seed, FLAGS.logging_period)
  print(f"trained {FLAGS.algorithm} on sinusoid: {FLAGS.num_iterations} iterations, "
        f"{iterations_per_second:.0f} iterations/s")
  if FLAGS.save_path:
    config = {"problem": "sinusoid", "algorithm": FLAGS.algorithm,
              "flags": {name: FLAGS[name].value for name in
                        ("num_iterations", "meta_batch_size", "inner_steps",
                         "inner_learning_rate", "outer_learning_rate", "seed")},
              "iterations_per_second": iterations_per_second}
    initialisation.save(params, FLAGS.save_path, config)
    print(f"saved to {FLAGS.save_path}")


if __name__ == "__main__":
  app.run(main)
