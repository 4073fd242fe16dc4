"""Pretext pretraining of encoders on unlabeled images (issue #18): the un-mixing pretext (unmix.py), its image
sources (sources.py), loop (loop.py) and command (cli.py)."""
