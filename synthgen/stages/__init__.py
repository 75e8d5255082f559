"""One module per DVC stage, each with a pure `run(cfg, inputs, out) -> summary`; `layout` names their files."""
