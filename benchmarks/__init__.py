"""Speed, compile time and memory of `convlstm_jax.ConvLSTM` beside other ConvLSTMs.

Run everything with `python -m benchmarks.run` (see `benchmarks.run` for the options); the
figures and how they are measured are described in BENCHMARKS.md.
"""
