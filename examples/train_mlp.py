"""Train a Sonnet MLP on MNIST with a trained learned optimizer and with Adam, side by side.

The user's side of the story: a model that is not a registered problem, its own training loop, and
the optimizer loaded by name (shipped with l2l; by default ``general``) or from a directory written
by ``train.py``::

    .venv/bin/python examples/train_mlp.py
    .venv/bin/python examples/train_mlp.py --optimizer_path=runs/default/mnist --init=paper \
        --adam_learning_rate=0.03 --num_steps=100 --plot=runs/default/mnist/train_mlp.png

The MLP starts from Sonnet's default initialisation, or with ``--init=paper`` from the paper's
N(0, 0.01²) on which its LSTM optimizers were meta-trained.

Prints the training loss (mean over 10-step windows) and the test accuracy, and plots both loss
curves. Data: the embedded MNIST subset (or ``--data_dir``), as ``problems/mnist.py``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402

import l2l  # noqa: E402
from l2l import evaluation  # noqa: E402
from problems import datasets  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("optimizer_path", "general", "A shipped optimizer's name, or the directory "
                    "of one train.py wrote.")
flags.DEFINE_float("adam_learning_rate", 1e-3, "Adam's learning rate.", lower_bound=0.0)
flags.DEFINE_enum("init", "sonnet", ["sonnet", "paper"], "The MLP's initial weights: Sonnet's "
                  "default (truncated normal, stddev 1/sqrt(fan-in); zero biases) or the paper's "
                  "N(0, 0.01²) for weights and biases.")
flags.DEFINE_integer("num_steps", 200, "Training steps.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Examples per step.", lower_bound=1)
flags.DEFINE_list("hidden", ["20"], "Hidden layer sizes of the MLP.")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights and the minibatches.")
flags.DEFINE_string("data_dir", None, "MNIST files (default: the embedded subset).")
flags.DEFINE_string("plot", None, "PNG file for the two loss curves.")


def train(optimizer: snt.Optimizer, images: np.ndarray, labels: np.ndarray,
          test: tuple[np.ndarray, np.ndarray]) -> tuple[list[float], float]:
  """Trains a fresh MLP with ``optimizer``; returns the loss per step and the test accuracy."""
  tf.random.set_seed(FLAGS.seed)
  init = snt.initializers.RandomNormal(stddev=0.01) if FLAGS.init == "paper" else None
  model = snt.Sequential([snt.Flatten(), snt.nets.MLP(
      [int(h) for h in FLAGS.hidden] + [10], w_init=init, b_init=init, activation=tf.sigmoid)])
  rng = np.random.default_rng(FLAGS.seed)
  x_all = tf.constant(images, tf.float32) / 255.0
  y_all = tf.constant(labels, tf.int32)
  model(x_all[:1])

  @tf.function(jit_compile=True)
  def step(indices):
    with tf.GradientTape() as tape:
      logits = model(tf.gather(x_all, indices))
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          tf.gather(y_all, indices), logits))
    grads = tape.gradient(loss, model.trainable_variables)
    if isinstance(optimizer, l2l.LearnedOptimizer):  # Some learned optimizers read the loss.
      optimizer.apply(grads, model.trainable_variables, loss=loss)
    else:
      optimizer.apply(grads, model.trainable_variables)
    return loss

  losses = [float(step(rng.integers(0, len(labels), FLAGS.batch_size)))
            for _ in range(FLAGS.num_steps)]
  predictions = tf.argmax(model(tf.constant(test[0], tf.float32) / 255.0), -1).numpy()
  return losses, float(np.mean(predictions == test[1]))


def main(argv):
  del argv
  images, labels = datasets.load_mnist("train", FLAGS.data_dir)
  test = datasets.load_mnist("test", FLAGS.data_dir)
  # num_steps: the training the learned optimizer plans for (optimizers with a schedule read it).
  learned = l2l.LearnedOptimizer.load(FLAGS.optimizer_path, num_steps=FLAGS.num_steps)
  optimizers = {f"{os.path.basename(FLAGS.optimizer_path.rstrip('/'))} (learned)": learned,
                f"Adam {FLAGS.adam_learning_rate:g}": snt.optimizers.Adam(FLAGS.adam_learning_rate)}
  curves = {}
  print(f"{'optimizer':>22} {'loss 1-10':>10} {'loss last 10':>13} {'test accuracy':>14}")
  for name, optimizer in optimizers.items():
    losses, accuracy = train(optimizer, images, labels, test)
    curves[name] = losses
    print(f"{name:>22} {np.mean(losses[:10]):>10.4f} {np.mean(losses[-10:]):>13.4f} "
          f"{accuracy:>14.1%}")
  if FLAGS.plot:
    evaluation.plot_curves(curves, FLAGS.plot, f"MLP {'-'.join(FLAGS.hidden)} on MNIST")
    print(f"wrote {FLAGS.plot}")


if __name__ == "__main__":
  app.run(main)
