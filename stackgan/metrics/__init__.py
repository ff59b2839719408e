"""Numbers about generated images: attribute accuracy (synthetic birds), FID and Inception Score."""
