"""A loaded model file bound to a device and dtype, with input validation.

This is the layer every integration (ASE, OpenMM, workflows) calls: numpy or ASE in,
numpy out, typed errors for anything a user can get wrong.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from . import artifacts, modelfile, validation
from .charge import check_total_charge, total_charge as total_charge_of
from .neighbors import BACKENDS, SkinList, neighbor_graph
from .errors import InvalidStructureError, UnknownElementError
from .properties import PROPERTIES, torch_dtype
from .threads import check_policy, program_policy, threads_for, torch_threads


def require_standard_inputs(model: "Model", engine: str) -> None:
    """Refuse, at an engine's set-up, a model that reads per-atom inputs only ASE's calculator
    passes (metadata ``inputs``: torchmd-net's Coulomb prior reads ``atom_charges``)."""
    if model.inputs:
        raise InvalidStructureError(
            f"model {model.path.name} reads per-atom inputs {model.inputs} (metadata 'inputs'; "
            f"'atom_charges': torchmd-net's Coulomb prior) that {engine} does not pass; use it through "
            "ASE's NNPCalculator, with atoms.set_initial_charges([...])"
        )


class Model:
    """A model file on a device, in a dtype.

    Args:
        model: path to a model file or the name of a shipped model (None: the default).
        device: torch device.
        dtype: "float32" or "float64" (the model's own precision; never torch's global default).
        neighbors: neighbour-list back-end, "auto" (vesin-torch when installed), "vesin" or
            "torch" (the file's own cell list); all give the same pairs.
        chunk_pairs: for graphs of more than ``8 * chunk_pairs`` directed pairs, evaluate the
            per-pair work in chunks of this many pairs, recomputed in the backward pass (memory
            stays bounded; see ``nnpcalc.nn.chunking``). Such calls run the module rebuilt from
            the file's weights, as eager torch. 0 turns chunking off.
        threads: the thread policy of a call (``nnpcalc.threads``): "keep" (torch's setting,
            never changed), "auto" (graphs under ``serial_pairs`` directed pairs on one thread),
            or an int. None: the program's choice (``threads.set_program_policy``; `nnp` and the
            benchmarks choose "auto"), else "keep". "auto" and ints set torch's process-wide
            thread count during a call and restore it after.
        serial_pairs: the "auto" policy's threshold: waking the other threads for each of a
            call's ~400 small ops costs more than the ops (2 vCPUs: ethanol 12 ms on one thread,
            27 ms on two; 48 waters 86–106 ms against 140–146 ms; even at 6 000 pairs).
        artifact: which program serves a call (``nnpcalc.artifacts``): "auto" (a cached compiled
            program, else the TorchScript file), "compiled" or "exported" (built into the cache on
            first use: minutes), "torchscript". Failures warn and fall back to the TorchScript file.
        skin: Å. One-structure calls on the CPU (ASE, MD) keep the pairs within ``cutoff + skin``
            until an atom has moved more than ``skin / 2`` or the cell changes
            (``neighbors.SkinList``): the same pairs within the cutoff as a fresh list. 0: a fresh
            list at every call.

    One-structure calls on the CPU also keep, per thread, what does not change along an MD run
    (the checks of numbers, cell and pbc, and their tensors) while numbers, cell, pbc, charge
    and fidelity stay equal; positions are checked at every call, and so are overlapping atoms
    (on the call's own pair lengths, whose shortest pair ``compute(closest=True)`` returns).

    Loading a model changes nothing process-wide (no allocator or thread setting): those are
    the program's choices (``nnpcalc.allocator``, ``nnpcalc.threads``).
    """

    def __init__(
        self, model: str | Path | None = None, *, device="cpu", dtype="float32", neighbors="auto",
        chunk_pairs: int = 32_768, threads: str | int | None = None, serial_pairs: int = 4_096,
        artifact: str = "auto", skin: float = 1.0,
    ):
        from .zoo import resolve  # models/ is installed as nnpcalc.zoo

        self.path = resolve(model)
        self._options = {"neighbors": neighbors, "chunk_pairs": chunk_pairs, "threads": threads,
                         "serial_pairs": serial_pairs, "artifact": artifact, "skin": skin}  # what a pickle keeps (with path, device, dtype)
        validation.check_device(device)
        if neighbors not in BACKENDS:
            raise ValueError(f"unknown neighbour-list backend {neighbors!r}; choose from {', '.join(BACKENDS)}")
        self.threads = check_policy(program_policy() if threads is None else threads)
        self.device = torch.device(device)
        self.dtype = torch_dtype(dtype)
        self.neighbors = neighbors
        module, self.metadata = modelfile.load(self.path, self.device)
        self.module = module.to(self.dtype)
        # the exported/compiled program (nnpcalc.artifacts), or None: the TorchScript file serves
        self.program = artifacts.for_model(self.path, self.dtype, self.device, artifact, loaded=(self.module, self.metadata))
        # and for calls on several threads, the compiled program in slots whose kernels use them (or None)
        self.parallel_program = artifacts.for_model(self.path, self.dtype, self.device, artifact,
                                                    loaded=(self.module, self.metadata),
                                                    threads=artifacts.PARALLEL_THREADS)
        self.elements: list[str] = self.metadata["elements"]
        self.cutoff: float = self.metadata["cutoff"]
        self.outputs: list[str] = list(self.metadata["outputs"])
        self.fidelities: list[str] = self.metadata["fidelities"]
        self.inputs: list[str] = list(self.metadata.get("inputs", []))  # optional per-atom inputs (atom_charges)
        self.chunk_pairs = int(chunk_pairs)
        self.serial_pairs = int(serial_pairs)
        self._chunked = None  # the eager module with chunked pairs, built on first need
        self._known = {chemical_symbols.index(s) for s in self.elements}
        if not skin >= 0:
            raise ValueError(f"skin must be >= 0 Å, got {skin}")
        self.skin = float(skin)
        self._local = threading.local()  # per thread: the last structure's constants and its skin list

    def __getstate__(self) -> dict:
        """A pickle holds the path, device, dtype and options; unpickling reloads the file."""
        return {"path": str(self.path), "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
                **self._options}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        self.__init__(state.pop("path"), **state)

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, elements={self.elements}, cutoff={self.cutoff})"

    def fidelity_index(self, fidelity: str | int | None) -> int | None:
        if fidelity is None:
            return None
        if isinstance(fidelity, int) and 0 <= fidelity < len(self.fidelities):
            return fidelity
        if fidelity in self.fidelities:
            return self.fidelities.index(fidelity)
        raise ValueError(f"unknown fidelity {fidelity!r}; this model has {', '.join(self.fidelities)}")

    def check(self, atoms: Atoms) -> None:
        """Raise a typed error naming what in ``atoms`` this model cannot serve."""
        validation.check_numbers(atoms, self._known, self.elements, f"model {self.path.name}")
        validation.check_positions(atoms, self.dtype)
        validation.check_density(atoms)
        if atoms.pbc.any():
            rank = np.linalg.matrix_rank(atoms.cell.array[atoms.pbc], tol=1e-6)
            if rank < atoms.pbc.sum():
                raise InvalidStructureError(
                    f"periodic cell {atoms.cell.array.tolist()} (pbc={atoms.pbc.tolist()}) has no "
                    "volume along its periodic directions; set a cell with atoms.set_cell(...) or "
                    "turn periodicity off with atoms.pbc = False."
                )
        self._check_electrostatics(atoms)
        if atoms.pbc.any() and self.metadata.get("periodic", True) is False:
            raise InvalidStructureError(
                f"model {self.path.name} serves molecules only (metadata 'periodic': false; heads "
                f"{self.metadata.get('heads')}), and this structure is periodic: set atoms.pbc = False."
            )

    def _check_electrostatics(self, atoms: Atoms) -> None:
        """A model with long-range electrostatics serves molecules, and full cells with 'ewald'."""
        method = self.metadata["architecture"].get("electrostatics", "none")
        if method == "none" or not atoms.pbc.any():
            return
        if not atoms.pbc.all():
            raise InvalidStructureError(
                f"model {self.path.name} has long-range electrostatics ({method}), which serves "
                f"molecules and fully periodic cells, not slabs or wires (pbc={atoms.pbc.tolist()}): "
                "make the cell periodic in all three directions with vacuum along the open axis."
            )
        if method == "coulomb":
            raise InvalidStructureError(
                f"model {self.path.name} has electrostatics 'coulomb' (molecules only), and this "
                "structure is periodic: use a model built with electrostatics 'ewald', or set atoms.pbc = False."
            )

    def compute(
        self,
        structures: Sequence[Atoms],
        total_charge: Sequence[float] | None = None,
        fidelity: str | int | None = None,
        *,
        forces: bool = True,
        stress: bool = True,
        uncertainty: bool = False,
        closest: bool = False,
    ) -> list[dict[str, np.ndarray]]:
        """Evaluate several structures in one batched call; one result dict per structure.

        ``uncertainty``: also ``forces_uncertainty``, for models with an ensemble energy head
        (``energy_uncertainty`` comes free with every call of such a model).
        ``closest``: also ``"closest_pair"``, ``(i, j, distance)`` of the shortest pair of the
        call's graph (``(-1, -1, inf)``: no pair within the cutoff), where the call finds it
        (one structure on the CPU; absent otherwise).
        """
        if total_charge is not None and len(total_charge) != len(structures):
            raise ValueError(f"total_charge has {len(total_charge)} values for {len(structures)} structures; "
                             "give one per structure (or None: each structure's own)")
        if len(structures) == 1 and len(structures[0]) and self.device.type == "cpu":
            return [self._compute_one(structures[0], None if total_charge is None else total_charge[0], fidelity,
                                      forces, stress, uncertainty, closest)]
        for atoms in structures:
            self.check(atoms)
        charges = [total_charge_of(a) for a in structures] if total_charge is None else [
            check_total_charge(q, a) for q, a in zip(total_charge, structures)]
        full = [a for a in structures if len(a)]
        if len(full) < len(structures):  # ASE's convention for no atoms: zeros, empty arrays
            return self._with_empty(structures, charges, fidelity, forces=forces, stress=stress, uncertainty=uncertainty)
        inputs = self._batch_inputs(structures, charges, fidelity)
        positions, _, cell, pbc, _, batch, _ = inputs
        graph = neighbor_graph(positions, cell, pbc, batch, self.cutoff, self.neighbors)
        validation.check_overlaps(structures, positions, cell, batch, *graph)
        pairs = graph[0].shape[1]
        module = self._module_for(pairs)
        with self._calling(pairs):
            extra = {"compute_uncertainty": True} if uncertainty and "forces_uncertainty" in self.outputs else {}
            out = self._forward(module, inputs, graph, forces, stress, extra | self._atom_inputs(structures))
        results = _split(out, inputs[5], len(structures), self.metadata["outputs"])
        for atoms, result in zip(structures, results):
            if not validation.has_volume(atoms):
                result.pop("stress", None)  # a cell without volume has no stress (nor a virial/V)
        return results

    def _compute_one(self, atoms: Atoms, charge, fidelity, forces, stress, uncertainty, closest) -> dict:
        """``compute`` for one structure on the CPU: constants kept while they hold, the skin list."""
        constants = self._kept_constants(atoms, charge, self.fidelity_index(fidelity))
        graph, nearest = self._one_graph(atoms, constants)
        inputs = (torch.tensor(atoms.positions, dtype=self.dtype), *constants.tensors)
        pairs = graph[0].shape[1]
        module = self._module_for(pairs)
        with self._calling(pairs):
            extra = {"compute_uncertainty": True} if uncertainty and "forces_uncertainty" in self.outputs else {}
            extra |= self._atom_inputs([atoms])
            out = self._forward(module, inputs, graph, forces, stress and constants.has_volume, extra)
        (result,) = _split(out, inputs[5], 1, self.metadata["outputs"])
        if not constants.has_volume:
            result.pop("stress", None)  # a cell without volume has no stress (nor a virial/V)
        if closest:
            result["closest_pair"] = nearest
        return result

    def _atom_inputs(self, structures: Sequence[Atoms]) -> dict:
        """The optional per-atom inputs the file declares (metadata ``inputs``) as ``forward_batch``
        keywords: ``atom_charges`` from ASE's ``initial_charges`` (torchmd-net's Coulomb prior)."""
        if "atom_charges" not in self.inputs:
            return {}
        missing = [k for k, atoms in enumerate(structures) if not atoms.has("initial_charges")]
        if missing:
            raise InvalidStructureError(
                f"model {self.path.name} reads per-atom partial charges (metadata 'inputs': ['atom_charges'], "
                f"torchmd-net's Coulomb prior), and structure {missing[0]} has none: set them with "
                "atoms.set_initial_charges([...]) (e per atom)."
            )
        charges = np.concatenate([atoms.get_initial_charges() for atoms in structures])
        return {"atom_charges": torch.tensor(charges, dtype=self.dtype, device=self.device)}

    def _kept_constants(self, atoms: Atoms, charge, index) -> "_Constants":
        """This thread's constants of ``atoms``, checked (all checks when new, positions when kept)."""
        local = self._local
        constants = getattr(local, "constants", None)
        if constants is None or not constants.holds(atoms, index):
            self.check(atoms)  # numbers, positions, cell, pbc, electrostatics
            constants = local.constants = _Constants(atoms, index, self.dtype, self.device)
        else:
            validation.check_positions(atoms, self.dtype)  # what changes along a run
        charge = total_charge_of(atoms) if charge is None else check_total_charge(charge, atoms)
        if charge != constants.charge_value:
            constants.set_charge(charge)
        return constants

    def _one_graph(self, atoms: Atoms, constants: "_Constants"):
        """((edge_index, shifts), closest pair (i, j, Å)) from this thread's skin list; overlaps refused."""
        skin = getattr(self._local, "skin", None)
        if skin is None:
            skin = self._local.skin = SkinList(self.cutoff, self.skin, self.neighbors)
        i, j, shifts, lengths2 = skin.graph(atoms.positions, constants.cell_array, constants.pbc_array)
        edge_index, shifts = torch.from_numpy(np.stack([i, j])), torch.from_numpy(shifts).to(self.dtype)
        if not len(lengths2):
            return (edge_index, shifts), (-1, -1, float("inf"))
        k = int(np.argmin(lengths2))
        nearest = (int(i[k]), int(j[k]), float(np.sqrt(lengths2[k])))
        if nearest[2] < validation.MIN_DISTANCE:
            self._refuse_overlap(atoms, constants, edge_index[:, k], shifts[k])
        return (edge_index, shifts), nearest

    @staticmethod
    def _refuse_overlap(atoms: Atoms, constants: "_Constants", edge: torch.Tensor, shift: torch.Tensor) -> None:
        """Raise ``validation.check_overlaps``'s error for this pair (named lower index first)."""
        if edge[0] > edge[1]:
            edge, shift = edge.flip(0), -shift
        validation.check_overlaps([atoms], torch.from_numpy(atoms.positions), torch.from_numpy(constants.cell_array)[None],
                                  torch.zeros(len(atoms), dtype=torch.long), edge[:, None], shift[None])

    def _with_empty(self, structures, charges, fidelity, **options) -> list[dict[str, np.ndarray]]:
        """``compute`` for a batch holding structures without atoms: those get zero results."""
        full = [k for k, a in enumerate(structures) if len(a)]
        done = self.compute([structures[k] for k in full], [charges[k] for k in full], fidelity, **options) if full else []
        results = [validation.empty_result(a, self.metadata["outputs"]) for a in structures]
        for k, result in zip(full, done):
            results[k] = result
        return results

    def forward_tensors(
        self, positions: torch.Tensor, numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor,
        total_charge: torch.Tensor, batch: torch.Tensor, fidelity: str | int | None = None,
        *, forces: bool = True, stress: bool = True, uncertainty: bool = False,
    ) -> dict[str, torch.Tensor]:
        """One batched call on tensors in ``forward_batch``'s layout (cells as rows), for engines
        that hold tensors (torch-sim): same graph, chunking and threads as :meth:`compute`
        (``uncertainty`` as there). Outputs stay tensors on the model's device, detached."""
        require_standard_inputs(self, "this engine")
        present = numbers.unique().tolist()
        if any(z < 1 or z >= len(chemical_symbols) for z in present):
            raise InvalidStructureError(f"atomic numbers {present} include some outside the periodic table "
                                        f"(1–{len(chemical_symbols) - 1}); set real elements")
        unknown = sorted({chemical_symbols[z] for z in present if z not in self._known})
        if unknown:
            raise UnknownElementError(unknown, self.elements, f"model {self.path.name}")
        # contiguous: vesin reads raw memory, and an expanded pbc [B,3] has stride 0
        positions, cell = (t.to(self.device, self.dtype).contiguous() for t in (positions, cell))
        pbc, batch, numbers = (t.to(self.device).contiguous() for t in (pbc, batch, numbers.long()))
        index = self.fidelity_index(fidelity)
        fid = None if index is None else torch.full((cell.shape[0],), index, dtype=torch.long, device=self.device)
        graph = neighbor_graph(positions, cell, pbc, batch, self.cutoff, self.neighbors)
        module = self._module_for(graph[0].shape[1])
        with self._calling(graph[0].shape[1]):
            out = module.forward_batch(positions, numbers, cell, pbc, total_charge.to(self.device, self.dtype),
                                       batch, fid, *graph, compute_forces=forces, compute_stress=stress,
                                       compute_uncertainty=uncertainty and "forces_uncertainty" in self.outputs)
        return {key: value.detach() for key, value in out.items()}

    def _forward(self, module, inputs: tuple, graph: tuple, forces: bool, stress: bool, extra: dict) -> dict:
        """One call inside ``_calling``: the program when it serves this call, else ``module``."""
        pairs, threads = graph[0].shape[1], torch.get_num_threads()
        # a call on as many threads as the parallel program's kernels takes it; the compiled program
        # (single-threaded kernels) also serves large graphs on up to artifacts.COMPILED_MAX_THREADS
        # threads: faster there than the file on all of them
        name = "parallel_program" if (self.parallel_program is not None and threads > 1
                                      and threads == self.parallel_program.threads) else "program"
        program = getattr(self, name)
        single = pairs < self.serial_pairs or threads <= artifacts.COMPILED_MAX_THREADS
        if (program is not None and module is self.module and not extra
                and program.accepts(inputs[2].shape[0], inputs[0].shape[0], pairs, single,
                                    program.molecules_only and bool(inputs[3].any()))):
            try:
                out = program(*inputs, *graph)  # computes forces and stress always: drop what was not asked
            except RuntimeError as err:
                setattr(self, name, artifacts.failed(program, err))  # warns; the file serves from now on
            else:
                return {k: v for k, v in out.items() if (forces or k != "forces") and (stress or k != "stress")}
        return module.forward_batch(*inputs, *graph, compute_forces=forces, compute_stress=stress, **extra)

    @contextlib.contextmanager
    def _calling(self, num_pairs: int):
        """The context of one call: ``modelfile.calling()`` and this model's thread policy."""
        with modelfile.calling(), torch_threads(threads_for(self.threads, num_pairs, self.serial_pairs)):
            yield

    def _module_for(self, num_pairs: int):
        """The file's module, or for a large graph the rebuilt eager one with chunked pairs."""
        if self.chunk_pairs <= 0 or num_pairs <= 8 * self.chunk_pairs:
            return self.module
        if self._chunked is None:
            from .nn.build import rebuild
            from .nn.chunking import chunk_pairs

            eager = rebuild(self.path, (self.module, self.metadata))  # no second load of the file
            eager = eager.to(device=self.device, dtype=self.dtype).requires_grad_(False)
            self._chunked = eager if chunk_pairs(eager, self.chunk_pairs) else self.module
        return self._chunked

    def _batch_inputs(self, structures, total_charge, fidelity):
        """The arguments of ``forward_batch`` (up to the graph) for ``structures``."""
        positions, numbers, cell, pbc, batch = stack_structures(structures, self.dtype, self.device)
        charges = total_charge if total_charge is not None else [total_charge_of(a) for a in structures]
        charge = torch.tensor(np.asarray(charges, dtype=float), dtype=self.dtype, device=self.device)
        index = self.fidelity_index(fidelity)
        fid = None if index is None else torch.full((len(structures),), index, dtype=torch.long, device=self.device)
        return positions, numbers, cell, pbc, charge, batch, fid


class _Constants:
    """What stays fixed along an MD run of one structure: its numbers, cell, pbc (checked once),
    fidelity and charge, as numpy for comparing and as the model's input tensors."""

    def __init__(self, atoms: Atoms, index: int | None, dtype: torch.dtype, device: torch.device):
        self.numbers_array = np.array(atoms.numbers)
        self.cell_array = np.array(atoms.cell.array, dtype=np.float64)
        self.pbc_array = np.array(atoms.pbc, dtype=bool)
        self.index, self.dtype, self.device = index, dtype, device
        self.has_volume = validation.has_volume(atoms)
        self.numbers = torch.tensor(self.numbers_array, dtype=torch.long, device=device)
        self.cell = torch.tensor(self.cell_array[None], dtype=dtype, device=device)
        self.pbc = torch.tensor(self.pbc_array[None], dtype=torch.bool, device=device)
        self.batch = torch.zeros(len(atoms), dtype=torch.long, device=device)
        self.fidelity = None if index is None else torch.full((1,), index, dtype=torch.long, device=device)
        self.charge_value, self.charge = None, None

    def holds(self, atoms: Atoms, index: int | None) -> bool:
        """Whether ``atoms`` (and the fidelity) still has these numbers, cell and pbc, exactly."""
        return (index == self.index and np.array_equal(atoms.numbers, self.numbers_array)
                and np.array_equal(atoms.cell.array, self.cell_array) and np.array_equal(atoms.pbc, self.pbc_array))

    def set_charge(self, charge: float) -> None:
        self.charge_value = charge
        self.charge = torch.tensor([charge], dtype=self.dtype, device=self.device)

    @property
    def tensors(self) -> tuple:
        """``forward_batch``'s arguments after the positions, up to the graph."""
        return self.numbers, self.cell, self.pbc, self.charge, self.batch, self.fidelity


def stack_structures(structures: Sequence[Atoms], dtype=torch.float64, device="cpu"):
    """(positions [N,3], numbers [N], cell [B,3,3], pbc [B,3], batch [N]) of several structures."""
    if len(structures) == 1:  # ASE, MD: no concatenation, no repeat_interleave (3-4x less host time)
        (atoms,) = structures
        return (
            torch.tensor(atoms.positions, dtype=dtype, device=device),
            torch.tensor(atoms.numbers, dtype=torch.long, device=device),
            torch.tensor(atoms.cell.array[None], dtype=dtype, device=device),
            torch.tensor(atoms.pbc[None], dtype=torch.bool, device=device),
            torch.zeros(len(atoms), dtype=torch.long, device=device),
        )
    sizes = torch.tensor([len(a) for a in structures])
    return (
        torch.tensor(np.concatenate([a.positions for a in structures]), dtype=dtype, device=device),
        torch.tensor(np.concatenate([a.numbers for a in structures]), dtype=torch.long, device=device),
        torch.tensor(np.stack([a.cell.array for a in structures]), dtype=dtype, device=device),
        torch.tensor(np.stack([a.pbc for a in structures]), dtype=torch.bool, device=device),
        torch.repeat_interleave(torch.arange(len(structures)), sizes).to(device),
    )


def _split(out: dict[str, torch.Tensor], batch: torch.Tensor, n: int, table: dict) -> list[dict[str, np.ndarray]]:
    """Per-structure numpy results from a batched output dict."""
    if n == 1:  # one structure (ASE, MD): no bincount, no split
        return [{key: _numpy(value, _per_atom(key, table)) for key, value in out.items()}]
    sizes = torch.bincount(batch.cpu(), minlength=n).tolist()
    results: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
    for key, value in out.items():
        value = value.detach().cpu().numpy()
        parts = np.split(value, np.cumsum(sizes)[:-1]) if _per_atom(key, table) else list(value)
        for result, part in zip(results, parts):
            result[key] = part
    return results


def _per_atom(key: str, table: dict) -> bool:
    return table[key]["per_atom"] if key in table else PROPERTIES[key].per_atom


def _numpy(value: torch.Tensor, per_atom: bool) -> np.ndarray:
    """A one-structure output as numpy: per-atom ones whole, per-structure ones without the batch axis."""
    value = value.detach().cpu().numpy()
    return value if per_atom else value[0]


def load_model(model: str | Path | None = None, **kwargs) -> Model:
    """Load a model file or shipped model by name (see :class:`Model`)."""
    return Model(model, **kwargs)
