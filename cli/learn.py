"""`nnp learn CONFIG -o DIR` / `nnp learn --resume DIR`: active learning rounds."""

from __future__ import annotations

import click

from ._options import quiet_option, show_progress, table


@click.command("learn")
@click.argument("config", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output-dir", default="learn-run", show_default=True,
              help="Run directory: learn.json, round-NNN/ (model, candidates, labelled frames, record), "
                   "rounds.json and rounds.png.")
@click.option("--resume", "rundir", type=click.Path(exists=True, file_okay=False),
              help="Continue the run in RUNDIR where it stopped (after a crash or kill).")
@quiet_option
def command(config, output_dir, rundir, quiet):
    """Explore with the model, label its most uncertain and diverse frames, retrain; repeat.

    CONFIG (YAML) names the round-0 model (with an ensemble energy head), the training recipe,
    the starting data, start structures, held-out test frames and the reference method; see
    docs/uncertainty.md. Every finished step is kept, so rerunning resumes.
    """
    from nnpcalc.workflows.learn import learn

    if (config is None) == (rundir is None):
        raise click.UsageError("give CONFIG (a new run in --output-dir) or --resume RUNDIR")
    records = learn(config, rundir or output_dir, progress=show_progress(quiet))
    rows = []
    for r in records:
        test = r["test"].get("all", {})
        rows.append([r["round"], r["pool_frames"], r["labelled_frames"],
                     test.get("forces", {}).get("mae"), test.get("energy_per_atom", {}).get("mae"),
                     test.get("uncertainty", {}).get("forces", {}).get("coverage_2sigma"),
                     r["exploration"]["stopped"], r["exploration"]["runs"]])
    click.echo(table(["round", "train frames", "labelled", "test F MAE eV/Å", "test E MAE eV/atom",
                      "F within 2σ", "failed runs", "runs"], rows))
    click.echo(f"wrote {rundir or output_dir}/rounds.json and rounds.png")
