"""``python -m nnpcalc ARGS`` runs ``nnp ARGS`` (what DDP training re-launches on each rank)."""

from nnpcalc.cli.main import main

if __name__ == "__main__":
    main(prog_name="nnp")
