"""The data: the preprocessing cache, captions, the real data's download and preparation, the synthetic birds."""
