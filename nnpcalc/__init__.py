"""nnpcalc: run a trained neural-network interatomic potential from one model file.

Importing this package is cheap: the calculator, runtime and workflows load on first use.
"""

__version__ = "0.1.0"

_LAZY = {
    "NNPCalculator": "nnpcalc.calculator",
    "Model": "nnpcalc.runtime",
    "load_model": "nnpcalc.runtime",
    "relax": "nnpcalc.workflows.relax",
    "run_md": "nnpcalc.workflows.md",
    "phonons": "nnpcalc.workflows.phonons",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nnpcalc' has no attribute {name!r}")
