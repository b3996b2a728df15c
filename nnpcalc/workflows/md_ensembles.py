"""The MD ensembles: which ASE integrator each one is, and the integrator state a checkpoint carries.

Positions, momenta, cell and the random generator are checkpointed by ``md_state``; ``STATE``
lists what else each integrator keeps between steps (thermostat chains, barostat, volume
variable), so a resumed run continues exactly where the checkpoint was taken. Some of these
are private attributes of ASE's integrators (``_thermostat._eta``, ``_barostat._xi``,
``_cell0``): ``pyproject.toml`` pins the ASE minor release they were read from, and
:func:`make_integrator` checks that every one exists, failing loudly (before any step) when an
ASE release has renamed them. The table of ensembles (and OpenMM's integrator for each) is
``md_settings.ENSEMBLE_TABLE``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..units import FS_TO_ASE_TIME, GPA_TO_EV_PER_A3
from .md_settings import ENSEMBLE_TABLE

if TYPE_CHECKING:
    from ase import Atoms


#: integrator attributes (dotted paths) beyond positions and momenta that a checkpoint carries
STATE = {
    "nve": (),
    "nvt-langevin": (),
    "nvt-bussi": ("transferred_energy",),
    "nvt-nose-hoover": ("_thermostat._eta", "_thermostat._p_eta"),
    "npt": ("_thermostat._eta", "_thermostat._p_eta", "_barostat._xi", "_barostat._p_xi",
            "_eps", "_p_eps", "_volume0", "_cell0"),
}


#: the ASE releases whose integrators' private state ``STATE`` was read from (pyproject pins the same)
ASE_TESTED = "3.29"


def check_ensemble(name: str) -> str:
    if name not in ENSEMBLE_TABLE:
        raise ValueError(f"unknown ensemble {name!r}; choose one of {', '.join(ENSEMBLE_TABLE)}")
    return name


def check_state_attributes(dyn, ensemble: str) -> None:
    """Fail before the first step when this ASE's integrator lacks state a checkpoint must carry."""
    import ase

    missing = []
    for path in STATE[ensemble]:
        try:
            _resolve(dyn, path)
        except AttributeError:
            missing.append(path)
    if missing:
        raise ImportError(
            f"ase {ase.__version__}'s {type(dyn).__name__} has no {', '.join(missing)}, which nnpcalc's MD "
            f"checkpoints save and restore (read from ase {ASE_TESTED}); install the ASE release nnpcalc "
            f"supports: pip install 'ase>={ASE_TESTED},<3.30'")


def make_integrator(atoms: Atoms, settings, rng: np.random.Generator):
    """The ASE integrator of ``settings.ensemble`` on ``atoms`` (which carry their calculator)."""
    dyn = _integrator(atoms, settings, rng)
    check_state_attributes(dyn, settings.ensemble)
    return dyn


def _integrator(atoms: Atoms, settings, rng: np.random.Generator):
    from ase.md.bussi import Bussi
    from ase.md.langevin import Langevin
    from ase.md.nose_hoover_chain import IsotropicMTKNPT, NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet

    from .io import require_3d_cell

    s = settings
    dt = s.timestep_fs * FS_TO_ASE_TIME
    tau_t = s.tau_t_fs * FS_TO_ASE_TIME
    if s.ensemble == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    if s.ensemble == "nvt-langevin":
        return Langevin(atoms, dt, temperature_K=s.temperature_K, friction=s.friction_per_fs / FS_TO_ASE_TIME,
                        fixcm=False, rng=rng)
    if s.ensemble == "nvt-bussi":
        return Bussi(atoms, dt, temperature_K=s.temperature_K, taut=tau_t, rng=rng)
    if s.ensemble == "nvt-nose-hoover":
        return NoseHooverChainNVT(atoms, dt, temperature_K=s.temperature_K, tdamp=tau_t)
    require_3d_cell(atoms, "npt (constant pressure)")
    return IsotropicMTKNPT(atoms, dt, temperature_K=s.temperature_K, pressure_au=s.pressure_GPa * GPA_TO_EV_PER_A3,
                           tdamp=tau_t, pdamp=s.tau_p_fs * FS_TO_ASE_TIME)


def get_state(dyn, ensemble: str) -> dict[str, np.ndarray]:
    """The integrator's own state, as arrays keyed by attribute path."""
    return {path: np.array(_resolve(dyn, path), dtype=float) for path in STATE[ensemble]}


def set_state(dyn, ensemble: str, state: dict[str, np.ndarray]) -> None:
    for path in STATE[ensemble]:
        owner, _, name = path.rpartition(".")
        value = state[path]
        target = _resolve(dyn, owner) if owner else dyn
        setattr(target, name, value.copy() if value.ndim else float(value))


def _resolve(obj, path: str):
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def conserved_energy(dyn, ensemble: str, atoms: Atoms) -> float:
    """The quantity the integrator conserves (eV); NaN for Langevin, which conserves none."""
    total = atoms.get_potential_energy() + atoms.get_kinetic_energy()
    if ensemble == "nve":
        return float(total)
    if ensemble == "nvt-bussi":
        return float(total - dyn.transferred_energy)
    if ensemble == "nvt-langevin":
        return math.nan
    return float(dyn.get_conserved_energy())
