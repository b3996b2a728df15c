"""Active learning: explore with the current model, label what it is unsure of, retrain, repeat.

``nnp learn CONFIG -o DIR`` (or :func:`learn`). Round k holds model k (round 0: the given
file) and does, each step skipped when its output exists (so a killed run resumes):

1. ``model.pt``: fine-tune model k-1 (``init_from``) or retrain from scratch on the pool
   (the starting data plus every round's labelled frames), with the recipe's tasks;
2. ``assessment.json``: errors on the held-out test frames, per ``info["subset"]``, and how
   well the predicted uncertainty covers them;
3. ``candidates.extxyz`` + ``exploration.json``: Langevin MD at each temperature (and
   relaxations) from every start structure with model k; trajectories that blow up, fuse atoms
   or leave the validated range stop, and the number that stopped is the round's failure count;
4. ``labelled.extxyz`` (rounds before the last): the most uncertain, diverse candidates
   (``selection.select``) labelled by the reference method.

``rounds.json`` and ``rounds.png`` collect one record per round (data size, held-out errors,
uncertainty coverage, failures).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read, write

from ..errors import OptionError
from . import exploration
from .common import as_model, optional

CONFIG_NAME = "learn.json"


@dataclass
class LearnConfig:
    """What ``nnp learn`` reads from its YAML config (paths relative to the working directory)."""

    model: str  #: round-0 model file; it must have an ensemble energy head (uncertainty outputs)
    recipe: str | dict  #: training config (nnp train) whose tasks/architecture/trainer every round uses
    data: list[str]  #: labelled frames the round-0 model was trained on: the pool starts with them
    structures: list[str]  #: start geometries for the exploration (every frame of these files)
    test: list[str] = field(default_factory=list)  #: held-out labelled frames scored every round
    method: str = "EMT"  #: reference: EMT, GFN2-xTB, GFN1-xTB or "module:factory" (factory(charge) -> ASE calculator)
    rounds: int = 3  #: labelling rounds (models 1..rounds are trained)
    frames_per_round: int = 12
    min_uncertainty: float = 0.0  #: eV/Å: candidates below this are never labelled
    retrain: bool = False  #: True: every round trains from scratch; False: fine-tune the previous model
    max_epochs: int | None = None  #: per round (overrides the recipe's trainer)
    max_minutes: float | None = None  #: per round
    explore: dict = field(default_factory=dict)  #: see :class:`~nnpcalc.workflows.exploration.ExploreSettings`
    seed: int = 0

    def __post_init__(self):
        if self.rounds < 0 or self.frames_per_round < 1:
            raise OptionError(f"rounds must be >= 0 and frames_per_round >= 1, got {self.rounds}, {self.frames_per_round}")
        for name in ("data", "structures", "test"):
            if isinstance(getattr(self, name), str):
                setattr(self, name, [getattr(self, name)])
        exploration.ExploreSettings(**self.explore)  # refuse bad keys now


def load_config(config: str | Path | dict) -> LearnConfig:
    """A :class:`LearnConfig` from YAML or a dict, unknown keys refused by name."""
    if not isinstance(config, dict):
        import yaml

        config = yaml.safe_load(Path(config).read_text())
    known = set(LearnConfig.__dataclass_fields__)
    unknown = set(config) - known
    if unknown:
        raise OptionError(f"unknown learn config key(s) {sorted(unknown)}; valid: {sorted(known)}")
    return LearnConfig(**config)


def learn(config: str | Path | dict | None, outdir: str | Path, *, progress: bool = False) -> list[dict]:
    """Run (or resume, with ``config`` None) the rounds in ``outdir``; returns the round records."""
    outdir = Path(outdir)
    settings = _settings(config, outdir)
    records = []
    for k in range(settings.rounds + 1):
        records.append(run_round(settings, outdir, k, progress))
        (outdir / "rounds.json").write_text(json.dumps(records, indent=1))
    plot_rounds(records, outdir / "rounds.png")
    return records


def _settings(config, outdir: Path) -> LearnConfig:
    """The config of a new run (written to ``outdir``), or the one a resumed run was started with."""
    saved = outdir / CONFIG_NAME
    if config is None:
        if not saved.is_file():
            raise OptionError(f"{outdir} holds no {CONFIG_NAME}: give a config to start a run there")
        return load_config(json.loads(saved.read_text()))
    settings = load_config(config)
    if isinstance(settings.recipe, str):
        import yaml

        settings.recipe = yaml.safe_load(Path(settings.recipe).read_text())
    if saved.is_file() and json.loads(saved.read_text()) != json.loads(json.dumps(asdict(settings))):
        raise OptionError(f"{outdir} holds a learn run with another config; resume it with `nnp learn --resume "
                          f"{outdir}` or choose a new output directory")
    outdir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(asdict(settings), indent=1))
    return settings


def run_round(settings: LearnConfig, outdir: Path, k: int, progress: bool) -> dict:
    """Model k, its assessment and exploration, and (before the last round) the frames it labels."""
    folder = outdir / f"round-{k:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    model_path = _model(settings, outdir, k)
    assessment = _cached(folder / "assessment.json", lambda: assess(model_path, settings.test))
    explored = _cached(folder / "exploration.json", lambda: _explore(settings, model_path, folder, k, progress))
    new = 0
    if k < settings.rounds:
        labelled = folder / "labelled.extxyz"
        if not labelled.is_file():
            _select_and_label(settings, model_path, folder, labelled)
        new = len(read(labelled, ":")) if labelled.stat().st_size else 0
    record = {"round": k, "model": str(model_path), "pool_frames": _pool_size(settings, outdir, k),
              "labelled_frames": new, "test": assessment, "exploration": explored}
    (folder / "record.json").write_text(json.dumps(record, indent=1))
    return record


def _cached(path: Path, make) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    value = make()
    path.write_text(json.dumps(value, indent=1))
    return value


def pool_files(settings: LearnConfig, outdir: Path, k: int) -> list[str]:
    """The labelled files model k is trained on: the starting data and rounds 0..k-1's frames."""
    rounds = [outdir / f"round-{j:03d}" / "labelled.extxyz" for j in range(k)]
    return list(settings.data) + [str(p) for p in rounds if p.is_file() and p.stat().st_size]


def _pool_size(settings: LearnConfig, outdir: Path, k: int) -> int:
    return sum(len(read(f, ":")) for f in pool_files(settings, outdir, k))


def _model(settings: LearnConfig, outdir: Path, k: int) -> Path:
    """Model k: the given file for round 0, else trained on the pool (resumes an interrupted training)."""
    path = outdir / f"round-{k:03d}" / "model.pt"
    if path.is_file():
        return path
    if k == 0:
        shutil.copyfile(settings.model, path)
        return path
    from ..training.train import train

    train(round_config(settings, outdir, k))
    return path


def round_config(settings: LearnConfig, outdir: Path, k: int) -> dict:
    """The training config of round k: the recipe on the pool, fine-tuning model k-1 unless retraining."""
    folder = outdir / f"round-{k:03d}"
    config = json.loads(json.dumps(settings.recipe))  # a deep copy
    config["data"] = {**config["data"], "files": pool_files(settings, outdir, k)}
    config["data"].pop("generate", None)
    config |= {"name": f"learn-round-{k}", "run_dir": str(folder / "train"), "output": str(folder / "model.pt"),
               "seed": settings.seed + k}
    config["trainer"] = dict(config.get("trainer") or {}) | {"progress": False}
    for key in ("max_epochs", "max_minutes"):
        if getattr(settings, key) is not None:
            config["trainer"][key] = getattr(settings, key)
    if not settings.retrain:
        config["init_from"] = str(outdir / f"round-{k - 1:03d}" / "model.pt")
    how = "retrained from scratch" if settings.retrain else f"fine-tuned from round {k - 1}"
    config["summary"] = f"`nnp learn` round {k}: {how} with the frames rounds 0–{k - 1} labelled. " + \
        config.get("summary", "")
    return config


def assess(model_path: Path, test_files: list[str]) -> dict:
    """Held-out errors (MAE per property) and uncertainty coverage, overall and per ``info["subset"]``."""
    from .evaluate import evaluate

    frames = [f for path in test_files for f in read(path, ":")]
    if not frames:
        return {}
    model = as_model(str(model_path), "float64")
    groups = {"all": frames}
    for frame in frames:
        if "subset" in frame.info:
            groups.setdefault(str(frame.info["subset"]), []).append(frame)
    out = {}
    for name, group in groups.items():
        result = evaluate(model, group)
        out[name] = {m.name: {"mae": m.mae, "rmse": m.rmse} for m in result.metrics}
        out[name]["uncertainty"] = result.uncertainty_scores()
    return out


def _explore(settings: LearnConfig, model_path: Path, folder: Path, k: int, progress: bool) -> dict:
    starts = [a for path in settings.structures for a in read(path, ":")]
    model = as_model(str(model_path), "float64")
    params = exploration.ExploreSettings(**settings.explore)
    candidates, stats = exploration.explore(model, starts, params, seed=settings.seed + 1000 * k, progress=progress)
    write(folder / "candidates.extxyz", candidates, format="extxyz")
    return stats


def _select_and_label(settings: LearnConfig, model_path: Path, folder: Path, labelled: Path) -> None:
    from .selection import select

    candidates = read(folder / "candidates.extxyz", ":")
    scores = np.array([c.info["max_forces_uncertainty"] for c in candidates])
    chosen = select(candidates, scores, settings.frames_per_round, settings.min_uncertainty)
    frames = label([candidates[i] for i in chosen], settings.method)
    write(labelled, frames, format="extxyz")  # an empty file when nothing was uncertain enough


def label(frames: list[Atoms], method: str) -> list[Atoms]:
    """Reference labels (``ref_*`` keys) for ``frames``, each with its own total charge.

    A frame the reference method fails on (an SCF that does not converge on fused atoms, ...)
    is skipped with a warning naming it, not the round.
    """
    import warnings

    from ..charge import total_charge
    from ..training import reference

    out = []
    for index, atoms in enumerate(frames):
        charge = int(round(total_charge(atoms)))
        calc = _user_calculator(method, charge) if ":" in method else reference.calculator(method, charge)
        try:
            labelled = reference.label(atoms, calc, method, charge)
        except Exception as err:  # noqa: BLE001 - any calculator's failure on one geometry
            warnings.warn(f"{method} could not label frame {index} ({atoms.get_chemical_formula()}, "
                          f"{atoms.info.get('source', '')}): {err}; skipped", stacklevel=2)
            continue
        labelled.info.update({k: v for k, v in atoms.info.items() if k in ("subset", "source", "max_forces_uncertainty")})
        out.append(labelled)
    return out


def _user_calculator(spec: str, charge: int):
    """``module:factory``: an ASE calculator from the user's code, made for total charge ``charge``."""
    import importlib

    module, _, name = spec.partition(":")
    factory = getattr(importlib.import_module(module), name, None)
    if factory is None:
        raise OptionError(f"reference method {spec!r}: {module} has no {name!r}")
    return factory(charge)


def plot_rounds(records: list[dict], path: Path) -> Path | None:
    """Held-out force and energy MAE per subset, failures and data size against the round."""
    if not records:
        return None
    figure = optional("matplotlib.figure")
    fig = figure.Figure(figsize=(12, 3.6), layout="constrained")
    ax_f, ax_e, ax_x = fig.subplots(1, 3)
    rounds = [r["round"] for r in records]
    for subset in records[0]["test"]:
        for ax, key, scale in ((ax_f, "forces", 1.0), (ax_e, "energy_per_atom", 1e3)):
            values = [r["test"].get(subset, {}).get(key, {}).get("mae", np.nan) * scale for r in records]
            ax.plot(rounds, values, "o-", label=subset)
    ax_f.set(xlabel="round", ylabel="force MAE (eV/Å)", yscale="log", title="held-out forces")
    ax_e.set(xlabel="round", ylabel="energy MAE (meV/atom)", yscale="log", title="held-out energy")
    ax_f.legend(fontsize=7)
    ax_x.bar(rounds, [r["exploration"]["stopped"] for r in records], color="C3", label="stopped runs")
    twin = ax_x.twinx()
    twin.plot(rounds, [r["pool_frames"] for r in records], "ko-", label="training frames")
    ax_x.set(xlabel="round", ylabel="exploration runs that failed", title="failures and data")
    for ax in (ax_f, ax_e, ax_x):
        ax.set_xticks(rounds)
    twin.set_ylabel("training frames")
    fig.savefig(path, dpi=120)
    return path
