"""Units and conversion factors, declared once.

Inside nnpcalc everything is in Å, eV, e (elementary charge) and amu. Conversions
happen only at the boundary (OpenMM, CLI options); every factor lives here, so there
is exactly one eV→kJ/mol in the code base.
"""

from ase import units as _ase

#: Internal units of every tensor that crosses the model-file boundary.
LENGTH = "Angstrom"
ENERGY = "eV"
CHARGE = "e"
MASS = "amu"

#: Energy: eV → kJ/mol (from ASE's CODATA constants).
EV_TO_KJ_PER_MOL = 1.0 / (_ase.kJ / _ase.mol)
#: Length: nm → Å.
NM_TO_ANGSTROM = 10.0
#: Pressure: GPa → eV/Å³.
GPA_TO_EV_PER_A3 = _ase.GPa
#: Stress / pressure: eV/Å³ → GPa.
EV_PER_A3_TO_GPA = 1.0 / _ase.GPa
#: Coulomb's constant e²/(4πε₀) in eV·Å (the energy of two unit charges 1 Å apart).
COULOMB_EV_ANGSTROM = _ase.Hartree * _ase.Bohr
#: Length: bohr → Å.
BOHR_TO_ANGSTROM = _ase.Bohr
#: Time: fs → ASE time units.
FS_TO_ASE_TIME = _ase.fs
#: Time: ps → fs.
PS_TO_FS = 1000.0
#: Time: fs → ns (simulation throughput in ns/day).
FS_TO_NS = 1e-6
#: Time: one day in seconds (simulation throughput in ns/day).
SECONDS_PER_DAY = 86400.0
