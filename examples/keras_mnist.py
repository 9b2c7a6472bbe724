"""A Keras MLP trained with a shipped learned optimizer and with Adam, side by side (``model.fit``).

    .venv/bin/python examples/keras_mnist.py                       # general vs Adam 1e-3, 1e-2
    .venv/bin/python examples/keras_mnist.py --optimizer=celo
    .venv/bin/python examples/keras_mnist.py --optimizer=nnadam-mnist
    .venv/bin/python examples/keras_mnist.py --optimizer=runs/q    # any directory train.py wrote

The model (784-128-10, ReLU, Keras' default initialisation) is not one the optimizer was trained
on. Prints the training loss of every epoch and the test accuracy for each optimizer. Data: the
embedded MNIST subset (4 000 training and 1 000 test digits), or ``--data_dir``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cli  # noqa: E402

cli.quiet_tensorflow()

from absl import flags  # noqa: E402
import keras  # noqa: E402

import l2l  # noqa: E402
from problems import datasets  # noqa: E402

FLAGS = flags.FLAGS
BATCH = 128
flags.DEFINE_string("optimizer", "general", "A shipped optimizer's name "
                    f"({', '.join(sorted(l2l.pretrained.SHIPPED))}) or a directory train.py wrote.")
flags.DEFINE_list("adam_learning_rates", ["1e-3", "1e-2"], "Adam baselines to train beside it.")
flags.DEFINE_integer("epochs", 5, "Epochs of model.fit.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the initial weights and the shuffling.")
flags.DEFINE_string("data_dir", None, "MNIST files (default: the embedded subset).")


def fit(optimizer: keras.optimizers.Optimizer, train, test) -> tuple[list[float], float]:
  """Trains the MLP from the seed's initialisation; (loss per epoch, final test accuracy)."""
  keras.utils.set_random_seed(FLAGS.seed)
  model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"),
                            keras.layers.Dense(10)])
  model.compile(optimizer=optimizer, metrics=["accuracy"],
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  history = model.fit(*train, batch_size=BATCH, epochs=FLAGS.epochs, validation_data=test,
                      verbose=0)
  return history.history["loss"], history.history["val_accuracy"][-1]


def main(argv):
  del argv
  train, test = [datasets.load_mnist(split, FLAGS.data_dir) for split in ("train", "test")]
  train, test = [(x.reshape(len(x), -1) / 255.0, y) for x, y in (train, test)]
  num_steps = FLAGS.epochs * -(-len(train[0]) // BATCH)  # The horizon, for Celo's schedule.
  optimizers = {FLAGS.optimizer: l2l.KerasLearnedOptimizer.load(FLAGS.optimizer,
                                                                num_steps=num_steps)}
  for rate in FLAGS.adam_learning_rates:
    optimizers[f"Adam {rate}"] = keras.optimizers.Adam(float(rate))
  print(f"{'optimizer':>16}  training loss per epoch{'':>{max(0, 7 * FLAGS.epochs - 23)}}  "
        "test accuracy")
  for name, optimizer in optimizers.items():
    losses, accuracy = fit(optimizer, train, test)
    print(f"{name:>16}  {' '.join(f'{v:6.3f}' for v in losses)}  {accuracy:.1%}")


if __name__ == "__main__":
  cli.run(main)
