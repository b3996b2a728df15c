"""Reference labelling at scale: parallel, resumable, content-hashed.

A dataset is a list of *jobs*, each a JSON-able spec such as
``{"kind": "md", "system": "CH3NH3+", "method": "GFN2-xTB", "temperature_K": 300, ...}``
(kinds in :data:`SAMPLERS`, systems in :mod:`~nnpcalc.training.sampling`). A job is
deterministic; its key is the hash of its spec and :data:`VERSION`, and its labelled frames
are written to ``DIR/jobs/KEY.extxyz`` (atomically), so a killed build resumes where it
stopped and a changed job gets a new file. :func:`build` runs the missing jobs in a pool of
processes with progress, then writes the dataset file (the jobs' frames in list order) and a
manifest naming every job key and the file's sha256::

    OMP_NUM_THREADS=1 nice -n 15 python -m nnpcalc.training.labelling hcno-v2 data/hcno-v2.extxyz --workers 2

Every frame carries ``info["subset"]`` (for per-subset errors), ``info["group"]`` (job key and
block of 10 consecutive frames, for grouped splits) and ``info["charge"]``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from ase import Atoms, units

from . import reference, sampling
from .datasets import DATASETS

#: bump when a sampler changes what a spec produces (every job key changes with it)
VERSION = "1"
#: consecutive frames of one job that land in the same part of a grouped split
GROUP_BLOCK = 10


def job_key(spec: dict) -> str:
    text = json.dumps(spec, sort_keys=True) + VERSION
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def label_all(geometries: list[Atoms], method: str, charge: int) -> list[Atoms]:
    """Label each geometry; a geometry the reference cannot converge on is dropped."""
    calc = reference.calculator(method, charge)
    out = []
    for atoms in geometries:
        try:
            out.append(reference.label(atoms, calc, method, charge))
        except Exception as err:  # SCF failures (tblite raises its own types)
            print(f"  dropped a {atoms.get_chemical_formula()} geometry: {err}", file=sys.stderr)
    return out


def run_md(spec: dict) -> list[Atoms]:
    """Langevin MD on the reference itself; frames labelled as they are visited."""
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    atoms, charge = sampling.system(spec["system"], spec.get("seed", 0))
    calc = reference.calculator(spec["method"], charge)
    atoms.calc = calc
    rng = np.random.default_rng(spec.get("seed", 0))
    temperature = spec["temperature_K"]
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(atoms, spec.get("timestep_fs", 0.5) * units.fs, temperature_K=temperature,
                   friction=0.02 / units.fs, rng=rng, fixcm=False)
    frames = []
    for _ in range(spec["frames"]):
        dyn.run(spec["every"])
        frames.append(reference.label(atoms, calc, spec["method"], charge))
    return frames


def run_distort(spec: dict) -> list[Atoms]:
    atoms, charge = sampling.system(spec["system"], spec.get("seed", 0))
    geometries = sampling.distorted(atoms, spec["count"], spec.get("seed", 0), tuple(spec["scale"]), spec["rattle"])
    return label_all(geometries, spec["method"], charge)


def run_strain(spec: dict) -> list[Atoms]:
    atoms, charge = sampling.system(spec["system"], spec.get("seed", 0))
    geometries = sampling.strained(atoms, spec["count"], spec.get("seed", 0), spec["max_strain"], spec["rattle"])
    return label_all(geometries, spec["method"], charge)


def run_approach(spec: dict) -> list[Atoms]:
    """Two fragments brought together rigidly: dimer and molecule–molecule scans."""
    (a, qa), (b, qb) = (sampling.system(name, spec.get("seed", 0)) for name in spec["systems"])
    distances = np.linspace(*spec["distances"])
    geometries = sampling.approach(a, b, distances, spec.get("seed", 0))
    return label_all(geometries, spec["method"], qa + qb)


def run_bonds(spec: dict) -> list[Atoms]:
    """Every bond of a molecule (up to ``max_bonds``) stretched and compressed in turn."""
    atoms, charge = sampling.system(spec["system"], spec.get("seed", 0))
    geometries = []
    for i, j in sampling.bonds(atoms)[: spec.get("max_bonds", 8)]:
        geometries += sampling.bond_scan(atoms, i, j, np.linspace(*spec["scales"]))
    return label_all(geometries, spec["method"], charge)


def run_single(spec: dict) -> list[Atoms]:
    atoms, charge = sampling.system(spec["system"], spec.get("seed", 0))
    return label_all([atoms], spec["method"], charge)


def normal_modes(atoms: Atoms, calc, delta: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    """Mass-weighted Hessian eigenpairs at ``atoms`` by central finite differences of the forces:
    (λ in eV/(Å² amu), ascending; Cartesian unit-mass-weighted vectors as columns, shape (3N, 3N))."""
    n = len(atoms)
    hessian = np.zeros((3 * n, 3 * n))
    probe = atoms.copy()
    probe.calc = calc
    for k in range(3 * n):
        forces = []
        for sign in (1, -1):
            probe.positions = atoms.positions
            probe.positions[k // 3, k % 3] += sign * delta
            forces.append(probe.get_forces().ravel().copy())
        hessian[k] = -(forces[0] - forces[1]) / (2 * delta)
    hessian = 0.5 * (hessian + hessian.T)
    inv_sqrt_m = np.repeat(1 / np.sqrt(atoms.get_masses()), 3)
    return np.linalg.eigh(hessian * np.outer(inv_sqrt_m, inv_sqrt_m))


def run_modes(spec: dict) -> list[Atoms]:
    """Frames displaced along the reference's own normal modes about its own minimum (relaxed
    with BFGS to ``fmax``), at harmonic energies of k_B·T: each vibrational mode (rigid motions,
    the 6 — 5 if linear — lowest |λ|, dropped) once at +√(2 k_B T₁/λ) and once at −√(2 k_B T₂/λ)
    for ``temperatures_K`` = [T₁, T₂]; then ``combos`` thermal samples of all modes at once
    (each amplitude normal with variance k_B T/λ, T uniform in [T₁, T₂]). A displacement moving
    an atom by more than ``max_displacement`` Å is scaled down to that (soft torsions)."""
    from ase.optimize import BFGS

    atoms, charge = sampling.system(spec["system"], spec.get("seed", 0))
    calc = reference.calculator(spec["method"], charge)
    atoms.calc = calc
    BFGS(atoms, logfile=None).run(fmax=spec.get("fmax", 1e-3), steps=500)
    minimum = Atoms(atoms.numbers, atoms.positions.copy(), cell=atoms.cell, pbc=atoms.pbc)
    eigenvalues, vectors = normal_modes(minimum, calc)
    rigid = 5 if len(minimum) == 2 or _is_linear(minimum) else 6
    keep = np.sort(np.argsort(np.abs(eigenvalues))[rigid:])
    keep = keep[eigenvalues[keep] > 1e-4]  # real vibrations only (an unconverged soft mode is skipped)
    inv_sqrt_m = np.repeat(1 / np.sqrt(minimum.get_masses()), 3)
    cartesian = vectors[:, keep] * inv_sqrt_m[:, None]  # displacement per unit mass-weighted amplitude
    lam = eigenvalues[keep]
    low, high = spec["temperatures_K"]
    cap = spec["max_displacement"]

    def displaced(amplitudes):
        step = (cartesian @ amplitudes).reshape(-1, 3)
        biggest = np.linalg.norm(step, axis=1).max()
        if biggest > cap:
            step *= cap / biggest
        frame = minimum.copy()
        frame.positions += step
        return frame

    geometries = []
    for m in range(len(keep)):
        for sign, temperature in ((1, low), (-1, high)):
            amplitudes = np.zeros(len(keep))
            amplitudes[m] = sign * np.sqrt(2 * units.kB * temperature / lam[m])
            geometries.append(displaced(amplitudes))
    rng = np.random.default_rng(spec.get("seed", 0))
    for _ in range(spec["combos"]):
        temperature = rng.uniform(low, high)
        geometries.append(displaced(rng.normal(size=len(keep)) * np.sqrt(units.kB * temperature / lam)))
    return label_all(geometries, spec["method"], charge)


def _is_linear(atoms: Atoms) -> bool:
    centred = atoms.positions - atoms.positions.mean(axis=0)
    return bool(np.linalg.svd(centred, compute_uv=False)[1] < 1e-3)


#: job kind → function(spec) → labelled frames
SAMPLERS = {"md": run_md, "distort": run_distort, "strain": run_strain, "approach": run_approach,
            "bonds": run_bonds, "single": run_single, "modes": run_modes}


def run_job(spec: dict, directory: Path) -> tuple[str, int, float]:
    """Run one job unless its file exists; returns (key, frames, seconds)."""
    from ase.io import read, write

    key = job_key(spec)
    path = directory / f"{key}.extxyz"
    if path.is_file():
        return key, len(read(path, ":")), 0.0
    start = time.perf_counter()
    frames = SAMPLERS[spec["kind"]](spec)
    for k, frame in enumerate(frames):
        frame.info.update(subset=spec["subset"], group=f"{key}:{k // GROUP_BLOCK}", job=key)
    partial = path.with_suffix(".partial")
    write(partial, frames, format="extxyz")
    partial.rename(path)  # atomic: a killed job leaves no half file behind
    return key, len(frames), time.perf_counter() - start


def _run_job(args):
    return args[0], run_job(*args)


def run_jobs(jobs: list[dict], directory: Path, workers: int) -> None:
    """Run the missing jobs, ``workers`` processes at a time, printing progress."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    directory.mkdir(parents=True, exist_ok=True)
    done, start = 0, time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_job, (spec, directory)) for spec in jobs]
        for future in as_completed(futures):
            spec, (key, frames, seconds) = future.result()
            done += 1
            print(f"[{done}/{len(jobs)}] {key} {spec['kind']} {spec.get('system') or spec.get('systems')}: "
                  f"{frames} frames in {seconds:.0f} s (elapsed {time.perf_counter() - start:.0f} s)", flush=True)


def build(name: str, output: str | Path, workers: int = 1) -> Path:
    """Label dataset ``name`` (see :data:`DATASETS`) into ``output`` and ``output``.manifest.json."""
    from ase.io import read, write

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    output = Path(output)
    jobs = DATASETS[name]()
    directory = output.parent / f"{output.stem}.jobs"
    # several workers: slowest first (shortest makespan); one: the list's order (cheap jobs first
    # in a list means a killed build already holds them)
    run_jobs(jobs if workers == 1 else sorted(jobs, key=_cost, reverse=True), directory, workers)
    frames = [frame for spec in jobs for frame in read(directory / f"{job_key(spec)}.extxyz", ":")]
    write(output, frames, format="extxyz")
    manifest = {"dataset": name, "version": VERSION, "frames": len(frames),
                "sha256": hashlib.sha256(output.read_bytes()).hexdigest(),
                "jobs": [{"key": job_key(s), **s} for s in jobs]}
    output.with_suffix(".manifest.json").write_text(json.dumps(manifest, indent=1))
    return output


def _cost(spec: dict) -> float:
    """Rough relative cost, so the slow jobs start first."""
    size = 40.0 if "water-box" in str(spec.get("system")) else 1.0
    return size * (spec.get("frames", 1) * spec.get("every", 1) + spec.get("count", 0))


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Label a reference dataset (parallel, resumable).")
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("output")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    print(build(args.dataset, args.output, args.workers))

if __name__ == "__main__":
    main()
