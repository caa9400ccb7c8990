"""Developer tools of the repository, run from its root; not part of the installed packages.

- `python -m tools.mutation`: mutation testing of the library's core. It writes small changes
  (mutants) of the cell math, the stack drivers, the conversion, the tapwise VJP, the
  bidirectional wrappers and the encoder-forecaster into copies of the repository, runs the tests
  that guard each module on every mutant, and reports the mutants no test kills
  (`tools/mutation_results.json`). `tools.mutants` makes the mutants; `tools.mutation_equivalents`
  lists the ones that change no result, each with its reason.
"""
