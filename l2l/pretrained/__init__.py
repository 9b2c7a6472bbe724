"""Optimizers shipped inside the package, loadable by name wherever a saved optimizer's path goes.

``LearnedOptimizer.load("celo", num_steps=1000)``, ``KerasLearnedOptimizer.load(...)``,
``MetaOptimizer.load(...)`` and ``evaluate.py --path`` take a name of ``SHIPPED`` as well as a
directory written by ``train.py``. Each shipped optimizer is such a directory here.
"""

import os

DIRECTORY = os.path.dirname(os.path.abspath(__file__))

SHIPPED: dict[str, str] = {
    "general": "l2l's own general optimizer: Celo's architecture meta-trained with l2l's train.py and "
               "PES on the 'general' mixture of 11 task families (MLPs, convnets, autoencoders, "
               "regression; 30 000 outer steps, about 1 h of a 2-core CPU); for MLPs and convnets "
               "like those (on models unlike them, celo does better: the README's held-out suite).",
    "celo": "Celo (Moudgil et al. 2025) with its published weights (MIT licence): a per-parameter "
            "MLP over Adam / Adafactor / momentum features and an LSTM step-size schedule over "
            "num_steps; meta-trained by its authors on tiny MLP tasks, for neural networks.",
    "nnadam-mnist": "NN-Adam (Adam whose step size and momentum one LSTM sets from gradient "
                    "statistics), meta-trained on MNIST MLPs 784-20-10 from Adam 0.03 (the README's "
                    "fast-optimizer command); for small neural networks.",
}


def resolve(path_or_name: str) -> str:
  """The directory of a saved optimizer: ``path_or_name`` itself when it is a directory, else the
  shipped optimizer of that name; FileNotFoundError listing the shipped names otherwise."""
  if os.path.isdir(path_or_name):
    return path_or_name
  if path_or_name in SHIPPED:
    return os.path.join(DIRECTORY, path_or_name)
  raise FileNotFoundError(f"No saved optimizer at {path_or_name!r}, and no shipped optimizer of "
                          f"that name: the shipped ones are {sorted(SHIPPED)}.")
