"""The openmm-ml entry point: ``MLPotential("nnpcalc", ...)``.

Registered in the entry-point group ``openmmml.potentials`` as
``nnpcalc = "nnpcalc.openmm.plugin:NNPCalcPotentialImplFactory"``. openmm-ml imports every
entry point while ``import openmmml`` runs, with no error handling, so this module imports
nothing: torch, OpenMM-ML's base classes and the model load when a potential is created.
"""


class NNPCalcPotentialImplFactory:
    """Creates the implementation of ``MLPotential("nnpcalc", ...)``.

    Arguments of ``MLPotential("nnpcalc", model=None, dtype="float32", device="cpu",
    kind="auto", threads=1)``: see :func:`nnpcalc.openmm.create_force`; any other keyword is
    refused (:class:`~nnpcalc.errors.UnknownOptionError`), not ignored.
    """

    def createImpl(self, name: str, **args):
        from .mlpotential import CONSTRUCTOR_OPTIONS, NNPCalcPotentialImpl, check_options

        check_options(args, CONSTRUCTOR_OPTIONS, 'MLPotential("nnpcalc", ...)')
        return NNPCalcPotentialImpl(name, **args)
