"""A Keras convnet trained with a shipped learned optimizer and with Adam: fit, save, reload, go on.

    .venv/bin/python examples/keras_convnet.py                     # general against Adam 1e-3
    .venv/bin/python examples/keras_convnet.py --optimizer=celo
    .venv/bin/python examples/keras_convnet.py --optimizer=nnadam-mnist

Each optimizer trains the same convnet (conv 32-64 3×3 with max-pooling, dense 10; Keras' default
initialisation) on the embedded MNIST subset for ``--epochs`` epochs, is saved to a ``.keras``
file with ``model.save``, reloaded with ``keras.models.load_model`` (the learned optimizer's state
comes back with it) and trained for ``--more_epochs`` more. Prints the training loss per epoch and
the test accuracy before saving and at the end.
"""

import os
import sys
import tempfile

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
flags.DEFINE_float("adam_learning_rate", 1e-3, "The Adam to compare with.", lower_bound=0.0)
flags.DEFINE_integer("epochs", 3, "Epochs before saving.", lower_bound=1)
flags.DEFINE_integer("more_epochs", 2, "Epochs after reloading.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed of the initial weights and the shuffling.")


def convnet() -> keras.Model:
  return keras.Sequential([
      keras.Input((28, 28, 1)),
      keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
      keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
      keras.layers.Flatten(), keras.layers.Dense(10)])


def main(argv):
  del argv
  (x, y), test = [datasets.load_mnist(split) for split in ("train", "test")]
  x, test = x / 255.0, (test[0] / 255.0, test[1])
  steps = (FLAGS.epochs + FLAGS.more_epochs) * -(-len(x) // BATCH)  # The planned horizon.
  optimizers = {
      FLAGS.optimizer: l2l.KerasLearnedOptimizer.load(FLAGS.optimizer, num_steps=steps),
      f"Adam {FLAGS.adam_learning_rate:g}": keras.optimizers.Adam(FLAGS.adam_learning_rate)}
  with tempfile.TemporaryDirectory() as directory:
    for name, optimizer in optimizers.items():
      keras.utils.set_random_seed(FLAGS.seed)
      model = convnet()
      # XLA's CPU code for convolution gradients is far slower than TensorFlow's kernels.
      model.compile(optimizer=optimizer, metrics=["accuracy"], jit_compile=False,
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
      before = model.fit(x, y, batch_size=BATCH, epochs=FLAGS.epochs, verbose=0)
      accuracy = model.evaluate(*test, verbose=0)[1]
      path = os.path.join(directory, "model.keras")
      model.save(path)
      model = keras.models.load_model(path)  # Optimizer and its state included.
      after = model.fit(x, y, batch_size=BATCH, epochs=FLAGS.more_epochs, verbose=0)
      losses = before.history["loss"] + after.history.get("loss", [])
      print(f"{name:>14}: training loss {' '.join(f'{v:.3f}' for v in losses)}; test accuracy "
            f"{accuracy:.1%} after {FLAGS.epochs} epochs, "
            f"{model.evaluate(*test, verbose=0)[1]:.1%} after saving, reloading and "
            f"{FLAGS.more_epochs} more")


if __name__ == "__main__":
  cli.run(main)
