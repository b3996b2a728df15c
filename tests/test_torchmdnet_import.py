"""`nnp export` of torchmd-net checkpoints: the model file gives upstream's energies and forces."""

import numpy as np
import pytest
import torch

pytest.importorskip("torchmdnet")
ase_build = pytest.importorskip("ase.build")

from ase import Atoms  # noqa: E402

from nnpcalc import NNPCalculator, modelfile  # noqa: E402
from nnpcalc.errors import InvalidStructureError, ModelFileError  # noqa: E402
from nnpcalc.training import torchmdnet as tmd  # noqa: E402
from nnpcalc.training.export import export_any  # noqa: E402

E_TOL, F_TOL = 1e-8, 1e-7  # eV, eV/Å (float64)

#: torchmd-train's argument defaults (torchmd-net 3.1 scripts/train.py) plus what LNNP adds
TRAIN_DEFAULTS = {
    "load_model": None, "conf": None, "num_epochs": 300, "batch_size": 32, "inference_batch_size": None,
    "lr": 1e-4, "lr_patience": 10, "lr_metric": "val", "lr_min": 1e-6, "lr_factor": 0.8,
    "lr_warmup_steps": 0, "early_stopping_patience": 30, "early_stopping_monitor": "val_total_mse_loss",
    "reset_trainer": False, "weight_decay": 0.0, "ema_alpha_y": 1.0, "ema_alpha_neg_dy": 1.0, "ngpus": -1,
    "num_nodes": 1, "precision": 32, "log_dir": "/tmp/logs", "splits": None, "train_size": None,
    "val_size": 0.05, "test_size": 0.1, "test_interval": -1, "save_interval": 10, "seed": 1,
    "num_workers": 4, "redirect": False, "gradient_clipping": 0.0, "remove_ref_energy": False,
    "checkpoint_monitor": "val_total_mse_loss", "load_weights": None, "dataset": "Custom",
    "dataset_root": "~/data", "dataset_arg": None, "coord_files": None, "embed_files": None,
    "energy_files": None, "force_files": None, "dataset_preload_limit": 1024, "y_weight": 1.0,
    "neg_dy_weight": 1.0, "train_loss": "mse_loss", "train_loss_arg": {}, "model": "graph-network",
    "output_model": "Scalar", "output_mlp_num_layers": 0, "prior_model": None, "charge": False,
    "spin": False, "embedding_dimension": 256, "num_layers": 6, "num_rbf": 64, "activation": "silu",
    "rbf_type": "expnorm", "trainable_rbf": False, "neighbor_embedding": False, "aggr": "add",
    "distance_influence": "both", "attn_activation": "silu", "num_heads": 8, "vector_cutoff": False,
    "equivariance_invariance_group": "O(3)", "box_vecs": None, "static_shapes": False,
    "derivative": False, "cutoff_lower": 0.0, "cutoff_upper": 5.0, "atom_filter": -1, "max_z": 100,
    "max_num_neighbors": 32, "standardize": False, "reduce_op": "add", "wandb_use": False,
    "wandb_name": "training", "wandb_project": "training_", "wandb_resume_from_id": None,
    "tensorboard_use": False,
}
SMALL = {
    "embedding_dimension": 16, "num_layers": 2, "num_rbf": 8, "cutoff_upper": 4.0, "max_z": 10,
    "derivative": True, "precision": 64, "max_num_neighbors": 64, "num_heads": 2,
    "prior_model": "Atomref", "prior_args": [{"max_z": 10, "trainable": False, "enable": True}],
    "standardize": True,
}
#: torchmd-net's ZBL prior in eV and Å (what a dataset's atomic_number/distance/energy_scale give)
ZBL_ARGS = {"cutoff_distance": 3.0, "max_num_neighbors": 64, "atomic_number": list(range(10)),
            "distance_scale": 1e-10, "energy_scale": 1.602176634e-19}
CASES = {
    "tensornet": {"model": "tensornet"},
    "et": {"model": "equivariant-transformer", "neighbor_embedding": True, "trainable_rbf": True},
    # no prior, no standardisation, averaged energies, SO(3), the total charge as an input
    # Atomref then ZBL (a molecule-wise prior, added after the mean)
    "et-zbl": {"model": "equivariant-transformer", "prior_model": ["Atomref", "ZBL"],
               "prior_args": [{"max_z": 10, "trainable": False, "enable": True}, ZBL_ARGS]},
    "tensornet-mean-charge": {"model": "tensornet", "prior_model": None, "prior_args": [], "standardize": False,
                              "reduce_op": "mean", "equivariance_invariance_group": "SO(3)", "charge": True},
}


def write_checkpoint(path, hparams, seed=0):
    """A Lightning checkpoint as torchmd-train writes it, from randomly perturbed weights."""
    from torchmdnet.models.model import create_model

    torch.manual_seed(seed)
    standardize = hparams["standardize"]
    mean, std = (torch.tensor([-3.7]), torch.tensor([0.8])) if standardize else (None, None)
    model = create_model(dict(hparams), mean=mean, std=std)  # what LNNP builds
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # includes the (frozen) Atomref table
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    state = {"model." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.5.0", "state_dict": state,
                "hparams_name": "hparams", "hyper_parameters": dict(hparams)}, path)
    return path


def upstream_model(path):
    from torchmdnet.models.model import load_model

    model = load_model(str(path), derivative=True)
    for module in model.modules():
        if hasattr(module, "opt"):
            module.opt = False  # TensorNet's pure-python path
    return model


def periodic_box(seed=0):
    """48 atoms (H, C, N, O, F) on a jittered grid in an orthorhombic box wider than 2 × cutoff."""
    rng = np.random.default_rng(seed)
    cell = np.diag([8.6, 9.0, 9.4])
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(3), indexing="ij"), -1).reshape(-1, 3)
    frac = (grid + 0.5 + rng.uniform(-0.15, 0.15, grid.shape)) / [4, 4, 3]
    return Atoms(numbers=rng.choice([1, 6, 7, 8, 9], len(grid)), scaled_positions=frac, cell=cell, pbc=True)


def upstream_results(model, atoms, charge=None):
    pos = torch.tensor(atoms.positions, dtype=torch.float64)
    z = torch.tensor(atoms.numbers, dtype=torch.long)
    box = torch.tensor(atoms.cell.array, dtype=torch.float64) if atoms.pbc.any() else None
    q = None if charge is None else torch.tensor([float(charge)], dtype=torch.float64)
    y, neg_dy = model(z, pos, torch.zeros_like(z), box=box, q=q)
    return float(y.detach().reshape(())), neg_dy.detach().numpy()


def ours(calc, atoms, charge=0):
    atoms = atoms.copy()
    atoms.info["charge"] = charge
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()


@pytest.mark.parametrize("case", list(CASES))
def test_exported_checkpoint_matches_upstream(pure_python_tensornet, tmp_path, case):
    hparams = {**TRAIN_DEFAULTS, **SMALL, **CASES[case]}
    ckpt = write_checkpoint(tmp_path / "epoch=3.ckpt", hparams)
    path = export_any(ckpt, tmp_path / "model.pt")
    upstream = upstream_model(ckpt)
    calc = NNPCalculator(path, dtype="float64")
    meta = modelfile.read_metadata(path)
    from_atomref = ["H", "He", "Li", "Be", "B", "C", "N", "O", "F"]  # every Z < max_z has a value
    assert meta["elements"] == (from_atomref if hparams["prior_model"] else ["H", "C", "N", "O", "F"])
    assert meta["dtype"] == "float64" and meta["provenance"]["source"] == "torchmd-net"
    structures = {"ethanol": ase_build.molecule("CH3CH2OH"), "box": periodic_box()}
    for name, atoms in structures.items():
        energy, forces = ours(calc, atoms)
        ref_energy, ref_forces = upstream_results(upstream, atoms)
        assert abs(energy - ref_energy) < E_TOL, (name, energy, ref_energy)
        assert np.abs(forces - ref_forces).max() < F_TOL, name
    # charge: TensorNet trained with `charge` uses it; trained without, it saw (and sees) 0
    energy, forces = ours(calc, structures["ethanol"], charge=1)
    ref_energy, ref_forces = upstream_results(upstream, structures["ethanol"], 1 if hparams["charge"] else None)
    assert abs(energy - ref_energy) < E_TOL and np.abs(forces - ref_forces).max() < F_TOL


def test_old_tensornet_layout_is_remixed_like_upstream(tmp_path):
    """Checkpoints with `check_errors` stored [F, 3]-ordered rows; load_model reorders them."""
    hparams = {**TRAIN_DEFAULTS, **SMALL, "model": "tensornet"}
    new = torch.load(write_checkpoint(tmp_path / "new.ckpt", hparams), weights_only=False)
    for key in ["tensor_embedding.linears_scalar.1"] + [f"layers.{i}.linears_scalar.2" for i in range(2)]:
        for suffix in (".weight", ".bias"):
            name = f"model.representation_model.{key}{suffix}"
            value = new["state_dict"][name]
            rows = value.shape[0]
            new["state_dict"][name] = value.reshape(3, rows // 3, -1).transpose(0, 1).reshape(value.shape)
    new["hyper_parameters"]["check_errors"] = True
    torch.save(new, tmp_path / "old.ckpt")
    with pytest.warns(UserWarning, match="Old-format checkpoint"):
        upstream = upstream_model(tmp_path / "old.ckpt").state_dict()
    state = tmd.state_dict_from_checkpoint(tmp_path / "old.ckpt")
    backbone = [k for k in state if k.startswith("representation_model.") and ".distance." not in k]
    assert all(torch.equal(state[k], upstream[k]) for k in backbone)


@pytest.mark.parametrize("change,match", [
    ({"model": "graph-network"}, "tensornet, tensornet2, equivariant-transformer"),
    ({"model": "tensornet", "output_model": "DipoleMoment"}, "output model 'DipoleMoment'"),
    ({"model": "tensornet", "prior_model": ["Atomref", "D2"]}, r"D2 prior_args lack"),
    ({"model": "tensornet", "prior_model": ["Coulomb"]}, r"Coulomb prior_args lack \['lower_switch_distance'"),
    ({"model": "tensornet", "output_model": "ScalarPlusWeightedCoulomb"}, "reads the charge channels of model tensornet2"),
    ({"model": "tensornet", "prior_model": "ZBL", "prior_args": {**ZBL_ARGS, "cutoff_distance": 9.0}},
     "exceeds the model's cutoff_upper"),
])
def test_unsupported_checkpoints_are_refused(tmp_path, change, match):
    torch.save({"hyper_parameters": {**TRAIN_DEFAULTS, **change}, "state_dict": {}}, tmp_path / "x.ckpt")
    with pytest.raises(ModelFileError, match=match):
        export_any(tmp_path / "x.ckpt", tmp_path / "x.pt")


def test_elements_outside_the_embedding_are_refused():
    with pytest.raises(ValueError, match="atomic numbers 1..9"):
        tmd.architecture_from_hparams({**TRAIN_DEFAULTS, **SMALL, "model": "tensornet"}, ["H", "Cu"])


# --- D2 prior, TensorNet2 and its ScalarPlusWeightedCoulomb output model (issue 15, item 5) ---

#: torchmd-net's D2 prior in eV and Å, reaching beyond the backbone's cutoff (its own pair list)
D2_ARGS = {"cutoff_distance": 10.0, "max_num_neighbors": 128, "atomic_number": list(range(100)),
           "distance_scale": 1e-10, "energy_scale": 1.602176634e-19}
ATOMREF = {"max_z": 10, "trainable": False, "enable": True}
#: per-layer, per-channel weights of the Coulomb energies (num_layers + 1 rows of q_dim)
Q_WEIGHTS = [[0.3, 0.7], [1.0, 0.5], [0.2, 2.0]]
TENSORNET2_CASES = {
    # TensorNet2 with the plain Scalar output (its charges steer the layers, no Coulomb term)
    "tensornet2": {"model": "tensornet2", "q_dim": 2},
    # every pair of a molecule (upstream refuses boxes in this mode), an MLP with one hidden layer, D2 and ZBL
    "tensornet2-coulomb": {"model": "tensornet2", "q_dim": 2, "output_model": "ScalarPlusWeightedCoulomb",
                           "q_weights": Q_WEIGHTS, "output_mlp_num_layers": 1,
                           "prior_model": ["Atomref", "D2", "ZBL"], "prior_args": [ATOMREF, D2_ARGS, ZBL_ARGS]},
    # reaction field within 4.2 Å (molecules and boxes), the total charge as an input, averaged energies,
    # the in-backbone ZBL repulsion (scaled by std, as upstream)
    "tensornet2-coulomb-cutoff": {"model": "tensornet2", "q_dim": 2, "output_model": "ScalarPlusWeightedCoulomb",
                                  "q_weights": Q_WEIGHTS, "coulomb_cutoff": 4.2, "charge": True,
                                  "reduce_op": "mean", "equivariance_invariance_group": "SO(3)",
                                  "repulsion": True},
}


@pytest.fixture
def pure_python_tensornet2(pure_python_tensornet, monkeypatch):
    """torchmd-net's TensorNet2 on its pure-python ops (it imports TensorNet's under its own names)."""
    tn = pytest.importorskip("torchmdnet.models.tensornet")
    tn2 = pytest.importorskip("torchmdnet.models.tensornet2")
    for name in ("compose_tensor", "decompose_tensor", "tensor_matmul_o3", "tensor_matmul_so3"):
        monkeypatch.setattr(tn2, name, getattr(tn, "_" + name))


def _compare(calc, upstream, atoms, charge, uses_charge):
    energy, forces = ours(calc, atoms, charge=charge)
    ref_energy, ref_forces = upstream_results(upstream, atoms, charge if uses_charge else None)
    assert abs(energy - ref_energy) < E_TOL, (energy, ref_energy)
    assert np.abs(forces - ref_forces).max() < F_TOL
    return ref_energy


def test_d2_prior_matches_upstream_on_molecules_and_refuses_boxes(pure_python_tensornet, tmp_path):
    hparams = {**TRAIN_DEFAULTS, **SMALL, "model": "tensornet", "prior_model": ["Atomref", "D2"],
               "prior_args": [ATOMREF, D2_ARGS]}
    ckpt = write_checkpoint(tmp_path / "d2.ckpt", hparams)
    path = export_any(ckpt, tmp_path / "d2.pt")
    upstream = upstream_model(ckpt)
    calc = NNPCalculator(path, dtype="float64")
    ethanol = ase_build.molecule("CH3CH2OH")
    _compare(calc, upstream, ethanol, 0, False)
    # the D2 term is large enough for the comparison to see it (upstream's own prior alone)
    z, pos = torch.tensor(ethanol.numbers), torch.tensor(ethanol.positions)
    d2 = upstream.prior_model[1].post_reduce(torch.zeros(1, 1, dtype=torch.float64), z, pos, torch.zeros_like(z))
    assert float(d2) < -1e-3
    meta = modelfile.read_metadata(path)
    assert meta["heads"] == ["energy", "torchmd_d2"] and meta["periodic"] is False
    with pytest.raises(InvalidStructureError, match="molecules only"):
        ours(calc, periodic_box())


@pytest.mark.parametrize("case", list(TENSORNET2_CASES))
def test_tensornet2_and_its_coulomb_output_match_upstream(pure_python_tensornet2, tmp_path, case):
    hparams = {**TRAIN_DEFAULTS, **SMALL, **TENSORNET2_CASES[case]}
    ckpt = write_checkpoint(tmp_path / "tn2.ckpt", hparams)
    path = export_any(ckpt, tmp_path / "tn2.pt")
    upstream = upstream_model(ckpt)
    calc = NNPCalculator(path, dtype="float64")
    meta = modelfile.read_metadata(path)
    assert meta["backbone"] == "tensornet2"
    ethanol = ase_build.molecule("CH3CH2OH")
    for charge in (0, 1):
        _compare(calc, upstream, ethanol, charge, hparams["charge"])
    coulomb = hparams["output_model"] == "ScalarPlusWeightedCoulomb"
    assert meta["heads"][0] == ("torchmd_scalar_coulomb" if coulomb else "energy")  # the file names its terms
    if hparams.get("repulsion"):  # upstream's ZBL acts inside covalent radii: a compressed ethanol
        assert meta["heads"][1] == "torchmd_repulsion"
        squeezed = ethanol.copy()
        squeezed.positions *= 0.75
        _compare(calc, upstream, squeezed, 0, hparams["charge"])
        assert float(upstream.representation_model.extra_energy.detach().sum()) > 1.0  # seen by the comparison
    if case == "tensornet2-coulomb":  # all pairs: molecules only, as upstream
        assert meta["periodic"] is False
        with pytest.raises(InvalidStructureError, match="molecules only"):
            ours(calc, periodic_box())
    else:
        for charge in (0, 1):
            _compare(calc, upstream, periodic_box(), charge, hparams["charge"])
        # the file alone (bare torch.jit.load, no nnpcalc code) gives upstream's energy of the box
        box = periodic_box()
        bare = torch.jit.load(str(path)).to(torch.float64)
        out = bare(torch.tensor(box.positions), torch.tensor(box.numbers), torch.tensor(box.cell.array),
                   torch.tensor(box.pbc), torch.tensor(0.0, dtype=torch.float64))
        assert abs(float(out["energy"]) - upstream_results(upstream, box, 0 if hparams["charge"] else None)[0]) < E_TOL
    if hparams["output_model"] == "ScalarPlusWeightedCoulomb":
        # the Coulomb term is large enough for the comparison to see it: upstream's, alone
        x, v, z, pos, batch = upstream.representation_model(
            torch.tensor(ethanol.numbers), torch.tensor(ethanol.positions), torch.zeros(len(ethanol), dtype=torch.long))
        head = upstream.output_model
        coulomb = head.pre_reduce(x, v, z, pos, batch) - head.output_network(x[:, : head.hidden_channels])
        assert float(coulomb.detach().abs().sum()) > 1e-3


def test_weighted_coulomb_is_added_before_the_standardisation(tmp_path):
    """The export maps the checkpoint's charge channels and weights onto the head it names."""
    hparams = {**TRAIN_DEFAULTS, **SMALL, **TENSORNET2_CASES["tensornet2-coulomb-cutoff"]}
    arch = tmd.architecture_from_hparams(hparams)
    assert arch.backbone_kwargs["q_dim"] == 2 and arch.backbone_kwargs["output_charges"] is True
    head = arch.heads[0]
    assert head["kind"] == "torchmd_scalar_coulomb" and head["charge_channels"] == 3 * 2
    assert head["coulomb_cutoff"] == 4.2 and head["epsilon_solvent"] == 78.3


def test_d2_elements_beyond_its_table_are_refused():
    hparams = {**TRAIN_DEFAULTS, **SMALL, "model": "tensornet", "max_z": 60, "prior_model": ["D2"],
               "prior_args": [D2_ARGS]}
    with pytest.raises(ValueError, match="D2 prior: its table covers atomic numbers 1..54"):
        tmd.architecture_from_hparams(hparams, ["H", "Cs"])


def test_tensornet2_coulomb_stress_matches_finite_differences(tmp_path):
    """Upstream has no stress; the file's (autograd through the strained cell) equals finite differences."""
    hparams = {**TRAIN_DEFAULTS, **SMALL, **TENSORNET2_CASES["tensornet2-coulomb-cutoff"]}
    path = export_any(write_checkpoint(tmp_path / "tn2.ckpt", hparams), tmp_path / "tn2.pt")
    atoms = periodic_box()
    atoms.set_cell(atoms.cell.array + [[0.0, 0.0, 0.0], [0.4, 0.0, 0.0], [0.3, -0.2, 0.0]], scale_atoms=True)
    atoms.calc = NNPCalculator(path, dtype="float64")
    numerical = atoms.calc.calculate_numerical_stress(atoms, d=1e-5, voigt=True)
    stress = atoms.get_stress(voigt=True)
    assert np.abs(stress - numerical).max() < 1e-6 * max(1.0, np.abs(numerical).max()), (stress, numerical)
    assert np.abs(numerical).max() > 1e-4


# --- torchmd-net's Coulomb prior: per-atom partial charges given with every structure (issue 15, item 5) ---

#: switched between 0.1 and 0.3 nm (upstream's units), eV and Å
COULOMB_ARGS = {"lower_switch_distance": 0.1, "upper_switch_distance": 0.3, "max_num_neighbors": 32,
                "distance_scale": 1e-10, "energy_scale": 1.602176634e-19}


def _upstream_with_charges(model, atoms, charges):
    """Upstream's energy and forces of a molecule whose partial charges come as extra_args (as its datasets give)."""
    z, pos = torch.tensor(atoms.numbers), torch.tensor(atoms.positions, dtype=torch.float64)
    extra = {"partial_charges": torch.tensor(charges, dtype=torch.float64)}
    y, neg_dy = model(z, pos, torch.zeros_like(z), extra_args=extra)
    return float(y.detach().reshape(())), neg_dy.detach().numpy()


@pytest.fixture
def coulomb_prior_file(pure_python_tensornet, tmp_path):
    hparams = {**TRAIN_DEFAULTS, **SMALL, "model": "tensornet", "prior_model": ["Atomref", "Coulomb"],
               "prior_args": [ATOMREF, COULOMB_ARGS]}
    ckpt = write_checkpoint(tmp_path / "coulomb.ckpt", hparams)
    return export_any(ckpt, tmp_path / "coulomb.pt"), upstream_model(ckpt)


def test_coulomb_prior_matches_upstream_with_ase_initial_charges(coulomb_prior_file):
    path, upstream = coulomb_prior_file
    meta = modelfile.read_metadata(path)
    assert meta["heads"] == ["energy", "torchmd_coulomb"] and meta["inputs"] == ["atom_charges"]
    assert meta["periodic"] is False
    ethanol = ase_build.molecule("CH3CH2OH")
    ethanol.calc = NNPCalculator(path, dtype="float64")
    rng = np.random.default_rng(3)
    for charges in (rng.uniform(-0.6, 0.6, len(ethanol)), rng.uniform(-0.3, 0.9, len(ethanol))):  # 0 and +e-ish
        ethanol.set_initial_charges(charges)  # a change of charges alone triggers a new calculation
        energy, forces = ethanol.get_potential_energy(), ethanol.get_forces()
        ref_energy, ref_forces = _upstream_with_charges(upstream, ethanol, charges)
        assert abs(energy - ref_energy) < E_TOL, (energy, ref_energy)
        assert np.abs(forces - ref_forces).max() < F_TOL
    # the term is large enough for the comparison to see it: upstream's prior alone, and through the energy
    z, pos = torch.tensor(ethanol.numbers), torch.tensor(ethanol.positions)
    term = upstream.prior_model[1].post_reduce(torch.zeros(1, 1, dtype=torch.float64), z, pos, torch.zeros_like(z),
                                               extra_args={"partial_charges": torch.tensor(charges)})
    assert abs(float(term)) > 0.1
    assert abs(_upstream_with_charges(upstream, ethanol, 0 * charges)[0] - ref_energy) > 0.1


def test_coulomb_prior_file_without_charges_names_the_fix(coulomb_prior_file):
    path, upstream = coulomb_prior_file
    ethanol = ase_build.molecule("CH3CH2OH")
    with pytest.raises(InvalidStructureError, match=r"atoms\.set_initial_charges"):
        ours(NNPCalculator(path, dtype="float64"), ethanol)
    # the bare file: the old call refuses with the fix named, the optional last input serves
    bare = torch.jit.load(str(path)).to(torch.float64)
    args = (torch.tensor(ethanol.positions), torch.tensor(ethanol.numbers), torch.zeros(3, 3, dtype=torch.float64),
            torch.zeros(3, dtype=torch.bool), torch.tensor(0.0, dtype=torch.float64))
    with pytest.raises(Exception, match=r"atoms\.set_initial_charges"):
        bare(*args)
    charges = np.linspace(-0.5, 0.5, len(ethanol))
    out = bare(*args, atom_charges=torch.tensor(charges))
    assert abs(float(out["energy"]) - _upstream_with_charges(upstream, ethanol, charges)[0]) < E_TOL
    # periodic cells are refused (upstream's prior is no lattice sum), so are engines that pass no charges
    box = periodic_box()
    box.set_initial_charges(np.zeros(len(box)))
    with pytest.raises(InvalidStructureError, match="molecules only"):
        ours(NNPCalculator(path, dtype="float64"), box)
    from nnpcalc.runtime import Model

    model = Model(path, dtype="float64")
    with pytest.raises(InvalidStructureError, match="per-atom inputs"):
        model.forward_tensors(torch.tensor(ethanol.positions), torch.tensor(ethanol.numbers), torch.zeros(1, 3, 3),
                              torch.zeros(1, 3, dtype=torch.bool), torch.zeros(1),
                              torch.zeros(len(ethanol), dtype=torch.long))


def test_coulomb_prior_batched_equals_one_by_one(coulomb_prior_file):
    path, _ = coulomb_prior_file
    from nnpcalc.runtime import Model

    model = Model(path, dtype="float64")
    rng = np.random.default_rng(5)
    molecules = [ase_build.molecule(name) for name in ("CH3CH2OH", "H2O", "CH3CN")]
    for atoms in molecules:
        atoms.set_initial_charges(rng.uniform(-0.5, 0.5, len(atoms)))
    batched = model.compute(molecules)
    for atoms, result in zip(molecules, batched):
        (alone,) = model.compute([atoms])
        assert abs(float(result["energy"]) - float(alone["energy"])) < E_TOL
        assert np.abs(result["forces"] - alone["forces"]).max() < F_TOL


def test_models_without_the_coulomb_prior_declare_no_inputs(tmp_path):
    hparams = {**TRAIN_DEFAULTS, **SMALL, "model": "tensornet"}
    path = export_any(write_checkpoint(tmp_path / "plain.ckpt", hparams), tmp_path / "plain.pt")
    assert "inputs" not in modelfile.read_metadata(path)
    big = {**TRAIN_DEFAULTS, **SMALL, "model": "tensornet", "prior_model": ["Coulomb"],
           "prior_args": [{**COULOMB_ARGS, "max_num_neighbors": 4}]}
    small = export_any(write_checkpoint(tmp_path / "c4.ckpt", big), tmp_path / "c4.pt")
    ethanol = ase_build.molecule("CH3CH2OH")
    ethanol.set_initial_charges(np.zeros(len(ethanol)))
    with pytest.raises(Exception, match="max_num_neighbors = 4"):
        ours(NNPCalculator(small, dtype="float64"), ethanol)
