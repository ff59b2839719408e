"""StackGAN in Keras 3: the machinery behind the commands at the repository's root, and the Python API.

    import stackgan
    birds = stackgan.StackGAN.from_preset("results/demo")
    images = birds.generate("a small yellow bird with dark wings", samples=4)

Importing the package imports neither TensorFlow nor Keras; they are imported (quietly) when a network is built.
"""

from stackgan.api import StackGAN

__all__ = ["StackGAN"]
