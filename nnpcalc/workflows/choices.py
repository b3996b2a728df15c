"""The named choices of the workflows, declared once and importable without torch or ASE.

The CLI offers these as ``click.Choice`` lists; the workflows validate against them.
"""

from ..properties import DTYPES  # model precisions, declared with their defaults there
from .md_settings import ENGINES, ENSEMBLE_TABLE

#: MD ensembles (``md_settings.ENSEMBLE_TABLE``: the integrator of each engine behind each)
ENSEMBLES = tuple(ENSEMBLE_TABLE)
#: ASE optimizers ``relax`` steps
OPTIMIZERS = ("FIRE", "BFGS", "LBFGS")
#: what a run does above its uncertainty limit (``uncertainty_watch``): warn, save the frame, save and stop
UNCERTAINTY_ACTIONS = ("flag", "save", "stop")
