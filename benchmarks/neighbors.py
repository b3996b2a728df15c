"""Neighbour-list cost per call: nnpcalc's in-file cell list vs vesin-torch vs ASE.

Run: OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/neighbors.py
Cu fcc (a = 3.6 Å, cubic cells repeated), cutoff 5 Å, 1 torch thread, median of 3 calls.
"""
import time, torch, numpy as np
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_nl
from nnpcalc.graph import neighbor_list
import vesin_torch as vt  # peer, measured in the same run
torch.set_num_threads(1)
def med(f, n=3):
    ts=[]
    for _ in range(n):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return sorted(ts)[len(ts)//2]
print("atoms  nnpcalc_ms  vesin_ms  ase_ms  pairs")
for rep in [(3,3,3),(6,6,6),(10,10,10),(14,14,14),(20,20,20)]:
    at = bulk("Cu","fcc",a=3.6,cubic=True).repeat(rep); at.rattle(0.05, seed=1)
    pos=torch.tensor(at.positions); cell=torch.tensor(at.cell.array); pbc=torch.tensor(at.pbc); b=torch.zeros(len(at),dtype=torch.long)
    ours = med(lambda: neighbor_list(pos, cell[None], pbc[None], b, 1, 5.0))
    nl = vt.NeighborList(cutoff=5.0, full_list=True)
    ves = med(lambda: nl.compute(points=pos, box=cell, periodic=True, quantities="ijS"))
    a = med(lambda: ase_nl("ijS", at, 5.0), 1) if len(at) <= 11000 else float("nan")
    print(f"{len(at):6d} {ours*1e3:10.1f} {ves*1e3:9.1f} {a*1e3:7.1f} {neighbor_list(pos, cell[None], pbc[None], b, 1, 5.0)[0].shape[1]}")
