"""Model cards: a Markdown page written from a model file's own metadata."""

from __future__ import annotations

from pathlib import Path

from .. import modelfile

ROWS = [
    ("energy per atom", "energy", 1e3, "meV/atom"),
    ("forces", "forces", 1.0, "eV/Å"),
    ("stress", "stress", 1.0, "eV/Å³"),
    ("charges", "charges", 1.0, "e"),
]


def metrics_table(metrics: dict) -> str:
    lines = ["| property | MAE | RMSE | unit |", "|---|---:|---:|---|"]
    for label, key, factor, unit in ROWS:
        if f"{key}_mae" in metrics:
            lines.append(f"| {label} | {metrics[f'{key}_mae'] * factor:.4g} | {metrics[f'{key}_rmse'] * factor:.4g} | {unit} |")
    return "\n".join(lines)


def uncertainty_section(prov: dict) -> str:
    """The ensemble head's calibration (validation split) and its coverage on the test split."""
    calibration = prov.get("uncertainty")
    if not calibration:
        return ""
    test = prov.get("test_metrics", {})
    lines = ["", "## Uncertainty (shallow ensemble)",
             "Calibrated on the validation split; coverage = fraction of errors within 1 and 2 predicted σ "
             "(a Gaussian gives 68 % and 95 %); rank = Spearman correlation of |error| and σ.", "",
             "| quantity | factor | val coverage 1σ / 2σ | test coverage 1σ / 2σ | test z RMS | test rank |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in ("energy", "forces"):
        if name in calibration:
            val = calibration[name]
            cov = [test.get(f"{name}_uncertainty_coverage_{b}sigma") for b in (1, 2)]
            test_cov = " / ".join(f"{c:.2f}" for c in cov) if None not in cov else "—"
            z, rank = test.get(f"{name}_uncertainty_z_rms"), test.get(f"{name}_uncertainty_rank_correlation")
            lines.append(f"| {name} | {val['calibration']:.4g} | {val['coverage_1sigma']:.2f} / "
                         f"{val['coverage_2sigma']:.2f} | {test_cov} | {_num(z)} | {_num(rank)} |")
    return "\n".join(lines) + "\n"


def _num(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def electrostatics_line(meta: dict) -> str:
    """The card's line on the Coulomb term (empty without one): method, and what trained the charges."""
    method = meta["architecture"].get("electrostatics", "none")
    if method == "none":
        return ""
    metrics = meta["provenance"].get("test_metrics", {})
    taught = "the energy and reference charges (auxiliary loss)" if any(k.startswith("charges_") for k in metrics) \
        else "the energy alone (no charge labels)"
    options = meta["architecture"].get("electrostatics_kwargs") or {}
    return (f"\n- electrostatics: {method}{f' {options}' if options else ''}, the Coulomb energy of the "
            f"predicted charges (docs/electrostatics.md); charges trained by {taught}")


def equivariance_line(prov: dict) -> str:
    """The card's line on a backbone that is not rotation-equivariant (empty for the others)."""
    error = prov.get("equivariance")
    if not error:
        return ""
    return (f"\n- not rotation-equivariant by construction: over {error['rotations']} random rotations of "
            f"{error['structures']} {error['split']} frames the energy spreads {error['energy_spread'] * 1e3:.3g} "
            f"meV/atom and the forces err by {error['forces_rms']:.3g} eV/Å RMS "
            f"({100 * error['forces_relative']:.3g} % of the RMS force); `nnpcalc.equivariance`")


def cost_line(training: dict) -> str:
    """The card's cost sentence; a checkpoint exported mid-run has no epoch count or time yet."""
    if training.get("epochs") is None or training.get("seconds") is None:
        return (f"Exported from a checkpoint of an unfinished run (no epoch count or time recorded), "
                f"torch {training.get('torch')}.")
    return (f"{training['epochs']} epochs in {training['seconds'] / 60:.1f} min on {training['machine']}, "
            f"{training['threads']} torch threads, torch {training['torch']}.")


def write_card(model_path: str | Path, summary: str) -> Path:
    """Write ``NAME.md`` beside the model file from its metadata; ``summary`` opens the card."""
    model_path = Path(model_path)
    meta = modelfile.read_metadata(model_path)
    prov = meta["provenance"]
    arch = meta["architecture"]
    data = "\n".join(f"- `{d['file']}`, sha256 `{d['sha256'][:16]}…`" for d in prov["data"])
    split = prov["split"]
    frames = sum(v for k, v in split.items() if k != "seed")
    training = prov["training"]
    text = f"""# {model_path.stem}

{summary}

- elements: {', '.join(meta['elements'])}; cutoff {meta['cutoff']} Å; outputs: {', '.join(meta['outputs'])}
- backbone: {meta['backbone']} {arch['backbone_kwargs']}; heads: {', '.join(meta['heads'])}
- fidelities: {', '.join(meta['fidelities'])}; saved as {meta['dtype']}{electrostatics_line(meta)}{equivariance_line(prov)}

## Data and split
{frames} frames labelled by {', '.join(meta['fidelities'])}:
{data}
- split (seed {split['seed']}): train {split['train']}, validation {split['val']}, test {split['test']} frames

## Held-out test errors
{metrics_table(prov.get('test_metrics', {})) if prov.get('test_metrics') else 'No test split.'}
{uncertainty_section(prov)}
## Cost
{cost_line(training)}

## Reproduce
```bash
OMP_NUM_THREADS=2 .venv/bin/{prov['command']}
```
Training is not bitwise reproducible across machines (thread scheduling, time budget), but
the data is: the generator is seeded and its hash is above.
"""
    path = model_path.with_suffix(".md")
    path.write_text(text)
    return path
