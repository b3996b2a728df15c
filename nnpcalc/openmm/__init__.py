"""OpenMM integration: forces, systems, the openmm-ml plugin and MD (extra ``nnpcalc[openmm]``).

Importing this package is cheap: OpenMM and torch load on first use of a name below, and a
missing OpenMM gives an error naming the extra to install.
"""

_LAZY = {
    "create_force": "forces",
    "save_torchforce_module": "forces",
    "create_system": "system",
    "OpenMMSetup": "system",
    "from_atoms": "topology",
    "run_openmm_md": "simulate",
    "resume_openmm_md": "simulate",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'nnpcalc.openmm' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] == "openmm":
            raise ImportError(
                "nnpcalc.openmm needs OpenMM: pip install 'nnpcalc[openmm]' (openmm==8.6.1)"
            ) from err
        raise
    return getattr(module, name)
