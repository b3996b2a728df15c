"""Checkpoints → model files: nnpcalc's own Lightning checkpoints and torchmd-net's."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from ..nn.build import export


def export_checkpoint(checkpoint: str | Path, output: str | Path, summary: dict | None = None) -> Path:
    """Write the model file of a training checkpoint, with its provenance in the metadata.

    ``summary`` is the run's summary (test metrics, epochs, time); when the training config has
    a ``summary`` text, a model card ``NAME.md`` is written beside the model file.
    """
    from .module import PotentialModule

    module = PotentialModule.load_from_checkpoint(str(checkpoint), map_location="cpu", weights_only=True)
    summary = summary or {}
    provenance = dict(module.provenance)
    provenance["checkpoint"] = Path(checkpoint).name
    if "test_metrics" in summary:
        provenance["test_metrics"] = {k.removeprefix("test_"): v for k, v in summary["test_metrics"].items()}
    provenance["training"] = {"epochs": summary.get("epochs"), "seconds": summary.get("seconds"),
                              "machine": _machine(), "threads": summary.get("threads"), "torch": torch.__version__}
    provenance["command"] = "nnp train " + str(summary.get("config", "CONFIG"))
    path = export(module.potential, module.architecture, output, provenance)
    from ..equivariance import on_held_out_frames, rotation_equivariant

    if not rotation_equivariant(module.architecture.backbone):  # measured on the file, then written into it
        provenance["equivariance"] = on_held_out_frames(path, module.hparams["config"])
        path = export(module.potential, module.architecture, output, provenance)
    card_summary = module.hparams["config"].get("summary", "")
    if card_summary:
        from .card import write_card

        write_card(path, card_summary)
    return path


def export_any(checkpoint: str | Path, output: str | Path) -> Path:
    """Export a checkpoint written by nnpcalc or by torchmd-net's ``torchmd-train``."""
    from .checkpoint import read_checkpoint

    raw = read_checkpoint(checkpoint)  # weights only: no code from the file runs
    config = raw.get("hyper_parameters", {})
    config = vars(config) if not isinstance(config, dict) and hasattr(config, "__dict__") else config
    if not isinstance(config, dict):
        config = {}
    if "config" in config:
        summary_file = Path(checkpoint).parent.parent / "summary.json"  # RUN_DIR/checkpoints/x.ckpt
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
        return export_checkpoint(checkpoint, output, summary)
    if "model" in config and "embedding_dimension" in config:
        from .torchmdnet import export_torchmdnet_checkpoint

        return export_torchmdnet_checkpoint(checkpoint, output)
    from ..errors import ModelFileError

    raise ModelFileError(
        f"{checkpoint} is neither an nnpcalc training checkpoint nor a torchmd-net one "
        "(no 'config' or torchmd-net hyperparameters inside)"
    )


def _machine() -> str:
    return f"{platform.machine()} {platform.processor() or ''}".strip()
