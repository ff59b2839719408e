"""Numbers about generated images: attribute accuracy (synthetic birds), R-precision by an evaluator trained apart
from the GAN, FID and Inception Score, and the metric card that gathers them."""
