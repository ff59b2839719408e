"""Captions -> embeddings: the caption encoder, its training and its evaluation."""
