"""Domain facts of ecdflow, written once: the targets and their names and units, the model
inputs and their shapes, the run identity, and the one test for a remote path.

Everything else imports these; nothing here imports another ecdflow module (it is the ground
floor, next to ``ecdflow.errors``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

TargetName = Literal["K_VRH", "G_VRH"]
TARGETS: tuple[str, ...] = ("K_VRH", "G_VRH")
"""Voigt-Reuss-Hill bulk (K) and shear (G) moduli, both in GPa."""
TARGET_UNIT = "GPa"
TARGET_LABELS = {"K_VRH": "bulk modulus", "G_VRH": "shear modulus"}
TARGET_SLUG = {"K_VRH": "k-vrh", "G_VRH": "g-vrh"}
"""Lower-case, dash-separated names (KFP task names)."""
TARGET_ALIASES = {"bulk": "K_VRH", "k": "K_VRH", "k_vrh": "K_VRH",
                  "shear": "G_VRH", "g": "G_VRH", "g_vrh": "G_VRH"}
"""What a user may type for a target (case-insensitive)."""
REGISTERED_MODEL_NAMES = {"K_VRH": "ecdflow-bulk-modulus", "G_VRH": "ecdflow-shear-modulus"}
"""Default MLflow registered-model name per target (``registry.model_names``)."""

BASELINE_MODEL = "rf_magpie"
"""The baseline every candidate must beat: RF + Magpie (paper, Table 2)."""

MAGPIE_LEN = 132
"""Width of the Magpie composition feature vector (matminer ``magpie`` preset)."""
INPUT_ECD = "ecd"
INPUT_MAGPIE = "magpie"
INPUTS = (INPUT_ECD, INPUT_MAGPIE)
"""Named model inputs: ``ecd`` (N, N, N, 1) float32 e/Å^3; ``magpie`` (132,) float32."""
INPUT_VOLUME = "volume_per_atom"
"""Named input ``volume_per_atom`` (1,) float32: the cell volume divided by the number of
sites, Å^3/atom (``ecdflow.features.volume_per_atom``; a composition has none). The one
structural number the procrystal density scales with (issue 15's baseline)."""
VOLUME_UNIT = "Å^3/atom"
ECD_INVARIANTS_HMAX = 8
"""Largest Miller index of the Fourier-orbit density invariants (``ecdflow.density_invariants``;
needs a grid N > 16, so the quick profile's 32^3 and the paper's 60^3 both serve)."""
ECD_INVARIANTS_LEN = 55
"""Width of the density invariants: the mean density plus 54 fcc-allowed (h, k, l) orbits
with max index <= ``ECD_INVARIANTS_HMAX`` (34 all-even, 20 all-odd)."""
TABULAR_INPUTS = (INPUT_MAGPIE, INPUT_VOLUME, INPUT_ECD)
"""Column order of a scikit-learn model's feature matrix: the inputs it reads, in this order
(rf_magpie: 132 Magpie columns; rf_magpie_volume: 132 Magpie columns then the volume; a
tabular model reading ``ecd`` gets its ``ECD_INVARIANTS_LEN`` Fourier invariants last,
``ecdflow.features.tabular_matrix``)."""


def tabular_width(inputs: tuple[str, ...] | list[str]) -> int:
    """Columns of a scikit-learn model's feature matrix for these inputs (132 Magpie, 1 volume,
    ``ECD_INVARIANTS_LEN`` for ``ecd``)."""
    width = {INPUT_MAGPIE: MAGPIE_LEN, INPUT_VOLUME: 1, INPUT_ECD: ECD_INVARIANTS_LEN}
    return sum(width[k] for k in inputs if k in width)
GRID_PARAM = "grid"
"""The MLflow param (and manifest key) holding a run's density grid N (points per axis)."""
ECD_DTYPE_PARAM = "ecd_dtype"
"""The MLflow param (and manifest key) holding the storage dtype (float16/float32) of the
densities a run trained on: the served density is rounded to it (``records.as_stored``)."""


def input_shape(name: str, grid: int) -> tuple[int, ...]:
    """Shape of one model input with a leading batch dimension (-1): ``ecd`` (-1, N, N, N, 1),
    ``magpie`` (-1, 132), ``volume_per_atom`` (-1, 1). Raises KeyError for an unknown input."""
    return {INPUT_ECD: (-1, grid, grid, grid, 1), INPUT_MAGPIE: (-1, MAGPIE_LEN),
            INPUT_VOLUME: (-1, 1)}[name]


def is_remote(path: object) -> bool:
    """Whether a path is a URL (``s3://``, ``gs://``, ``file://`` ...) rather than a local path."""
    return "://" in str(path)


@dataclass(frozen=True)
class RunKey:
    """Identity of one training run: model type, target, split (``cv-<k>`` / ``loeo-<El>``)
    and repeat index (0-based; the seed is ``settings.seed + repeat``)."""

    model: str
    target: str
    split: str
    repeat: int = 0

    @property
    def name(self) -> str:
        """MLflow run name and log label, e.g. ``cnn3d-K_VRH-cv-0-r1``."""
        return f"{self.model}-{self.target}-{self.split}-r{self.repeat}"


DENSITY_PROCRYSTAL = "procrystal"
"""Density source: neutral free-atom valence procrystal (``ecdflow.density``; Slater
orbitals with Slater's screening rules, Gaussian smearing ``density.smearing_A``)."""
DENSITY_CHGCAR = "chgcar"
"""Density source: a VASP CHGCAR (self-consistent DFT density, ``ecdflow.chgcar``)."""
DENSITY_NONE = "none"
"""No density (composition-only records)."""
SymmetryMode = Literal["none", "point48", "origin", "normalizer"]
"""Operation sets on the ECD cube (``ecdflow.symmetry``) for training augmentation and
test-time averaging: ``none``; ``point48`` the 48 m-3m point operations about the origin;
``origin`` identity and the half-cube shift between the two m-3m sites (4a <-> 4b);
``normalizer`` both (96 operations)."""
SYMMETRY_MODES: tuple[str, ...] = get_args(SymmetryMode)
