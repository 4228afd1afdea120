"""The run-files layer: a run directory's files (artifacts.py writes them, read.py reads them back), its lock,
its record and the signals that end it.

Below training: it imports nothing of dnn_train's but errors, config's error translation and
provenance. Each module is imported by its own name (`from dnn_train.rundir.record import Run`).
"""
