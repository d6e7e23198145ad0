"""Volume per atom (Å^3/atom): one value per crystal, whatever cell describes it."""

from __future__ import annotations

import pytest


def _cells():
    from pymatgen.core import Lattice, Structure

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])
    cu = Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]])
    caf2 = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.46), ["Ca", "F"],
                                     [[0, 0, 0], [0.25, 0.25, 0.25]])
    # (structure, expected Å^3/atom): conventional cube a^3 holds 8, 4 and 12 atoms
    return [(nacl, 5.64**3 / 8), (cu, 3.61**3 / 4), (caf2, 5.46**3 / 12)]


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("cell", ["conventional", "primitive", "supercell"])
def test_volume_per_atom_is_a_property_of_the_crystal(case, cell):
    from ecdflow.features import volume_per_atom

    s, expected = _cells()[case]
    s = {"conventional": s, "primitive": s.get_primitive_structure(),
         "supercell": s * (2, 1, 3)}[cell]
    assert volume_per_atom(s) == pytest.approx(expected, rel=1e-9)


def test_volume_per_atom_refuses_an_empty_structure():
    from pymatgen.core import Lattice, Structure

    from ecdflow.errors import InputError
    from ecdflow.features import volume_per_atom

    with pytest.raises(InputError, match="volume per atom"):
        volume_per_atom(Structure(Lattice.cubic(3.0), [], []))
