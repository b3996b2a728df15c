"""The `nnp` command line (installed as ``nnpcalc.cli``): one module per command, lazy imports."""
