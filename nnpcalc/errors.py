"""Every error a user can cause, in one place. Each message names the bad value and the fix."""

from __future__ import annotations

from ase.calculators.calculator import PropertyNotImplementedError


class NNPError(Exception):
    """Base class of every nnpcalc error."""


class ModelFileError(NNPError, ValueError):
    """The file is missing, truncated, not an nnpcalc model, or of a newer format version."""


class UnknownElementError(NNPError, ValueError):
    """The structure holds an element the model was not trained on."""

    def __init__(self, unknown: list[str], known: list[str], model: str = "the model"):
        super().__init__(
            f"{model} does not support element(s) {', '.join(unknown)}; it knows "
            f"{', '.join(known)}. Use a model trained on these elements (`nnp info` lists the "
            "shipped ones) or remove those atoms."
        )
        self.unknown = unknown
        self.known = known


class InvalidStructureError(NNPError, ValueError):
    """NaN/inf positions, a periodic cell with no volume, mismatched shapes."""


class UnknownModelError(NNPError, ValueError):
    """A model name that is neither a file nor a shipped model."""


class DataError(NNPError, ValueError):
    """Bad training data or config: the message names the file, frame and label, and the fix."""


class InvalidChargeError(NNPError, ValueError):
    """A total charge that is not a finite number, beyond what the atoms can carry, or stated
    twice with two values (``atoms.info["charge"]`` and pymatgen's ``atoms.charge``)."""


class DeviceError(NNPError, ValueError):
    """A torch device that this machine does not have (``"cuda"`` without CUDA, ...)."""


class UnknownOptionError(NNPError, TypeError):
    """A keyword an API does not take (it would otherwise be silently ignored)."""


class StressUnavailableError(NNPError, PropertyNotImplementedError):
    """Stress asked of a structure whose cell has no volume (a molecule, a wire or tube whose
    open axes have zero-length vectors): there is no strain to differentiate by."""


class EngineSetupError(NNPError, ValueError):
    """An engine (LAMMPS, i-PI, torch-sim) is set up in a way the model cannot serve."""


class DispersionError(NNPError, ValueError):
    """A dispersion correction that would count dispersion twice (the model's reference method
    already has it, e.g. GFN2-xTB) or that does not apply (unknown method, not a functional)."""


class SimulationError(NNPError, RuntimeError):
    """A simulation went beyond sane (exploding forces or temperature); its output so far is kept."""


class RunDirectoryError(NNPError, ValueError):
    """An MD run directory that cannot be started or resumed: missing, damaged, locked by another
    writer, pointing outside itself, or asked to change the physics of the run it holds."""


class CheckpointError(RunDirectoryError):
    """A run's ``checkpoint.npz`` is damaged, truncated or does not match its ``run.json``."""


class ArtifactWarning(UserWarning):
    """An exported or compiled program (``nnpcalc.artifacts``) could not be built or loaded: the TorchScript file serves."""


class UncertaintyWarning(UserWarning):
    """A prediction's uncertainty is far above what the model was validated on."""


class OutputPathError(NNPError, ValueError):
    """An output location that cannot be written: its folder is missing or read-only, or a
    directory stands where a file is wanted. Checked before the work, not after."""


class OptionError(NNPError, ValueError):
    """An option (API keyword or CLI flag) out of range, non-finite, of the wrong type or an unknown
    choice; the message names the option, the value given and what it accepts."""
