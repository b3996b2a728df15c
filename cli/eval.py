"""`nnp eval MODEL DATA`: MAE and RMSE per property, a parity plot and, for models with an
uncertainty head, predicted-vs-actual error and a calibration plot."""

from __future__ import annotations

import click

from ._options import AT_LEAST_ONE, device_option, dtype_option, quiet_option, show_progress, table, writable_file


@click.command("eval")
@click.argument("model")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--parity", default="parity.png", show_default=True, type=click.Path(dir_okay=False),
              callback=writable_file,
              help="Parity plot (PNG); '' for none.")
@click.option("--calibration", default="calibration.png", show_default=True, type=click.Path(dir_okay=False),
              help="Calibration plot (PNG) of models with uncertainty outputs; '' for none.")
@click.option("--batch-size", type=AT_LEAST_ONE, default=16, show_default=True, help="Structures per model call.")
@click.option("--fidelity", default=None, help="Fidelity of a multi-fidelity model (name or index).")
@dtype_option
@device_option
@quiet_option
def command(model, data, parity, calibration, batch_size, fidelity, dtype, device, quiet):
    """Score MODEL on the labelled structures in DATA (ref_* keys or stored energy/forces)."""
    from nnpcalc.workflows.evaluate import evaluate

    fidelity = int(fidelity) if fidelity is not None and fidelity.isdigit() else fidelity
    result = evaluate(model, data, batch_size=batch_size, fidelity=fidelity, dtype=dtype,
                      device=device, progress=show_progress(quiet))
    if not result.metrics:
        raise click.ClickException(f"{data} holds no labels this model predicts (energy, forces, stress, "
                                   "charges, dipole as ref_* keys or stored results)")
    click.echo(table(["property", "MAE", "RMSE", "unit", "values"],
                     [[m.name, m.mae, m.rmse, m.unit, m.count] for m in result.metrics]))
    click.echo(f"{result.frames} structures")
    if parity:
        click.echo(f"wrote {result.plot_parity(parity)}")
    if result.uncertainty:
        rows = [[name, s["error_rms"], s["sigma_mean"], s["coverage_1sigma"], s["coverage_2sigma"], s["z_rms"],
                 s["rank_correlation"]] for name, s in result.uncertainty_scores().items()]
        click.echo("predicted uncertainty against actual error (a calibrated model: 1σ 0.68, 2σ 0.95, z RMS 1)")
        click.echo(table(["property", "RMS error", "mean σ", "within 1σ", "within 2σ", "z RMS", "rank corr."], rows))
        if calibration:
            click.echo(f"wrote {result.plot_calibration(calibration)}")
