"""A periodic water box in OpenMM: the same numbers as ASE, then a short Langevin MD.

Run with `.venv/bin/python examples/openmm_water.py` (needs `pip install 'nnpcalc[openmm]'`;
under a minute on one core). Uses the shipped default model when it is installed, else a
tiny random-weight model written to a temporary folder, so it also runs in CI.
"""

import tempfile
from pathlib import Path

import openmm
import openmm.unit as unit

from nnpcalc import NNPCalculator
from nnpcalc.systems import water_box
from nnpcalc.openmm import create_system, run_openmm_md
from nnpcalc.units import EV_TO_KJ_PER_MOL


def model_path(folder: Path):
    """The shipped default model (None) if installed, else a tiny random one."""
    from nnpcalc.zoo import DEFAULT, available

    if DEFAULT in available():
        return None
    from nnpcalc.nn.build import Architecture, build_potential, export

    arch = Architecture(elements=["H", "O"], backbone="tensornet", head_hidden=16,
                        backbone_kwargs={"hidden_channels": 16, "num_layers": 2, "num_rbf": 8, "cutoff_upper": 4.0})
    print("default model not installed: using a tiny random-weight model")
    return export(build_potential(arch), arch, folder / "tiny.pt")


def main(steps: int = 200) -> None:
    atoms = water_box()
    with tempfile.TemporaryDirectory() as tmp:
        model = model_path(Path(tmp))
        setup = create_system(atoms, model)  # PythonForce, or TorchForce when openmm-torch is installed
        context = openmm.Context(setup.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
        context.setPositions(setup.positions)
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        atoms.calc = NNPCalculator(model)
        print(f"{type(setup.force).__name__}: {energy / EV_TO_KJ_PER_MOL:.6f} eV   "
              f"ASE: {atoms.get_potential_energy():.6f} eV")
        summary = run_openmm_md(atoms, model, ensemble="nvt-langevin", temperature_K=300, timestep_fs=0.5,
                                steps=steps, outdir=Path(tmp) / "md", log_interval=50)
        print(Path(summary["log"]).read_text())
    print({k: summary[k] for k in ("force", "steps", "time_ps", "mean_temperature_K", "ns_per_day")})


if __name__ == "__main__":
    main()
