"""`nnp compile [MODEL]`: build a model's exported or compiled program into the cache (see nnpcalc.artifacts)."""

from __future__ import annotations

import click

from ._options import device_option


@click.command("compile")
@click.argument("model", required=False)
@click.option("--dtype", "dtypes", multiple=True, type=click.Choice(["float32", "float64"]), default=("float32",),
              show_default=True, help="Precision to build for (repeat for both).")
@click.option("--artifact", type=click.Choice(["compiled", "exported"]), default="compiled", show_default=True,
              help="compiled: AOTInductor native kernels (minutes; what Model(artifact='auto') uses); "
              "exported: the torch.export program only (tens of seconds).")
@device_option
def command(model, dtypes, artifact, device):
    """Build MODEL's (a path or shipped name; default: the default model) program for this machine.

    Programs go to ~/.cache/nnpcalc/artifacts ($NNPCALC_CACHE_DIR moves it), keyed by the model
    file's sha256, nnpcalc's network code, torch, CPU, dtype and device; models loaded with
    artifact="auto" then use them.
    """
    import torch

    from nnpcalc import artifacts
    from nnpcalc.exported import slots_possible
    from nnpcalc.modelfile import load
    from nnpcalc.zoo import resolve

    path = resolve(model)
    # a TensorNet model with energy (and ZBL) heads alone also gets a program in slots for calls on several threads
    parallel = artifact == "compiled" and slots_possible(load(path)[1])
    for name in dtypes:
        for threads in (1, artifacts.PARALLEL_THREADS) if parallel else (1,):
            what = f"{artifact} program" + (f" in slots, kernels on {threads} threads," if threads > 1 else "")
            click.echo(f"building the {what} of {path.name} ({name}, {device}) ...")
            target = artifacts.build(path, artifact, getattr(torch, name), device, threads=threads)
            click.echo(f"wrote {target}")
            proxied = artifacts.proxied_ops(target) if artifact == "compiled" else []
            if proxied:  # each a dispatcher call outside the native kernels: slower small-system calls
                click.echo(f"note: {len(proxied)} op(s) run outside the compiled kernels (AOTInductor's proxy "
                           f"executor, no C shim in torch {torch.__version__}): {', '.join(proxied)}")
