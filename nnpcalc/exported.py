"""A model file as a ``torch.export`` program, optionally compiled ahead of time (AOTInductor).

TorchScript (the model file) is deprecated since torch 2.11; its successor is an
``ExportedProgram``: an ATen graph saved as data (``torch.export.save``), which AOTInductor
compiles into a native library. Both are built from the file's own weights
(``nnpcalc.nn.build.rebuild``), as NequIP builds its packages: ``make_fx`` runs
``Potential.evaluate`` — energy, then one autograd pass for forces and stress — and unrolls the
backward pass into plain ATen ops; ``torch.export`` turns that graph into a program with a
dynamic number of atoms and pairs. The program takes the neighbour graph as an input::

    outputs = program(positions [N,3], atomic_numbers [N], cell [1,3,3], pbc [1,3],
                      total_charge [1], batch [N], fidelity [1], edge_index [2,E], shifts [E,3])

``outputs`` is a tuple in the order of ``keys`` (every output of the file, forces and stress
included). One structure per call, ``N >= 2`` atoms, ``E >= 2`` directed pairs of a full
(symmetric) list. ``nnpcalc.artifacts`` caches and chooses; this module only builds.

A TensorNet model whose heads are the energy and, optionally, the ZBL wall can also be traced with
its graph in slots (:class:`_SlotEvaluate`, ``nnpcalc.slots``): the same network code, whose
gathers and scatters ``SlotOps`` turns into gathers and sums over slots, so the program holds no
scatter and its compiled kernels can run on several threads.

Two ops of the network code are traced as plain elementwise ops (``_ShimmedOps``): 3 × 3
determinants (the stress' volume) by cofactor expansion and ``bincount`` (atoms per structure)
as a comparison and a sum; AOTInductor has no C shim for either and would run them outside its
kernels, through its proxy executor (``artifacts.proxied_ops`` lists what a package still runs so).

Models with long-range electrostatics (``coulomb``, ``ewald``) export as **molecule programs**
(``molecules_only``): the term's branch on the pbc flags is taken at build time (pbc all False),
and its direct sum over atom pairs (``torch.triu_indices``, which fixes N) is traced as the same
sum over a dense N × N block, which keeps N dynamic. Periodic cells stay with the TorchScript
file: their Ewald sum sizes its k-vector grid and its real-space pair list from the cell's values
(``k_vectors``' ``reach``, ``auto_cutoff``'s ``float(volume)``, a neighbour list inside the term),
shapes no exported program can take from data; exporting it needs the runtime to pass the Ewald
pairs and k-vectors in as inputs, as it passes the model's graph.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from .errors import ModelFileError

MIN_ATOMS, MIN_PAIRS = 2, 2
#: atoms of the structure a program in slots is traced with (its kernels' size hints)
SLOT_EXAMPLE_ATOMS = 128


class _Evaluate(torch.nn.Module):
    """What is traced: ``Potential.evaluate`` (forces and stress included), outputs as a tuple."""

    def __init__(self, potential: torch.nn.Module, keys: list[str]):
        super().__init__()
        self.potential = potential
        self.keys = list(keys)

    def forward(self, positions, atomic_numbers, cell, pbc, total_charge, batch, fidelity, edge_index, shifts):
        out = self.potential.evaluate(
            positions, atomic_numbers, cell, pbc, total_charge, batch, fidelity, edge_index, shifts, True, True, False
        )
        return tuple(out[key] for key in self.keys)


class _SlotEvaluate(torch.nn.Module):
    """``Potential.evaluate`` of one structure whose graph comes in slots (``nnpcalc.slots``), for a
    TensorNet model: the same network code, its gathers and scatters rewritten by ``SlotOps``::

        outputs = program(positions [N,3], atomic_numbers [N], cell [1,3,3], pbc [1,3],
                          total_charge [1], fidelity [1], neighbors [K,N], shifts [K,N,3],
                          reverse [K,N], pair [K,N], pair_slots [2,P], first [K,N])
    """

    def __init__(self, potential: torch.nn.Module, keys: list[str]):
        super().__init__()
        self.potential = potential
        self.keys = list(keys)

    def forward(self, positions, atomic_numbers, cell, pbc, total_charge, fidelity, neighbors, shifts, reverse,
                pair, pair_slots, first):
        from .nn import tensornet
        from .nn.uncertainty import centre_ensemble
        from .slots import Gather, SlotMessages, SlotOps

        potential, backbone = self.potential, self.potential.backbone
        width, n = neighbors.shape
        num_pairs = pair_slots.shape[1]
        positions = positions.detach().requires_grad_(True)
        strain = torch.zeros_like(cell).requires_grad_(True)
        sym = 0.5 * (strain + strain.transpose(1, 2))
        pos_s, cell_s = positions + positions @ sym[0], cell + torch.bmm(cell, sym)  # Potential's _apply_strain
        senders, pair = neighbors.reshape(-1), pair.reshape(-1)
        vec, length, unit_vec = _slot_vectors(pos_s, cell_s, senders, shifts, reverse, pair < num_pairs)
        pair_len = Gather.apply(length, pair_slots[0], first.reshape(1, -1))
        radial_len = torch.cat([pair_len, pair_len.new_zeros((n,)), pair_len.new_full((1,), backbone.cutoff_upper)])
        loops = torch.arange(n, device=pair.device)  # slot 0 of each atom
        padding = torch.full((1,), n * width, dtype=pair.dtype, device=pair.device)
        pair_slots = torch.cat([pair_slots, torch.stack([loops, padding.expand(n)]), padding.expand(2, 1)], 1)
        receivers = torch.arange(n, device=pair.device).repeat(width)
        edge_index = torch.stack([receivers, senders])
        batch = torch.zeros(n, dtype=torch.long, device=pair.device)
        # heads that read the graph (the ZBL wall) see self-loops and padding at twice the cutoff: out of reach
        far = torch.where(pair < num_pairs, length, torch.full_like(length, 2 * backbone.cutoff_upper))
        system = {"positions": pos_s, "numbers": atomic_numbers, "batch": batch, "total_charge": total_charge,
                  "fidelity": fidelity, "pbc": pbc, "cell": cell_s, "edge_index": edge_index, "edge_vec": vec,
                  "edge_len": far, "vec": vec.new_zeros((0,))}
        first_slots = pair_slots[0, :num_pairs]
        pair_atoms = torch.stack([first_slots % n, senders.index_select(0, first_slots)])

        def messages(weight, features, pair_, edge_index_, num_atoms):  # nn.tensornet.pair_messages in slots
            return SlotMessages.apply(weight, features, senders, pair, pair_atoms, width)

        with SlotOps(edge_index, receivers, senders, pair, batch, reverse, pair_slots, width), \
                _replaced(tensornet, "pair_messages", messages):
            x = backbone.on_pairs(atomic_numbers, edge_index, unit_vec, radial_len, pair,
                                  total_charge.expand(n))
            x = torch.cat([x, potential._context(fidelity).expand(n, -1)], dim=-1)
            out = {}
            for head in potential.heads:
                out = head(x, system, out)
            out = centre_ensemble(out)
            potential._derivatives(out, positions, strain, cell, True, True, False)
        return tuple(out[key].detach() for key in self.keys)


def _slot_vectors(positions, cell, senders, shifts, reverse, real) -> tuple:
    """Per slot [K*N]: pair vectors r_j − r_i + shift·cell, lengths and unit vectors r_i − r_j
    (upstream's sign); zero, without a gradient, for self-loops and padding (``real`` False)."""
    from .slots import Gather

    width, n = reverse.shape
    vec = (Gather.apply(positions, senders, reverse).view(width, n, 3) - positions.unsqueeze(0)
           + shifts @ cell[0]).reshape(-1, 3)
    vec = torch.where(real.unsqueeze(1), vec, torch.zeros_like(vec))
    squared = torch.where(real, (vec * vec).sum(-1), torch.ones_like(vec[:, 0]))  # no sqrt'(0)
    length = torch.where(real, torch.sqrt(squared), torch.zeros_like(squared))
    return vec, length, -vec / torch.where(real, length, torch.ones_like(length)).unsqueeze(1)


@contextlib.contextmanager
def _replaced(module, name: str, value):
    """``module.name`` is ``value`` inside the block (while tracing), as it was after it."""
    before = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, before)


#: heads a program in slots serves (``slots_possible``): the energy head, and the ZBL wall, which
#: reads the graph (its self-loop and padding slots sit beyond every wall's range: ``_SlotEvaluate``)
SLOT_HEADS = ("energy", "zbl")


def slot_layout(potential: torch.nn.Module) -> bool:
    """Whether ``potential``'s program can take its graph in slots: a TensorNet backbone, and
    heads of the kinds in ``SLOT_HEADS``."""
    from .nn.heads import EnergyHead
    from .nn.priors import ZBLRepulsion
    from .nn.tensornet import TensorNet

    return isinstance(potential.backbone, TensorNet) and all(
        type(head) in (EnergyHead, ZBLRepulsion) for head in potential.heads)


def slot_inputs(args: tuple) -> tuple:
    """The slot program's arguments for the edge program's ``args`` (one structure)."""
    from .slots import slot_graph

    positions, numbers, cell, pbc, charge, batch, fidelity, edge_index, shifts = args
    return (positions, numbers, cell, pbc, charge, fidelity) + tuple(slot_graph(edge_index, shifts, positions.shape[0]))


def molecules_only(metadata: dict) -> bool:
    """Whether the model's program serves molecules only (a model with long-range electrostatics)."""
    return metadata["architecture"].get("electrostatics", "none") != "none"


def example_inputs(metadata: dict, dtype: torch.dtype, device: torch.device, atoms: int = 7) -> tuple:
    """A 7-atom structure of the model's elements (periodic unless the program serves molecules
    only): the program's arguments, for tracing. ``atoms`` > 7: that many atoms at a liquid's
    density (0.08 Å⁻³) in a periodic cube, ~40 neighbours each at 5 Å: the compiler's size hints
    (which loops to spread over threads) then are those of the systems the program will serve."""
    from ase.data import atomic_numbers as numbers_of

    from .neighbors import neighbor_graph

    n, cutoff = max(int(atoms), 7), float(metadata["cutoff"])
    elements = [numbers_of[symbol] for symbol in metadata["elements"]]
    generator = torch.Generator().manual_seed(0)
    side = 3.0 if n == 7 else (n / 0.08) ** (1 / 3)
    positions = (side * torch.rand(n, 3, generator=generator, dtype=torch.float64)).to(device=device, dtype=dtype)
    numbers = torch.tensor([elements[k % len(elements)] for k in range(n)], device=device)
    cell = (2 * cutoff + 3.0 if n == 7 else side) * torch.eye(3, dtype=dtype, device=device).unsqueeze(0)
    pbc = torch.full((1, 3), not molecules_only(metadata), dtype=torch.bool, device=device)
    batch = torch.zeros(n, dtype=torch.long, device=device)
    edge_index, shifts = neighbor_graph(positions, cell, pbc, batch, cutoff, "torch")
    charge = torch.zeros(1, dtype=dtype, device=device)
    fidelity = torch.zeros(1, dtype=torch.long, device=device)
    return positions, numbers, cell, pbc, charge, batch, fidelity, edge_index, shifts.to(dtype)


def det3(matrices: torch.Tensor) -> torch.Tensor:
    """Determinants of [..., 3, 3] matrices by cofactor expansion along the first row (elementwise
    ops only; ``torch.linalg.det`` factorises, the same value to rounding)."""
    (a, b, c), (d, e, f), (g, h, i) = [[matrices[..., r, k] for k in range(3)] for r in range(3)]
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def count(values: torch.Tensor, length: int) -> torch.Tensor:
    """``torch.bincount(values, minlength=length)`` for values in [0, length): one comparison per
    (bin, value) and a sum (int64, exact); its length is ``length``, not read from the data."""
    bins = torch.arange(length, dtype=values.dtype, device=values.device)
    return (values.unsqueeze(0) == bins.unsqueeze(1)).sum(1)


class _ShimmedOps(torch.overrides.TorchFunctionMode):
    """While tracing: ``torch.linalg.det`` of 3 × 3 matrices as :func:`det3` and ``torch.bincount``
    (no weights, a ``minlength``) as :func:`count`.

    AOTInductor (torch 2.13) has no C shim for ``aten._linalg_det`` and ``aten.bincount``: it runs
    them through its proxy executor (a boxed dispatcher call per op, and bincount's length an
    unbacked size read back from the data); as elementwise ops they fuse into its kernels. Counts
    are the same integers, determinants the same to rounding. bincount's count assumes its values
    below ``minlength``: in the network code it counts ``batch`` (indices of the call's
    structures) with ``minlength`` the number of structures; other calls keep the op.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.linalg.det, torch.det, torch.Tensor.det) and not kwargs and args[0].shape[-2:] == (3, 3):
            return det3(args[0])
        if func in (torch.bincount, torch.Tensor.bincount):
            options = dict(zip(("weights", "minlength"), args[1:])) | kwargs
            length = options.get("minlength", 0)
            if options.get("weights") is None and isinstance(length, int) and length > 0:
                return count(args[0], length)
        return func(*args, **kwargs)


def _dynamic_shapes(slots: bool) -> tuple:
    """Which input sizes stay symbolic: atoms and pairs (edge list), or atoms, slots and pairs (slots)."""
    atoms = torch.export.Dim("atoms", min=MIN_ATOMS)
    pairs = torch.export.Dim("pairs", min=MIN_PAIRS if not slots else 1)
    if not slots:
        return ({0: atoms}, {0: atoms}, None, None, None, {0: atoms}, None, {1: pairs}, {0: pairs})
    grid = {0: torch.export.Dim("slots", min=2), 1: atoms}
    return ({0: atoms}, {0: atoms}, None, None, None, None, grid, grid, grid, grid, {1: pairs}, grid)


def trace(module: torch.nn.Module, args: tuple) -> torch.export.ExportedProgram:
    """``make_fx`` unrolls the autograd pass into ATen ops; ``torch.export`` makes the sizes dynamic.
    Determinants and counts are traced as elementwise ops (:class:`_ShimmedOps`)."""
    from torch.fx.experimental import _config
    from torch.fx.experimental.proxy_tensor import make_fx

    previous = _config.use_duck_shape
    _config.use_duck_shape = False  # atoms and pairs stay independent sizes, even if equal in the example
    try:
        with torch.enable_grad(), _ShimmedOps():
            graph = make_fx(module, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*[a.clone() for a in args])
    finally:
        _config.use_duck_shape = previous
    dynamic = _dynamic_shapes(isinstance(module, _SlotEvaluate))
    return torch.export.export(graph, args, dynamic_shapes=dynamic, strict=False)


def export_program(model_path, dtype: torch.dtype, device, loaded=None,
                   slots: bool = False) -> tuple[torch.export.ExportedProgram, list[str]]:
    """(program, keys) for the model file at ``model_path``; ``loaded``: its ``(module, metadata)``;
    ``slots``: the program takes its graph in slots (:class:`_SlotEvaluate`), else as an edge list."""
    from .modelfile import load
    from .nn.build import rebuild

    loaded = loaded if loaded is not None else load(model_path)
    potential = rebuild(model_path, loaded).to(device=device, dtype=dtype).eval().requires_grad_(False)
    if slots and not (slot_layout(potential) and slots_possible(loaded[1])):
        raise ModelFileError(f"{Path(model_path).name}: only TensorNet models whose heads are all of "
                             f"{', '.join(SLOT_HEADS)} have a program in slots (a multi-threaded compiled program)")
    if molecules_only(loaded[1]):
        _molecule_electrostatics(potential, Path(model_path).name)
    args = example_inputs(loaded[1], dtype, torch.device(device), atoms=SLOT_EXAMPLE_ATOMS if slots else 7)
    with torch.enable_grad():
        keys = list(potential.evaluate(*args))
    if slots:
        return trace(_SlotEvaluate(potential, keys), slot_inputs(args)), keys
    return trace(_Evaluate(potential, keys), args), keys


def slots_possible(metadata: dict) -> bool:
    """Whether a model file's metadata allows a program in slots (see :func:`slot_layout`)."""
    architecture = metadata["architecture"]
    kinds = [head if isinstance(head, str) else head.get("kind") for head in architecture.get("heads", ())]
    return (architecture.get("backbone") == "tensornet" and architecture.get("electrostatics", "none") == "none"
            and all(kind in SLOT_HEADS for kind in kinds))


def _molecule_electrostatics(potential: torch.nn.Module, name: str) -> None:
    """Trace the electrostatics term of ``potential`` as its molecule branch, over a dense pair block."""
    import types

    from .nn.electrostatics import Electrostatics

    terms = [head for head in potential.modules() if isinstance(head, Electrostatics)]
    if not terms or any(type(head) is not Electrostatics for head in terms):
        raise ModelFileError(f"{name}: its electrostatics term is not one this version of nnpcalc can export")
    for head in terms:
        head.forward = types.MethodType(_direct_forward, head)


def _direct_forward(self, x, system: dict, outputs: dict) -> dict:
    """``Electrostatics.forward`` for one molecule: ½ Σ_{j≠i} q_i q_j (1 − s(r_ij)) / r_ij per atom,
    the sum ``direct_energies`` takes over i < j pairs, here over the N × N block (N stays dynamic)."""
    from .nn.electrostatics import damped_kernel
    from .nn.graph_ops import scatter_sum

    charges, batch = outputs["charges"], system["batch"]
    positions = system["positions"].to(charges.dtype)
    vectors = positions.unsqueeze(0) - positions.unsqueeze(1)
    self_pair = torch.eye(positions.shape[0], dtype=torch.bool, device=positions.device)
    r = torch.sqrt((vectors * vectors).sum(-1) + self_pair.to(charges.dtype))  # 1 on the diagonal: no 0/0
    kernel = torch.where(self_pair, torch.zeros_like(r), damped_kernel(r, self.damping_radius))
    energies = self.coulomb * (0.5 * charges * (kernel @ charges)).to(torch.float64)
    outputs["energies"] = outputs["energies"] + energies
    outputs["energy"] = outputs["energy"] + scatter_sum(energies, batch, system["cell"].shape[0])
    return outputs


#: Inductor settings of every compiled program: an intermediate read by more than one kernel is
#: written once (``realize_reads_threshold``) instead of recomputed in each (the per-pair cutoff, a
#: ``cos``, and radial weights were recomputed per slot or pair and channel block). Same-run A/B,
#: TensorNet 128×2 float32: the program in slots (2 threads) 15 % faster on 256 Cu atoms and on 192
#: and 1 536 waters; the edge-list program (1 thread) 7 % on Cu 256 and ethanol, bit-identical
INDUCTOR_SETTINGS = {"realize_reads_threshold": 1}


def compile_program(program: torch.export.ExportedProgram, path: Path, work_dir: Path, threads: int = 1) -> Path:
    """AOTInductor: ``program`` as a native package at ``path`` whose kernels run on ``threads``
    threads (a program in slots; an edge-list program's scatters need one).

    ``work_dir`` holds Inductor's intermediate files (C++ sources, objects) instead of /tmp.
    """
    from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

    settings = {"cpp.threads": int(threads)} | INDUCTOR_SETTINGS
    with temporary_cache_dir(str(work_dir)):
        return Path(torch._inductor.aoti_compile_and_package(
            program, package_path=str(path), inductor_configs=settings
        ))
