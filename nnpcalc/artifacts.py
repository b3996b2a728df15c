"""Artifacts beside the TorchScript model file: which one serves a model, and where they are cached.

A model file is TorchScript (``nnpcalc.modelfile``), the contract every engine loads. From it
nnpcalc can build, once per machine, two more artifacts (``nnpcalc.exported``):

=============  =====================================================  ==========================
artifact       what                                                   used when
=============  =====================================================  ==========================
"compiled"     the ``torch.export`` program compiled by AOTInductor     ``artifact="auto"`` finds it
               (native kernels, no Python or TorchScript per op)       cached, or it is asked for
"exported"     the ``torch.export`` program, run by torch's FX graph   only when asked for
"torchscript"  the model file itself                                   otherwise, and as fallback
=============  =====================================================  ==========================

Building is explicit (``nnp compile``, ``Model(..., artifact="compiled")``): it takes
tens of seconds (exported) to minutes (compiled). Programs are cached under
``~/.cache/nnpcalc/artifacts`` (``NNPCALC_CACHE_DIR`` or ``root=`` moves it; nothing is written
outside it), named by a hash of everything they depend on: the model file's SHA-256, nnpcalc's
network code, torch version, CPU, dtype and device. Any failure to build or load one is an
:class:`~nnpcalc.errors.ArtifactWarning` saying why, and the TorchScript file serves (the same
numbers). A program serves one structure of ``N >= 2`` atoms and ``E >= 2`` pairs per call; the
compiled one runs on one thread, so it serves the graphs the runtime runs on one thread, and every
graph while torch runs on at most ``COMPILED_MAX_THREADS`` threads (it is faster there than the file).

A TensorNet model whose heads are the energy and, optionally, the ZBL wall gets a second compiled
program (``nnp compile`` builds both): it takes its graph in per-receiver slots
(``nnpcalc.slots``), holds no scatter, and runs its kernels on ``PARALLEL_THREADS`` threads; it
serves the calls the runtime runs on that many threads (graphs of ``serial_pairs`` pairs and up).
An edge-list program cannot: its scatters would need atomic adds, slower on two threads than on one
(docs/benchmarks.md, figure 1).

Loading an exported program never unpickles (the archive is checked first). A compiled package
is native code: nnpcalc loads only packages it compiled itself into its own cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .errors import ArtifactWarning, ModelFileError
from .properties import dtype_name

ARTIFACTS = ("auto", "compiled", "exported", "torchscript")
#: bump when the programs' calling convention or build recipe changes (old cache entries then miss)
ARTIFACT_VERSION = 2
#: a compiled program's kernels are single-threaded, yet on up to this many torch threads it serves
#: large graphs too: faster than the TorchScript file on all of them (2 vCPUs, TensorNet 128×2 float32,
#: docs/benchmarks.md figure 1); with more threads the file serves graphs of ``serial_pairs`` pairs and up.
#: A model whose program takes its graph in slots (``nnpcalc.slots``) also gets a compiled program
#: whose kernels run on this many threads: it serves the calls that run on as many torch threads
PARALLEL_THREADS = COMPILED_MAX_THREADS = 2
#: network code whose change changes the traced program for the same model file
_CODE = ("nn", "graph.py", "exported.py", "slots.py")


def cache_dir(root: str | Path | None = None) -> Path:
    """Where programs are cached: ``root``, else ``$NNPCALC_CACHE_DIR``, else ~/.cache/nnpcalc; then /artifacts."""
    base = root or os.environ.get("NNPCALC_CACHE_DIR") or Path.home() / ".cache" / "nnpcalc"
    return Path(base).expanduser().resolve() / "artifacts"


def artifact_info(model_path: str | Path, dtype: torch.dtype, device, threads: int = 1) -> dict:
    """Everything a cached program depends on; its hash names the cache entry. ``threads``: its
    kernels' threads (compiled programs; more than 1: a program in slots)."""
    return {
        "kernel_threads": int(threads),
        "artifact_version": ARTIFACT_VERSION,
        "model_sha256": _sha256_file(Path(model_path)),
        "code_sha256": _code_digest(),
        "nnpcalc_version": __version__,
        "torch_version": torch.__version__,
        "cpu": _cpu_name(),
        "dtype": dtype_name(dtype),
        "device": torch.device(device).type,
    }


def cache_path(model_path: str | Path, kind: str, info: dict, root: str | Path | None = None) -> Path:
    """The cache entry of artifact ``kind`` ("exported" or "compiled") for ``info``."""
    key = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir(root) / f"{Path(model_path).stem}-{info['dtype']}-{key}.{kind}.pt2"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _code_digest() -> str:
    root = Path(__file__).parent
    files = sorted(p for name in _CODE for p in ([root / name] if name.endswith(".py") else (root / name).glob("*.py")))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        name = ""
    return f"{platform.machine()} {name or platform.processor()}".strip()


class Program:
    """A loaded exported or compiled program: called like ``Potential.evaluate``, returns a dict."""

    def __init__(self, kind: str, module, keys: list[str], path: Path, molecules_only: bool = False,
                 threads: int = 1):
        self.kind, self.module, self.keys, self.path = kind, module, list(keys), path
        self.molecules_only = molecules_only  # built for pbc all False (models with electrostatics)
        self.threads = int(threads)  # its kernels' threads; > 1: it takes its graph in slots
        self._fidelity = {}  # (structures, device) → the default fidelity's zeros, made once

    def __repr__(self) -> str:
        return f"Program({self.kind!r}, {str(self.path)!r})"

    def accepts(self, num_structures: int, num_atoms: int, num_pairs: int, one_thread: bool,
                periodic: bool = False) -> bool:
        """Whether this program serves a call of this size; ``one_thread``: the call would run on one
        thread anyway, or torch runs on at most ``COMPILED_MAX_THREADS`` (compiled kernels are
        single-threaded: with more threads, larger graphs keep the file on all of them);
        ``periodic``: any pbc flag is set (a molecule program serves none)."""
        from .exported import MIN_ATOMS, MIN_PAIRS

        threads_ok = self.kind != "compiled" or one_thread
        return (threads_ok and num_structures == 1 and num_atoms >= MIN_ATOMS and num_pairs >= MIN_PAIRS
                and not (periodic and self.molecules_only))

    def __call__(self, positions, atomic_numbers, cell, pbc, total_charge, batch, fidelity, edge_index, shifts):
        if fidelity is None:
            key = (cell.shape[0], cell.device)
            fidelity = self._fidelity.get(key)
            if fidelity is None:
                fidelity = self._fidelity[key] = torch.zeros(cell.shape[0], dtype=torch.long, device=cell.device)
        inputs = (positions, atomic_numbers, cell, pbc, total_charge, batch, fidelity, edge_index, shifts)
        if self.threads > 1:  # the graph in slots (nnpcalc.slots), built per call: ~1.5 ms for 256 atoms
            from .exported import slot_inputs

            inputs = slot_inputs(inputs)
        if self.kind == "compiled":  # its C++ runner sets grad mode itself: no no_grad block (~5 µs)
            with flushed_subnormals():
                values = self.module(*inputs)
        else:
            with torch.no_grad():  # forces and stress are ops of the program
                values = self.module(*inputs)
        return dict(zip(self.keys, values))


#: a float32 subnormal: multiplied by one it stays itself unless this thread flushes subnormals
#: (a numpy scalar: its product is one SSE instruction under the thread's flags, 0.1 µs against
#: ~5-20 µs for three small torch ops)
_SUBNORMAL, _ONE = np.float32(1e-40), np.float32(1.0)


@contextlib.contextmanager
def flushed_subnormals(active: bool = True):
    """Subnormal floats (below 1.2e-38 in float32, 2.2e-308 in float64) read and written as zero inside
    the block, on this thread only (the CPU's FTZ/DAZ flags), as they were after it.

    The compiled program runs on the calling thread; on ethanol in float32 its call took 1.26 ms
    with subnormals and 0.84 ms without (the smooth cutoff's and radial basis' far tails), while a
    value that small changes nothing a float32 or float64 result can hold."""
    if not active or not _SUBNORMAL * _ONE or not torch.set_flush_denormal(True):
        yield  # already flushing, or a CPU without the flags
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def failed(program: Program, err: Exception) -> None:
    """Warn that ``program`` failed on a call (the caller then serves from the TorchScript file)."""
    warnings.warn(
        f"nnpcalc: the {program.kind} program {program.path} failed ({type(err).__name__}: {err}); the "
        "TorchScript file serves this and later calls (same numbers). Delete the program to rebuild it.",
        ArtifactWarning, stacklevel=4,
    )


def build(model_path: str | Path, kind: str, dtype: torch.dtype, device="cpu", root=None, loaded=None,
          threads: int = 1) -> Path:
    """Build artifact ``kind`` ("exported" or "compiled") of a model file into the cache; its path.
    ``threads`` > 1: a compiled program in slots whose kernels run on that many threads."""
    from .exported import compile_program, export_program, molecules_only
    from .modelfile import load as load_file

    if threads > 1 and kind != "compiled":
        raise ValueError("only compiled programs run their kernels on several threads")
    loaded = loaded if loaded is not None else load_file(model_path)
    info = artifact_info(model_path, dtype, device, threads)
    target = cache_path(model_path, kind, info, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name[:-4]}.{os.getpid()}.partial.pt2")
    with warnings.catch_warnings():  # torch's own deprecation notices while it traces and compiles
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        program, keys = export_program(model_path, dtype, device, loaded, slots=threads > 1)
        if kind == "compiled":
            compile_program(program, partial, target.parent / "inductor", threads)
        else:
            program.example_inputs = None  # nothing pickled in the archive (``load`` refuses archives that are)
            torch.export.save(program, partial)
    described = info | {"kind": kind, "keys": keys, "molecules_only": molecules_only(loaded[1])}
    if kind == "compiled":
        described["proxied_ops"] = proxied_ops(partial)
    _sidecar(target).write_text(json.dumps(described, indent=1))
    os.replace(partial, target)  # readers never see a half-written program
    return target


def proxied_ops(path: str | Path) -> list[str]:
    """The ATen ops a compiled package runs through AOTInductor's proxy executor (ops without a C
    shim: a boxed dispatcher call each, outside its kernels), as its ``*.wrapper.json`` lists them."""
    with zipfile.ZipFile(path) as archive:
        return [node["node"]["target"] for name in archive.namelist() if name.endswith(".wrapper.json")
                for node in json.loads(archive.read(name)).get("nodes", [])]


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def load(path: str | Path, info: dict | None = None) -> Program:
    """A cached program; ``ModelFileError`` if it is stale for ``info`` or holds pickles."""
    path = Path(path)
    try:
        stored = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError) as err:
        raise ModelFileError(f"{path} has no readable description ({err}); delete it to rebuild") from err
    if info is not None and {key: stored.get(key) for key in info} != info:
        raise ModelFileError(f"{path} was built for another model file, torch, CPU or nnpcalc; delete it to rebuild")
    if stored["kind"] == "compiled":
        module = _compiled_runner(path)
    else:
        _refuse_pickles(path)
        module = torch.export.load(path).module()
    return Program(stored["kind"], module, stored["keys"], path, bool(stored.get("molecules_only", False)),
                   int(stored.get("kernel_threads", 1)))


def _compiled_runner(path: Path):
    """Run a compiled package through torch's C++ loader directly: ``aoti_load_package`` imports
    torch._inductor (and dynamo: about one more ``import torch``) and probes the CPU's vector
    instructions in subprocesses on every load (seconds); the cache key already pins CPU and torch."""
    loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
    return lambda *inputs: loader.run(list(inputs))


def _refuse_pickles(path: Path) -> None:
    """Raise ``ModelFileError`` unless ``torch.export.load(path)`` reads raw tensors only."""
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(("_weights_config.json", "_constants_config.json")):
                    for entry in json.loads(archive.read(name))["config"].values():
                        if entry.get("use_pickle") or not entry["path_name"].startswith(("weight_", "tensor_")):
                            raise ModelFileError(f"{path} holds pickled objects ({name}); refusing to load it")
                elif "/data/sample_inputs/" in name and archive.getinfo(name).file_size:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)  # torch would retry unsafely
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{path} is not a readable exported program ({err}); delete it to rebuild") from err


_noticed: set = set()  # (model file and dtype, kind) already said stale in this process: one word per model


def _notice_stale(model_path, kind: str, info: dict, root) -> None:
    """Warn (once per process) when the cache holds a ``kind`` program of this very model file built
    by another nnpcalc, torch, CPU or network code: ``nnp compile`` was run, and an upgrade made
    its program miss, so the TorchScript file serves until it is run again."""
    stem = f"{Path(model_path).stem}-{info['dtype']}-"
    key = (stem, kind)
    if key in _noticed:
        return
    for sidecar in cache_dir(root).glob(f"{stem}*.{kind}.pt2.json"):
        try:
            stored = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if (stored.get("model_sha256") == info["model_sha256"] and stored.get("device") == info["device"]
                and stored.get("kernel_threads", 1) == info["kernel_threads"]):
            _noticed.add(key)
            changed = [k for k in ("nnpcalc_version", "torch_version", "code_sha256", "cpu", "artifact_version")
                       if stored.get(k) != info[k]]
            warnings.warn(
                f"nnpcalc: the {kind} program cached for {Path(model_path).name} ({info['dtype']}) was built "
                f"for another {', '.join(changed) or 'build'}; the TorchScript file serves (same numbers, "
                f"slower). Run `nnp compile {model_path}` to rebuild it for this installation.",
                ArtifactWarning, stacklevel=4,
            )
            return


def for_model(model_path: str | Path, dtype: torch.dtype, device="cpu", artifact: str = "auto",
              root=None, loaded=None, threads: int = 1) -> Program | None:
    """The program serving ``model_path`` in ``dtype`` on ``device``, or None: the TorchScript file serves.

    ``artifact``: "auto" (a cached compiled program, if any), "compiled" or "exported" (built
    when missing), "torchscript". ``threads`` > 1: the compiled program whose kernels run on that
    many threads, None for models without one (``exported.slots_possible``). A failure is an
    :class:`ArtifactWarning` naming its cause.
    """
    if artifact not in ARTIFACTS:
        raise ValueError(f"unknown artifact {artifact!r}; choose from {', '.join(ARTIFACTS)}")
    if artifact == "torchscript" or (threads > 1 and artifact == "exported"):
        return None
    if threads > 1:
        from .exported import slots_possible
        from .modelfile import load as load_file

        if not slots_possible((loaded if loaded is not None else load_file(model_path))[1]):
            return None
    kind, step, path = "compiled" if artifact == "auto" else artifact, "find", "its cache"
    try:
        info = artifact_info(model_path, dtype, device, threads)
        path, step = cache_path(model_path, kind, info, root), "load"
        if not path.is_file():
            if artifact == "auto":
                _notice_stale(model_path, kind, info, root)
                return None
            step = "build"
            build(model_path, kind, dtype, device, root, loaded, threads)
        return load(path, info)
    except Exception as err:  # any failure: serve from the TorchScript file, and say why
        warnings.warn(
            f"nnpcalc: could not {step} the {kind} program of {Path(model_path).name} "
            f"({dtype_name(dtype)}, {path}): {type(err).__name__}: {err}. The TorchScript "
            "file serves instead (same numbers; slower for small systems).", ArtifactWarning, stacklevel=3,
        )
        return None
