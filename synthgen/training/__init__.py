"""The shared training library: loop, checkpoints, EMA, DDP, metrics log, LR schedule.

Nothing is re-exported here: loading a checkpoint (`synthgen.training.checkpoint`) must not import the
training loop, or sampling would depend on it in dvc.yaml.
"""
