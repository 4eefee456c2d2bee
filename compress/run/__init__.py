"""One run of a command: the pipeline and its stages (prune), the run context, the sweep, export and
bench of a model (deploy) and what ``compress bench`` compares (bench_sides)."""
