"""Periodic neighbour graph: every image within the cutoff, for every cell.

One pure-torch, TorchScript-able cell list that lives inside every exported model file, so
the file needs nothing but torch (OpenMM's C++ ``TorchForce`` included). It handles

* cells smaller than the cutoff (a 1-atom fcc cell sees hundreds of images of itself),
* any triclinic cell, with no reduced-form requirement,
* mixed periodicity (slabs ``pbc=[1,1,0]``, wires) and molecules (no pbc),
* batches of structures, each with its own cell,

in O(N): atoms are binned along each axis into slabs at least ``cutoff`` thick (in the
perpendicular direction), and only the bins within reach are searched.

Convention (used by every backbone): ``edge_index[0] = i`` is the centre atom,
``edge_index[1] = j`` its neighbour, and the pair vector is
``r_ij = positions[j] - positions[i] + shifts[e] @ cell[batch[i]]`` (integer ``shifts``).
Pairs ``i == j`` with zero shift are never returned; backbones that want self-loops add them.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor


def _unit(v: Tensor) -> Tensor:
    return v / torch.linalg.norm(v)


def binning_cell(cell: Tensor, pbc: Tensor) -> Tensor:
    """The cell with every non-periodic row replaced by a unit vector orthogonal to the rest.

    Shifts never run along a non-periodic axis, so that row only orients the bins.
    """
    periodic: List[int] = []
    open_axes: List[int] = []
    for k in range(3):
        if bool(pbc[k]):
            periodic.append(k)
        else:
            open_axes.append(k)
    if len(open_axes) == 0:
        return cell
    out = torch.eye(3, dtype=cell.dtype, device=cell.device)
    if len(open_axes) == 3:
        return out
    for k in periodic:
        out[k] = cell[k]
    if len(open_axes) == 1:
        out[open_axes[0]] = _unit(torch.linalg.cross(cell[periodic[0]], cell[periodic[1]]))
        return out
    a = _unit(cell[periodic[0]])
    helper = torch.eye(3, dtype=cell.dtype, device=cell.device)[int(torch.argmin(a.abs()))]
    u = _unit(helper - (helper @ a) * a)
    out[open_axes[0]] = u
    out[open_axes[1]] = torch.linalg.cross(a, u)
    return out


def _segment_extremes(frac: Tensor, batch: Tensor, num_structures: int) -> Tuple[Tensor, Tensor]:
    shape = (num_structures, 3)
    index = batch.unsqueeze(1).expand(-1, 3)
    lo = torch.full(shape, float("inf"), dtype=frac.dtype, device=frac.device)
    hi = torch.full(shape, -float("inf"), dtype=frac.dtype, device=frac.device)
    lo = lo.scatter_reduce(0, index, frac, "amin", include_self=True)
    hi = hi.scatter_reduce(0, index, frac, "amax", include_self=True)
    return lo, hi


def _stencil(reach: Tensor) -> Tensor:
    r0, r1, r2 = int(reach[0]), int(reach[1]), int(reach[2])
    axes = [
        torch.arange(-r, r + 1, device=reach.device, dtype=torch.long) for r in (r0, r1, r2)
    ]
    grid = torch.meshgrid(axes[0], axes[1], axes[2], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grid], dim=1)  # [O, 3]


def _wrapped_fractional(
    pos: Tensor, inv: Tensor, periodic_atom: Tensor
) -> Tuple[Tensor, Tensor]:
    """Fractional coordinates wrapped into [0, 1) along periodic axes, and the integer wraps."""
    frac = torch.bmm(pos.unsqueeze(1), inv).squeeze(1)
    wrap = torch.where(periodic_atom, torch.floor(frac), torch.zeros_like(frac))
    frac = frac - wrap
    over = periodic_atom & (frac >= 1.0)  # -1e-17 wraps to exactly 1.0
    return torch.where(over, frac - 1.0, frac), torch.where(over, wrap + 1.0, wrap)


def _bin_layout(
    frac: Tensor, inv: Tensor, periodic: Tensor, batch: Tensor, num_structures: int, cutoff: float
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per structure and axis: lower bound, extent (fractional), bin count and stencil reach.

    Bins are slabs at least ``cutoff`` thick across the lattice planes, capped at a few per
    atom for sparse systems; the reach is how many bins a pair within the cutoff can span.
    """
    lo, hi = _segment_extremes(frac, batch, num_structures)
    lo = torch.where(periodic, torch.zeros_like(lo), lo)
    extent = torch.where(periodic, torch.ones_like(hi), (hi - lo).clamp(min=1e-6))
    spacing = 1.0 / torch.linalg.norm(inv, dim=1)  # distance between lattice planes
    thickness = extent * spacing
    nbins = torch.floor(2.0 * thickness / cutoff).clamp(min=1.0)  # half-cutoff bins
    cap = 4.0 * torch.bincount(batch, minlength=num_structures).to(frac.dtype) + 64.0
    for _ in range(3):  # shrink only the axes with several bins, so one long open axis is capped too
        split = (nbins > 1.0).sum(dim=1).clamp(min=1).to(frac.dtype)
        scale = torch.clamp(cap / nbins.prod(dim=1), max=1.0).pow(1.0 / split).unsqueeze(1)
        nbins = torch.floor(nbins * scale).clamp(min=1.0)
    reach = torch.ceil(cutoff / (thickness / nbins))
    reach = torch.where(periodic, reach, torch.minimum(reach, nbins - 1.0))
    return lo, extent, nbins, reach


def _bin_index(coord: Tensor, nb: Tensor, owner: Tensor) -> Tensor:
    """Global bin id of integer bin coordinates ``coord`` [..., 3] in structures ``owner``."""
    bins_per = nb.prod(dim=1)
    offset = torch.cumsum(bins_per, 0) - bins_per
    strides = torch.stack([nb[:, 1] * nb[:, 2], nb[:, 2], torch.ones_like(nb[:, 2])], dim=1)
    return offset[owner] + (coord * strides[owner]).sum(-1)


def _expand_bins(count: Tensor, first_in_bin: Tensor) -> Tuple[Tensor, Tensor]:
    """Every (slot, atom) pair, for slots whose bin holds ``count`` atoms from ``first_in_bin``."""
    device = count.device
    slot = torch.repeat_interleave(torch.arange(count.shape[0], device=device), count)
    first = torch.cumsum(count, 0) - count
    within = torch.arange(slot.shape[0], device=device) - first[slot]
    return slot, first_in_bin[slot] + within


def _bin_atoms(
    pos: Tensor, cell: Tensor, periodic: Tensor, batch: Tensor, num_structures: int, cutoff: float
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Bin every atom; return, in bin order: the permutation, bin coordinates [N,3] and
    integer wraps [N,3]; and per structure: bins per axis [B,3], stencil reach [B,3], and
    the atom count of every bin."""
    bcell = torch.stack([binning_cell(cell[b], periodic[b]) for b in range(num_structures)])
    inv = torch.linalg.inv(bcell)  # columns are reciprocal vectors
    frac, wrap = _wrapped_fractional(pos, inv[batch], periodic[batch])
    lo, extent, nbins, reach = _bin_layout(frac, inv, periodic, batch, num_structures, cutoff)
    nb = nbins.to(torch.long)
    coord = torch.floor((frac - lo[batch]) / extent[batch] * nbins[batch]).to(torch.long)
    coord = torch.minimum(coord.clamp(min=0), nb[batch] - 1)
    bin_id = _bin_index(coord, nb, batch)
    counts = torch.bincount(bin_id, minlength=int(nb.prod(dim=1).sum()))
    order = torch.argsort(bin_id, stable=True)  # bin order: neighbours are contiguous in memory
    return order, coord[order], wrap[order], nb, reach, counts


def _stencil_slots(
    coord: Tensor, owner: Tensor, periodic_atom: Tensor, nb: Tensor, reach: Tensor, counts: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    """For every (atom, stencil offset) slot: its bin, the image it lies in [N,O,3] and how
    many atoms that bin holds (0 off a non-periodic edge)."""
    stencil = _stencil(reach.max(dim=0).values.to(torch.long))
    n_off = stencil.shape[0]
    ncoord = coord.unsqueeze(1) + stencil.unsqueeze(0)  # [N, O, 3]
    nb_e = nb[owner].unsqueeze(1).expand(-1, n_off, -1)
    per_e = periodic_atom.unsqueeze(1).expand(-1, n_off, -1)
    image = torch.where(per_e, torch.div(ncoord, nb_e, rounding_mode="floor"), 0)
    ncoord = ncoord - image * nb_e
    valid = ((ncoord >= 0) & (ncoord < nb_e)).all(dim=-1).reshape(-1)
    ncoord = torch.minimum(ncoord.clamp(min=0), nb_e - 1)
    nbin = _bin_index(ncoord, nb, owner.unsqueeze(1).expand(-1, n_off)).reshape(-1)
    return nbin, image, torch.where(valid, counts[nbin], 0)


def neighbor_list(
    positions: Tensor,
    cell: Tensor,
    pbc: Tensor,
    batch: Tensor,
    num_structures: int,
    cutoff: float,
) -> Tuple[Tensor, Tensor]:
    """All pairs (i, j, image) closer than ``cutoff``.

    Args:
        positions: [N, 3] Å.
        cell: [B, 3, 3] Å, rows are lattice vectors (ignored along non-periodic axes).
        pbc: [B, 3] bool.
        batch: [N] structure index of every atom.
        num_structures: B.
        cutoff: Å.

    Returns:
        edge_index [2, E] (int64) and shifts [E, 3] (integer-valued, dtype of positions).
    """
    with torch.no_grad():
        pos = positions.detach().to(torch.float64)
        cell64 = cell.detach().to(torch.float64)
        periodic = pbc.to(torch.bool)
        order, coord, wrap, nb, reach, counts = _bin_atoms(pos, cell64, periodic, batch, num_structures, cutoff)
        owner = batch[order]
        cells = cell64[owner]
        nbin, image, count = _stencil_slots(coord, owner, periodic[owner], nb, reach, counts)
        n_off = image.shape[1]

        # candidate pairs: wrapped positions plus the image vector of their slot
        pos_w = pos[order] - torch.bmm(wrap.unsqueeze(1), cells).squeeze(1)
        image_vec = torch.bmm(image.to(torch.float64), cells).reshape(-1, 3)
        slot, j = _expand_bins(count, (torch.cumsum(counts, 0) - counts)[nbin])
        i = torch.div(slot, n_off, rounding_mode="floor")
        vec = pos_w[j] - pos_w[i] + image_vec[slot]
        keep = (vec * vec).sum(-1) < cutoff * cutoff
        slot, i, j = slot[keep], i[keep], j[keep]
        shift = image.reshape(-1, 3)[slot] - wrap[j].to(torch.long) + wrap[i].to(torch.long)
        keep = (i != j) | (shift != 0).any(dim=-1)
        return torch.stack([order[i[keep]], order[j[keep]]]), shift[keep].to(positions.dtype)


def edge_vectors(
    positions: Tensor, cell: Tensor, batch: Tensor, edge_index: Tensor, shifts: Tensor
) -> Tensor:
    """Differentiable pair vectors ``r_ij = r_j - r_i + shift @ cell`` [E, 3]."""
    i, j = edge_index[0], edge_index[1]
    offsets = torch.bmm(shifts.unsqueeze(1), cell[batch[i]]).squeeze(1)
    return positions[j] - positions[i] + offsets
