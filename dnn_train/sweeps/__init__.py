"""Sweeps: comparing runs (read, table, render, stats, rundiff), a sweep's summary, and Optuna searches (search_*).

Beside training, above the run files: these modules read run directories and drive sweepers; nothing
below them imports them, except the training loop's per-epoch pruning callback (search_trial.py).
"""
