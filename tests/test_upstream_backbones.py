"""The pure-torch backbones reproduce torchmd-net 3.1's modules from the same state dict."""

import warnings

import pytest
import torch

pytest.importorskip("torchmdnet")
ase_build = pytest.importorskip("ase.build")

from nnpcalc.graph import edge_vectors, neighbor_list  # noqa: E402
from nnpcalc.nn.et import EquivariantTransformer  # noqa: E402
from nnpcalc.nn.graph_network import GraphNetwork  # noqa: E402
from nnpcalc.nn.tensornet import TensorNet  # noqa: E402

CUTOFF = 4.0
TOL = 1e-10


def ethanol(dtype=torch.float64):
    """Ethanol as a molecule (no box): z, positions, batch."""
    atoms = ase_build.molecule("CH3CH2OH")
    pos = torch.tensor(atoms.positions, dtype=dtype)
    z = torch.tensor(atoms.numbers, dtype=torch.long)
    return z, pos, torch.zeros(len(atoms), dtype=torch.long)


def our_graph(pos, batch):
    """Our convention: edge_index[0] = centre, edge_vec = r_j - r_i."""
    cell = torch.zeros(1, 3, 3, dtype=pos.dtype)
    pbc = torch.zeros(1, 3, dtype=torch.bool)
    edge_index, shifts = neighbor_list(pos, cell, pbc, batch, 1, CUTOFF)
    vec = edge_vectors(pos, cell, batch, edge_index, shifts)
    return edge_index, vec, vec.norm(dim=1)


def load_from(upstream, ours):
    """Perturb upstream's weights (its biases start at zero), then copy them into ours."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in upstream.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    state = {k: v for k, v in upstream.state_dict().items() if not k.startswith("distance.")}
    ours.load_state_dict(state, strict=True)


def run_ours(model, z, pos, batch):
    edge_index, vec, length = our_graph(pos, batch)
    return model(z, edge_index, vec, length, torch.zeros_like(pos[:, 0]))


ET_VARIANTS = [
    {},
    {"neighbor_embedding": False, "distance_influence": "keys", "attn_activation": "tanh"},
    {"distance_influence": "values", "vector_cutoff": True, "activation": "mish"},
    {"distance_influence": "none", "rbf_type": "gauss", "trainable_rbf": False, "cutoff_lower": 1.0},
]
ET_BASE = {"hidden_channels": 32, "num_layers": 2, "num_rbf": 16, "num_heads": 4, "cutoff_upper": CUTOFF}


@pytest.mark.parametrize("variant", ET_VARIANTS, ids=lambda v: ",".join(v) or "default")
def test_et_matches_upstream(variant):
    from torchmdnet.models.torchmd_et import TorchMD_ET

    torch.manual_seed(0)
    kw = {**ET_BASE, **variant}
    upstream = TorchMD_ET(**kw, max_num_neighbors=128).double()
    ours = EquivariantTransformer(**kw).double()
    load_from(upstream, ours)
    z, pos, batch = ethanol()
    x_up, vec_up = upstream(z, pos, batch)[:2]
    x, vec = ours.features(z, *our_graph(pos, batch)[:3])
    assert (x - x_up).abs().max() < TOL
    assert (vec - vec_up).abs().max() < TOL  # also checks the sign of the edge vectors
    assert (run_ours(ours, z, pos, batch) - x).abs().max() == 0


GN_VARIANTS = [
    ({}, TOL),
    # upstream's graph drops pairs below cutoff_lower (O-H here), which the mean sees
    ({"aggr": "mean", "neighbor_embedding": False, "activation": "tanh", "cutoff_lower": 1.0}, TOL),
    ({"aggr": "max", "rbf_type": "gauss", "trainable_rbf": False}, TOL),
    # upstream's ShiftedSoftplus subtracts log(2) rounded to float32 (off by 1.9e-9)
    ({"aggr": "mean", "activation": "ssp"}, 1e-7),
]
GN_BASE = {"hidden_channels": 32, "num_filters": 24, "num_layers": 2, "num_rbf": 16, "cutoff_upper": CUTOFF}


@pytest.mark.parametrize("variant,tol", GN_VARIANTS, ids=lambda v: ",".join(v) if isinstance(v, dict) else "")
def test_graph_network_matches_upstream(variant, tol):
    from torchmdnet.models.torchmd_gn import TorchMD_GN

    torch.manual_seed(0)
    kw = {**GN_BASE, **variant}
    upstream = TorchMD_GN(**kw, max_num_neighbors=128).double()
    ours = GraphNetwork(**kw).double()
    load_from(upstream, ours)
    z, pos, batch = ethanol()
    x_up = upstream(z, pos, batch)[0]
    assert (run_ours(ours, z, pos, batch) - x_up).abs().max() < tol


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_tensornet_matches_upstream(pure_python_tensornet, group):
    torch.manual_seed(0)
    kw = {"hidden_channels": 32, "num_layers": 2, "num_rbf": 16, "cutoff_upper": CUTOFF,
          "equivariance_invariance_group": group}
    upstream = pure_python_tensornet(**kw, max_num_neighbors=128, static_shapes=False).double()
    for module in upstream.modules():
        if hasattr(module, "opt"):
            module.opt = False
    ours = TensorNet(**kw).double()
    load_from(upstream, ours)
    z, pos, batch = ethanol()
    charge = torch.tensor([1.0], dtype=torch.float64)
    x_up = upstream(z, pos, batch, q=charge)[0]
    edge_index, vec, length = our_graph(pos, batch)
    x = ours(z, edge_index, vec, length, charge[batch])
    assert (x - x_up).abs().max() < TOL


SMALL = {
    "et": lambda: EquivariantTransformer(hidden_channels=16, num_layers=2, num_rbf=8, num_heads=2),
    "gn": lambda: GraphNetwork(hidden_channels=16, num_filters=8, num_layers=2, num_rbf=8, aggr="mean"),
    "tensornet": lambda: TensorNet(hidden_channels=16, num_layers=2, num_rbf=8),
}


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scripted_equals_eager(name, dtype):
    torch.manual_seed(0)
    model = SMALL[name]().to(dtype)
    z, pos, batch = ethanol(dtype)
    graph = our_graph(pos, batch)
    q = torch.ones_like(pos[:, 0])
    eager = model(z, *graph, q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(model)
    assert eager.dtype == dtype
    assert torch.equal(scripted(z, *graph, q), eager)


@pytest.mark.parametrize(
    "cls,kw",
    [
        (EquivariantTransformer, {"attn_activation": "relu6"}),
        (EquivariantTransformer, {"distance_influence": "queries"}),
        (GraphNetwork, {"aggr": "min"}),
        (GraphNetwork, {"rbf_type": "bessel"}),
    ],
)
def test_unknown_names_are_rejected(cls, kw):
    with pytest.raises(ValueError, match="choose one of"):
        cls(**kw)


def test_tensornet_does_not_depend_on_pair_order():
    """Radial weights are computed once per pair and shared by i→j and j→i: any order of a
    full list gives the same features, and a list that is not symmetric is still evaluated."""
    from nnpcalc.nn.tensornet import pair_graph

    torch.manual_seed(0)
    model = TensorNet(hidden_channels=16, num_layers=2, num_rbf=8, cutoff_upper=CUTOFF).double()
    z, pos, batch = ethanol()
    edge_index, vec, length = our_graph(pos, batch)
    q = torch.zeros_like(pos[:, 0])
    x = model(z, edge_index, vec, length, q)
    perm = torch.randperm(length.shape[0])
    assert (model(z, edge_index[:, perm], vec[perm], length[perm], q) - x).abs().max() < TOL
    n, e = len(z), length.shape[0]
    _, _, full, radial, pair = pair_graph(edge_index, vec, length, n)
    assert radial.shape[0] == e // 2 + n and torch.equal(full[:e].sort()[0], length.sort()[0])
    assert torch.equal(radial[pair], full) and (full[e:] == 0).all()  # self-loops last
    half = edge_index[0] < edge_index[1]  # not symmetric: every entry is its own radial edge
    _, _, _, radial, pair = pair_graph(edge_index[:, half], vec[half], length[half], n)
    assert torch.equal(pair, torch.arange(int(half.sum()) + n))
    assert torch.isfinite(model(z, edge_index[:, half], vec[half], length[half], q)).all()
