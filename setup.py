"""Package metadata for l2l: learned optimizers and meta-learning steps for TF2 + Sonnet 2."""

from setuptools import find_packages, setup

setup(
    name="l2l",
    version="0.1.0",
    description=(
        "Learning to learn by gradient descent by gradient descent (TF2 + Sonnet 2), "
        "with Reptile / FOMAML / MAML steps and nested optimizer updates."
    ),
    python_requires=">=3.11",
    packages=find_packages(include=["l2l", "l2l.*", "problems", "problems.*"]),
    package_data={"problems": ["data/*.npz", "data/*.md"], "l2l": ["pretrained/*/*"]},
    py_modules=["cli", "train", "evaluate"],
    install_requires=[
        "tensorflow>=2.16",
        "dm-sonnet>=2.0.2",
        "dm-tree",
        "numpy",
        "absl-py",
        "matplotlib",
        "tensorboard",
    ],
    extras_require={
        "test": ["pytest"],
        # bench/meta_step.py times the JAX version the meta-iteration target is set against;
        # bench/sinusoid.py runs the Reptile demo's own PyTorch loop (the CPU build, pinned).
        "bench": ["jax", "torch==2.13.0"],
    },
)
