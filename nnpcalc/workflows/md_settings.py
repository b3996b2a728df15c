"""The one settings object both MD engines (ASE and OpenMM) run from, and the one ensemble table.

:class:`MDSettings` is what ``run_md``, ``run_openmm_md`` and ``nnp md`` take (the CLI derives
its option defaults from it) and what ``run.json`` records. Each default says why it is what
it is. Importable without numpy, torch or ASE, so ``nnp md --help`` stays fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import PurePath

from ..errors import OptionError, UnknownOptionError


@dataclass(frozen=True)
class Ensemble:
    """One ensemble: the integrator each engine uses for it and what its log's conserved column holds."""

    name: str
    ase: str  #: ASE integrator
    openmm: str | None  #: OpenMM integrator; None: the OpenMM engine does not offer it
    thermostat: bool
    conserved: str


ENSEMBLE_TABLE = {e.name: e for e in (
    Ensemble("nve", "VelocityVerlet", "VerletIntegrator", False, "total energy"),
    Ensemble("nvt-langevin", "Langevin", "LangevinMiddleIntegrator", True, "none (NaN)"),
    Ensemble("nvt-nose-hoover", "NoseHooverChainNVT", "NoseHooverIntegrator", True,
             "total energy + the chain's energy"),
    Ensemble("nvt-bussi", "Bussi", None, True, "total energy − energy given to the bath"),
    Ensemble("npt", "IsotropicMTKNPT", "LangevinMiddleIntegrator + MonteCarloBarostat", True,
             "MTK conserved energy (ASE); none, NaN (OpenMM's Monte Carlo barostat)"),
)}
#: MD engines: ASE integrators, or OpenMM through ``nnpcalc.openmm.simulate``
ENGINES = ("ase", "openmm")
#: trajectory file types each engine writes
TRAJECTORY_SUFFIXES = {"ase": (".extxyz", ".traj"), "openmm": (".extxyz", ".dcd", ".xtc")}
#: settings a resumed run may change; every other one is the physics (or the records) of the run
RESUMABLE = ("steps", "device")


@dataclass
class MDSettings:
    """Everything that defines a run, for either engine (written to ``run.json``); units in the names."""

    #: plain Newtonian dynamics: a thermostat is a choice to make, and NVE's conserved energy checks model and step
    ensemble: str = "nve"
    #: room temperature; also the temperature of the starting velocities
    temperature_K: float = 300.0
    #: npt only; 0 GPa is 1 bar (1e-4 GPa) to far below a barostat's noise
    pressure_GPa: float = 0.0
    #: O–H stretches take ~9 fs: 0.5 fs gives ~18 steps per period, so NVE with hydrogens conserves energy
    timestep_fs: float = 0.5
    #: 0.5 ps at the default step: a short first look, extended with ``--resume --steps``
    steps: int = 1000
    #: runs repeat exactly unless a seed is chosen
    seed: int = 0
    #: ASE's integrators are the reference (all ensembles, exact resume); OpenMM is the fast path
    engine: str = "ase"
    #: extended XYZ: every ASE tool reads it, with momenta, energy and forces; both engines write it
    trajectory: str = "trajectory.extxyz"
    #: 5 fs between frames and log lines: smooth curves at a small file size
    trajectory_interval: int = 10
    log_interval: int = 10
    #: a checkpoint every 50 fs: a small file write beside 100 force calls; a crash loses at most 100 steps (ASE)
    checkpoint_interval: int = 100
    #: Langevin: 10/ps couples a small molecule to the bath within ~100 fs (OpenMM's 1/ps is for large solvated boxes)
    friction_per_fs: float = 0.01
    #: Nose-Hoover/Bussi/MTK: 200 steps of 0.5 fs, ASE's advice of ~100 steps, long beside molecular vibrations
    tau_t_fs: float = 100.0
    #: MTK barostat (ASE): ~1000 steps, ASE's advice; the volume must move slower than the temperature
    tau_p_fs: float = 1000.0
    #: Monte Carlo barostat (OpenMM): steps between volume moves, OpenMM's own default
    barostat_interval: int = 25
    #: eV/Å; larger forces stop the run as exploded (bonded forces stay below ~20 eV/Å)
    max_force: float = 100.0
    #: T above this × max(temperature_K, 100 K) stops the run as exploded
    max_temperature_factor: float = 10.0
    #: two atoms closer than this × the sum of their covalent radii stop the run as fused (0: no check);
    #: bonds sit near 1 × the sum (default model, 0.3 ps Langevin: ethanol ≥ 0.93 at 300 K, ≥ 0.90 at 1000 K;
    #: water ≥ 0.95 at 300 K); fused water reaches 0.05
    fused_distance_factor: float = 0.5
    #: eV/Å: the largest per-atom forces_uncertainty allowed, checked every trajectory_interval steps (models
    #: with an ensemble energy head, docs/uncertainty.md); 0: not watched, as a check costs K - 1 backward passes
    max_uncertainty: float = 0.0
    #: above max_uncertainty: flag (warn), save (append the frame to uncertain.extxyz, for labelling) or stop
    uncertainty_action: str = "save"
    #: float64: float32 rounding of the forces makes long NVE runs drift
    dtype: str = "float64"
    device: str = "cpu"
    model: str = ""  #: the model file's resolved path (recorded, not chosen)
    model_sha256: str = ""  #: its SHA-256 (recorded): a resume refuses another model

    def validate(self) -> MDSettings:
        """Raise ValueError naming the first setting that is out of range, and the fix."""
        _check_types(self)
        _check_choices(self)
        _check_numbers(self)
        check_trajectory_name(self.trajectory, self.engine)
        return self

    @classmethod
    def from_dict(cls, data: dict) -> MDSettings:
        """Settings from ``run.json``'s dictionary (unknown keys ignored, missing ones at their default)."""
        if not isinstance(data, dict):
            raise OptionError(f"expected a JSON object of settings, got {type(data).__name__}")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data}).validate()

    def as_dict(self) -> dict:
        return asdict(self)


#: the CLI's defaults and the API's are these
DEFAULTS = MDSettings()
FIELD_NAMES = tuple(f.name for f in fields(MDSettings))


def make_settings(**options) -> MDSettings:
    """MDSettings from keyword options, naming an unknown one and listing the valid ones."""
    unknown = sorted(set(options) - set(FIELD_NAMES))
    if unknown:
        raise UnknownOptionError(f"unknown MD setting(s) {', '.join(unknown)}; valid: {', '.join(FIELD_NAMES)}")
    return MDSettings(**options)


def check_trajectory_name(name: str, engine: str = "ase") -> str:
    """A plain file name in the run directory, of a type ``engine`` writes."""
    suffixes = TRAJECTORY_SUFFIXES[engine]
    if not name or PurePath(name).name != name or name in (".", "..") or "\\" in name:
        raise OptionError(f"trajectory {name!r} must be a plain file name (it is written inside the run "
                         "directory), e.g. trajectory.extxyz")
    if PurePath(name).suffix.lower() not in suffixes:
        raise OptionError(f"trajectory {name!r}: engine {engine} writes {', '.join(suffixes)}; "
                         f"use e.g. trajectory{suffixes[0]}")
    return name


def _check_types(s: MDSettings) -> None:
    for f in fields(s):
        value, kind = getattr(s, f.name), type(getattr(DEFAULTS, f.name))
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise OptionError(f"MD setting {f.name} must be {kind.__name__}, got {value!r} "
                             f"({type(value).__name__})")


def _check_choices(s: MDSettings) -> None:
    from .choices import DTYPES

    if s.ensemble not in ENSEMBLE_TABLE:
        raise OptionError(f"unknown ensemble {s.ensemble!r}; choose one of {', '.join(ENSEMBLE_TABLE)}")
    if s.engine not in ENGINES:
        raise OptionError(f"unknown engine {s.engine!r}; choose one of {', '.join(ENGINES)}")
    if s.engine == "openmm" and ENSEMBLE_TABLE[s.ensemble].openmm is None:
        offered = [e.name for e in ENSEMBLE_TABLE.values() if e.openmm]
        raise OptionError(f"engine openmm does not offer ensemble {s.ensemble}; use engine ase, or one of "
                         f"{', '.join(offered)}")
    if s.dtype not in DTYPES:
        raise OptionError(f"unknown dtype {s.dtype!r}; choose one of {', '.join(DTYPES)}")
    _check_uncertainty(s)


def _check_uncertainty(s: MDSettings) -> None:
    from .choices import UNCERTAINTY_ACTIONS

    if s.uncertainty_action not in UNCERTAINTY_ACTIONS:
        raise OptionError(f"unknown uncertainty action {s.uncertainty_action!r}; choose one of "
                          f"{', '.join(UNCERTAINTY_ACTIONS)}")


#: settings that must be > 0, and those that must be >= 0
_POSITIVE = ("timestep_fs", "trajectory_interval", "log_interval", "checkpoint_interval", "friction_per_fs",
             "tau_t_fs", "tau_p_fs", "barostat_interval", "max_force", "max_temperature_factor")
_NOT_NEGATIVE = ("temperature_K", "steps", "seed", "fused_distance_factor", "max_uncertainty")


def _check_numbers(s: MDSettings) -> None:
    for name in FIELD_NAMES:
        value = getattr(s, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionError(f"MD setting {name} must be a finite number, got {value}")
    for name in _POSITIVE:
        if not getattr(s, name) > 0:
            raise OptionError(f"{name} must be positive, got {getattr(s, name)}")
    for name in _NOT_NEGATIVE:
        if getattr(s, name) < 0:
            raise OptionError(f"{name} must be zero or more, got {getattr(s, name)}")
    if ENSEMBLE_TABLE[s.ensemble].thermostat and not s.temperature_K > 0:
        raise OptionError(f"ensemble {s.ensemble} needs a temperature_K above 0, got {s.temperature_K}")
    if s.fused_distance_factor >= 1:
        raise OptionError(f"fused_distance_factor must be below 1 (bonds sit at ~1 × the covalent radii), "
                         f"got {s.fused_distance_factor}; 0.5 is the default, 0 turns the check off")
