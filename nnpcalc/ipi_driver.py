"""i-PI: a model file as an i-PI Python driver, for molecules and periodic cells.

i-PI runs it through its own driver script (``i-pi-py_driver -m custom``)::

    i-pi input.xml &
    i-pi-py_driver -m custom -P "$(python -m nnpcalc.ipi_driver)" -u -a water \\
        -o template=water.xyz,model=hcno-gfn2

``python -m nnpcalc.ipi_driver`` prints this file's path. ``-o`` takes ``template`` (an
ASE-readable structure: elements, atom order, pbc, ``info["charge"]``), ``model`` (a file or
shipped name), and optionally ``dtype``, ``device``, ``charge`` (total charge in e) and
``uncertainty=true``.

A model with an ensemble energy head (docs/uncertainty.md) sends its uncertainty in each
reply's ``extras`` JSON string, which i-PI passes through to output
(``<trajectory filename='unc' extra_type='energy_uncertainty'> extras </trajectory>``):
``energy_uncertainty`` (eV, every call) and, with ``uncertainty=true`` (K - 1 extra backward
passes per call), ``forces_uncertainty`` (eV/Å per atom, the template's order). These are the
model's own units, not i-PI's atomic units.

Stress is served where the template is periodic in all three directions. For anything else
(molecules, slabs) the virial is zero: i-PI 3.3's ``ASEDriver`` asks every calculator for
stress, and with ``has_stress=False`` it builds a 9-vector its own (3, 3) check rejects, so
molecules failed either way. Only this driver serves the zero; the ASE calculator still has no
stress for molecules. The file is loaded by path, so it imports nnpcalc absolutely and is not
named ``ipi.py`` (i-PI registers it under its file name, which would shadow the ``ipi`` package).
"""

from __future__ import annotations

import numpy as np

__DRIVER_NAME__ = "nnpcalc"
__DRIVER_CLASS__ = "NNPDriver"

try:
    from ipi.pes._ase import ASEDriver
except ImportError as err:  # only i-PI imports this module
    raise ImportError("i-PI is not installed; install it with `pip install 'nnpcalc[ipi]'`.") from err


class NNPDriver(ASEDriver):
    """i-PI's ASE driver with an :class:`nnpcalc.NNPCalculator`; a zero virial for non-3D cells.

    Args:
        template: ASE-readable structure file.
        model: a model file or the name of a shipped model (default: the shipped default).
        dtype, device: the calculator's precision and device (i-PI itself is float64).
        charge: total charge in e (default: the template's ``info["charge"]``, else 0).
        uncertainty: also send ``forces_uncertainty`` in the extras (``energy_uncertainty`` goes
            whenever the model has it).
    """

    def __init__(self, template, model=None, dtype="float64", device="cpu", charge=None, uncertainty=False,
                 *args, **kwargs):
        self.model_name, self.dtype, self.device, self.charge = model, dtype, device, charge
        self.uncertainty = uncertainty
        super().__init__(template, *args, **kwargs)

    def check_parameters(self):
        """Read the template and load the model (i-PI calls this once, from ``__init__``)."""
        from nnpcalc.calculator import NNPCalculator

        super().check_parameters()
        if self.charge is not None:
            self.template_ase.info["charge"] = float(self.charge)
        # stress from the model only for a 3D cell (and unless has_stress=False); otherwise a zero
        # [3,3] virial: i-PI 3.3's own zero for has_stress=False is a flat 9-vector it then rejects
        self.serve_stress = bool(self.template_ase.pbc.all()) and "stress" in self.capabilities
        self.capabilities = [name for name in self.capabilities if name != "stress"] + ["stress"]
        if self.uncertainty not in (True, False):  # i-PI's -o parser gives bools for true/false only
            raise ValueError(f"uncertainty={self.uncertainty!r}: give uncertainty=true or uncertainty=false")
        self.ase_calculator = NNPCalculator(self.model_name, dtype=self.dtype, device=self.device,
                                            uncertainty=self.uncertainty)
        self.ase_calculator.model.check(self.template_ase)  # unknown elements fail before i-PI starts
        if not self.template_ase.has("initial_charges"):  # the calculator passes the template's, if any
            from nnpcalc.runtime import require_standard_inputs

            require_standard_inputs(self.ase_calculator.model, "the i-PI driver (its template has no initial_charges)")
        self.extras = self._extras(self.ase_calculator.model)

    def _extras(self, model) -> list[str]:
        """The uncertainty outputs sent in i-PI's extras (ASEDriver sends every property beyond
        energy, forces and stress)."""
        if self.uncertainty:
            from nnpcalc.workflows.uncertainty_watch import require_uncertainty

            require_uncertainty(model)
            return ["energy_uncertainty", "forces_uncertainty"]
        return ["energy_uncertainty"] if "energy_uncertainty" in model.outputs else []

    def compute_structure(self, cell: np.ndarray, pos: np.ndarray):
        """(energy, forces, virial, extras) in i-PI's units for i-PI's cell and positions (bohr)."""
        cell, pos = self.convert_units(cell, pos)
        structure = self.template_ase.copy()
        structure.positions[:] = pos
        structure.cell[:] = cell  # i-PI always has one; the template's pbc says whether it counts
        structure.calc = self.ase_calculator
        wanted = [name for name in self.capabilities if name != "stress" or self.serve_stress]
        properties = dict(structure.get_properties(wanted))
        for name in self.extras:  # computed with the rest (ASE's get_properties knows only its own names)
            properties[name] = structure.calc.get_property(name, structure)
        if not self.serve_stress:
            properties["stress"] = np.zeros((3, 3))  # no cell to deform: no virial
        return self.post_process(properties, structure)


if __name__ == "__main__":
    print(__file__)  # for `i-pi-py_driver -m custom -P "$(python -m nnpcalc.ipi_driver)"`
