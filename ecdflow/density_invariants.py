"""Origin- and rotation-invariant descriptor of a charge-density cube: Fourier magnitudes
averaged over the orbits of the cubic point group (issue 15, "one model beyond the paper").

For a density rho on an N^3 periodic grid of the conventional cube (e/Å^3), the discrete
Fourier coefficients are ``F(hkl) = N^-3 sum_r rho(r) exp(-2 pi i (h x + k y + l z))``
(Miller indices of the cube, x = i/N ...): ``F(000)`` is the mean density (e/Å^3) and ``F(hkl)``
equals the crystallographic structure factor divided by the cell volume (International
Tables for Crystallography Vol. B, ch. 1.2, eq. 1.2.2.1 up to the 1/V factor). A shift of the
origin multiplies ``F(hkl)`` by a phase, so ``|F(hkl)|`` is origin-invariant (the
Patterson-function argument, ITC Vol. B ch. 2.2); the 48 operations of m-3m permute and
change the signs of (h, k, l), so the mean of ``|F|`` over one orbit (all permutations and
sign changes of one (h, k, l)) is invariant to them as well. An fcc lattice has nonzero
``F(hkl)`` only for all-even or all-odd (h, k, l) (the lattice's extinction rule), so only
those orbits are kept.

Features (float64, ``n_shells = ECD_INVARIANTS_LEN``): ``[F(000), <|F|>_orbit / F(000) ...]``,
the mean density in e/Å^3 (= electrons per cube / cube volume, the issue's "F(000)/V") then
one dimensionless ratio per orbit, orbits ordered by h^2+k^2+l^2 then by the sorted indices,
for all orbits with max(|h|, |k|, |l|) <= ``HMAX``. The coefficients below Nyquist depend on
the physical density, not on the grid, so cubes of the same crystal at 32^3 and 60^3 give
the same features (to the resampling error of the density source).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ecdflow.errors import InputError
from ecdflow.schema import ECD_INVARIANTS_HMAX as HMAX
from ecdflow.schema import ECD_INVARIANTS_LEN


@lru_cache(maxsize=8)
def orbits(hmax: int = HMAX) -> tuple[tuple[int, int, int], ...]:
    """The fcc-allowed orbit representatives (0 <= h <= k <= l <= hmax, all even or all odd,
    not (0,0,0)), ordered by h^2+k^2+l^2 then (h, k, l)."""
    reps = [(h, k, m) for m in range(hmax + 1) for k in range(m + 1) for h in range(k + 1)
            if h % 2 == k % 2 == m % 2 and (h, k, m) != (0, 0, 0)]
    return tuple(sorted(reps, key=lambda t: (t[0] ** 2 + t[1] ** 2 + t[2] ** 2, t)))


@lru_cache(maxsize=8)
def _orbit_index(n: int, hmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices into an (n, n, n) FFT of every member of every orbit, and the orbit
    number of each (for a bincount mean)."""
    import itertools

    flat, which = [], []
    for o, rep in enumerate(orbits(hmax)):
        members = {tuple(s * v for s, v in zip(signs, perm, strict=True))
                   for perm in itertools.permutations(rep)
                   for signs in itertools.product((1, -1), repeat=3)}
        for h, k, m in sorted(members):
            flat.append(((h % n) * n + (k % n)) * n + (m % n))
            which.append(o)
    return np.asarray(flat, np.int64), np.asarray(which, np.int64)


def ecd_invariants(rho: np.ndarray, where: str = "density") -> np.ndarray:
    """The Fourier-orbit invariants of one density cube (see the module doc for the formula).

    Args:
        rho: (N, N, N) or (N, N, N, 1) density on the conventional cube, e/Å^3, N any size
            with N > 2 * ``HMAX`` (so every orbit lies below the Nyquist frequency).
        where: name used in error messages.

    Returns:
        float64 (``ECD_INVARIANTS_LEN``,): mean density (e/Å^3), then <|F(hkl)|>/F(000) per
        orbit (dimensionless). Invariant to np.roll of the cube by any vector and to the 48
        transposes/flips of its axes.

    Raises:
        InputError: the array is not a cube, is too coarse, is not finite, or has a
            non-positive mean (no electrons).
    """
    a = np.asarray(rho)
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 3 or len(set(a.shape)) != 1:
        raise InputError(where, f"density must be an (N, N, N) cube, got shape {a.shape}")
    n = a.shape[0]
    if n <= 2 * HMAX:
        raise InputError(where, f"density grid {n}^3 too coarse for the Fourier invariants "
                                f"(needs N > {2 * HMAX})")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise InputError(where, "density has non-finite values")
    f = np.abs(np.fft.fftn(a)) / a.size
    f000 = float(f[0, 0, 0]) if a.mean() > 0 else 0.0
    if f000 <= 0:
        raise InputError(where, f"density has a non-positive mean ({a.mean():.3g} e/Å^3)")
    flat, which = _orbit_index(n, HMAX)
    sums = np.bincount(which, weights=f.reshape(-1)[flat], minlength=len(orbits(HMAX)))
    counts = np.bincount(which, minlength=len(orbits(HMAX)))
    out = np.concatenate([[f000], sums / counts / f000])
    assert out.shape == (ECD_INVARIANTS_LEN,)
    return out


def ecd_invariants_batch(ecd: np.ndarray, where: str = "density") -> np.ndarray:
    """:func:`ecd_invariants` of each cube of a batch (n, N, N, N[, 1]) -> float64
    (n, ``ECD_INVARIANTS_LEN``). Raises InputError naming the row (``where[i]``)."""
    x = np.asarray(ecd)
    out = np.empty((len(x), ECD_INVARIANTS_LEN), np.float64)
    for i in range(len(x)):
        out[i] = ecd_invariants(x[i], f"{where} row {i}")
    return out
