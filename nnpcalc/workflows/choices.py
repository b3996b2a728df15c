"""The named choices of the workflows, declared once and importable without torch or ASE.

The CLI offers these as ``click.Choice`` lists; the workflows validate against them.
"""

from ..properties import DTYPES  # model precisions, declared with their defaults there

#: MD ensembles (see ``md_ensembles`` for the integrator behind each)
ENSEMBLES = ("nve", "nvt-langevin", "nvt-nose-hoover", "nvt-bussi", "npt")
#: MD engines: ASE integrators here, or OpenMM through ``nnpcalc.openmm.simulate``
ENGINES = ("ase", "openmm")
#: ASE optimizers ``relax`` steps
OPTIMIZERS = ("FIRE", "BFGS", "LBFGS")
