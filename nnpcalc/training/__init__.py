"""Training: reference data, composable tasks, the Lightning module, export. Never imported
by the runtime: a model file needs nothing but torch.

- ``reference``: deterministic reference data from GFN2-xTB (tblite) and ASE's EMT
- ``data``: labelled frames, validation, masks, grouped splits, batching
- ``tasks``: loss terms that compose
- ``module``: the LightningModule
- ``train``: config → checkpoints, logs, test metrics, exported model (`nnp train`)
- ``export``: checkpoint → model file (`nnp export`)
- ``card``: model cards from a model file's metadata
"""
