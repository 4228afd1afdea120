"""dnn_train's Optuna sweeper plugin (optuna_sweeper.py), where Hydra's scan of hydra_plugins finds it."""
