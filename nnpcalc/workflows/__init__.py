"""Workflows: plain functions over ASE atoms (and pymatgen structures), used by scripts and `nnp`.

| module | function | what |
|---|---|---|
| ``relax`` | :func:`nnpcalc.relax` | positions (and cell) of one or many structures, batched |
| ``md`` | :func:`nnpcalc.run_md`, ``resume_md`` | MD with checkpoints that resume bit-for-bit (ASE or OpenMM engine) |
| ``md_settings`` | ``MDSettings`` | the one settings object and ensemble table of both MD engines |
| ``phonons`` | :func:`nnpcalc.phonons` | phonopy force constants, bands, DOS, thermal properties |
| ``evaluate`` | ``evaluate`` | MAE/RMSE against labelled data, parity plot |
| ``check`` | ``check`` | the physics self-check of a model (``nnpcalc.testing``) |
| ``io`` | ``read_structures``, ``write_structures`` | files and pymatgen objects |

The CLI (``nnp``) parses options, calls one of these and writes what it returns. phonopy,
pymatgen and matplotlib are imported inside the functions that need them.
"""
