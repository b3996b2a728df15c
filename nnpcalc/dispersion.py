"""Dispersion corrections added to a model's energy: D3(BJ) (simple-dftd3) or D4 (dftd4).

A model trained on a density functional *without* dispersion (PBE, B3LYP, ωB97X, r²SCAN, ...)
misses the long-range London attraction; Grimme's corrections add it, parametrised per
functional. They are additive: ``E = E_model + E_disp`` (forces and stress likewise).

When it makes sense: only when the model's reference method is a functional without a
dispersion term of its own, and with *that* functional's parameters (``functional=``).
It does not make sense for

* GFN2-xTB (the shipped ``hcno-gfn2``): D4 is part of GFN2-xTB — adding it counts it twice;
  the same for GFN1-xTB (D3), GFN-FF, and composite or corrected methods (B97-3c,
  r²SCAN-3c, ωB97X-D3/-D4/-V, ... anything with -D, -3c, -V, VV10, MBD or TS in its name);
* EMT (``metals-emt``) or other force fields: D3/D4 parameters exist per functional only.

:func:`with_dispersion` refuses those reference methods (from the model's fidelity names)
unless told ``allow_double_counting=True``. Use it in ASE::

    atoms.calc = with_dispersion(NNPCalculator("my-pbe-model.pt"), functional="pbe")

and in OpenMM with :func:`add_to_openmm_system`. Needs ``pip install 'nnpcalc[dispersion]'``.
"""

from __future__ import annotations

import re

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .charge import total_charge
from .errors import DispersionError
from .units import EV_TO_KJ_PER_MOL, NM_TO_ANGSTROM

#: method → (python module, ASE calculator class, extra keyword arguments)
METHODS = {
    "d3bj": ("dftd3.ase", "DFTD3", {"damping": "d3bj"}),
    "d3zero": ("dftd3.ase", "DFTD3", {"damping": "d3zero"}),
    "d4": ("dftd4.ase", "DFTD4", {}),
}
#: reference methods that already hold dispersion (matched case-insensitively in fidelity names)
HAS_DISPERSION = re.compile(r"gfn|xtb|-d(\d|\b)|-3c|-v\b|vv10|mbd|\bts\b|emt|force.?field", re.IGNORECASE)


def dispersion_calculator(functional: str, method: str = "d3bj", **options) -> Calculator:
    """The ASE calculator of a dispersion correction for ``functional`` (e.g. "pbe", "b3lyp").

    ``method``: "d3bj" (default), "d3zero" or "d4"; ``options`` go to dftd3's/dftd4's calculator.
    """
    if method not in METHODS:
        raise DispersionError(f"unknown dispersion method {method!r}; choose from {', '.join(METHODS)}")
    module_name, class_name, fixed = METHODS[method]
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"dispersion {method!r} needs the {module_name.split('.')[0]} package: "
            "pip install 'nnpcalc[dispersion]'"
        ) from err
    return getattr(module, class_name)(method=functional, **fixed, **options)


def check_reference(references: list[str], functional: str) -> None:
    """Refuse a correction for reference methods that already contain dispersion (or are no functional)."""
    clashing = [name for name in references if HAS_DISPERSION.search(name)]
    if clashing:
        raise DispersionError(
            f"the model's reference method {', '.join(clashing)} already contains dispersion or is "
            f"not a density functional, so adding {functional!r} dispersion would count it twice or "
            "mean nothing. Add dispersion only to models of plain functionals (PBE, B3LYP, ...); "
            "pass allow_double_counting=True if you really mean it."
        )


class DispersionCorrected(Calculator):
    """A model's calculator plus a dispersion correction: energy, forces and stress add up;
    charges and dipole are the model's; per-atom energies are not reported (D3/D4 have none here).
    """

    def __init__(self, model_calc: Calculator, dispersion: Calculator, **kwargs):
        super().__init__(**kwargs)
        self.model_calc, self.dispersion = model_calc, dispersion
        model_has = set(model_calc.implemented_properties)
        self.implemented_properties = sorted((model_has - {"energies"}) | {"energy", "free_energy", "forces", "stress"})

    def check_state(self, atoms, tol=1e-15):
        changes = super().check_state(atoms, tol)
        if self.atoms is not None and total_charge(atoms) != total_charge(self.atoms):
            changes.append("charge")
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        charge = total_charge(atoms if atoms is not None else self.atoms)  # before the copy drops atoms.charge
        super().calculate(atoms, properties, system_changes)
        self.atoms.info["charge"] = charge  # the copy both calculators see carries it
        wanted = ["energy", "forces"] + (["stress"] if self.atoms.pbc.all() else [])
        model = self._results(self.model_calc, wanted)
        disp = self._results(self.dispersion, wanted)
        self.results = {k: v for k, v in model.items() if k not in ("energies",) + tuple(wanted)}
        for key in wanted:
            self.results[key] = model[key] + disp[key]
        self.results["free_energy"] = self.results["energy"]

    def _results(self, calc: Calculator, wanted: list[str]) -> dict:
        calc.calculate(self.atoms, wanted, all_changes)
        return dict(calc.results)


def with_dispersion(calc, functional: str, method: str = "d3bj", *, allow_double_counting: bool = False,
                    **options) -> DispersionCorrected:
    """``calc`` (an :class:`~nnpcalc.NNPCalculator`) plus the dispersion of ``functional``.

    Refuses models whose fidelity names a method that already contains dispersion (GFN2-xTB, ...)
    unless ``allow_double_counting``; see the module docstring for when it makes sense.
    """
    model = getattr(calc, "model", None)
    if model is not None and not allow_double_counting:
        fidelity = getattr(calc, "fidelity", None)
        names = model.fidelities if fidelity is None else [model.fidelities[model.fidelity_index(fidelity)]]
        check_reference(names, functional)
    return DispersionCorrected(calc, dispersion_calculator(functional, method, **options))


class OpenMMDispersion:
    """The ``PythonForce`` callback of a dispersion correction (picklable: it keeps its settings)."""

    def __init__(self, numbers, functional: str, method: str, periodic: bool, options: dict):
        self.settings = (list(numbers), functional, method, periodic, dict(options))
        self.calc = dispersion_calculator(functional, method, **options)

    def __call__(self, state):
        from ase import Atoms
        import openmm.unit as unit

        numbers, _, _, periodic, _ = self.settings
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * NM_TO_ANGSTROM
        atoms = Atoms(numbers=numbers, positions=positions)
        if periodic:
            box = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
            atoms.set_cell(box * NM_TO_ANGSTROM)
            atoms.pbc = True
        atoms.calc = self.calc
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        return energy * EV_TO_KJ_PER_MOL, forces * (EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM)

    def __getstate__(self):
        return {"settings": self.settings}

    def __setstate__(self, state):
        numbers, functional, method, periodic, options = state["settings"]
        self.__init__(numbers, functional, method, periodic, options)


def add_to_openmm_system(system, topology, functional: str, method: str = "d3bj", *, atoms=None,
                         force_group: int = 0, **options):
    """Add the dispersion of ``functional`` over ``atoms`` (None: all) to an OpenMM System.

    Periodic when the topology has a box. Returns the added ``openmm.PythonForce``.
    """
    import openmm

    indices = list(range(topology.getNumAtoms())) if atoms is None else [int(i) for i in atoms]
    every = list(topology.atoms())
    numbers = [every[i].element.atomic_number for i in indices]
    periodic = topology.getPeriodicBoxVectors() is not None
    force = openmm.PythonForce(OpenMMDispersion(numbers, functional, method, periodic, options))
    force.setUsesPeriodicBoundaryConditions(periodic)
    if atoms is not None:
        force.setParticles(indices)
    force.setForceGroup(force_group)
    system.addForce(force)
    return force
