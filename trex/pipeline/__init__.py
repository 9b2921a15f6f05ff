"""Studies and sweeps: the step commands they build, their plans, run-folder layout, launchers and reports."""
