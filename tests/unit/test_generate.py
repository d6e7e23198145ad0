"""Candidate generator: seeded, deduplicated, Fm-3m, no lanthanides, JSON-able records."""

from ecdflow.data.generate import EXCLUDED_Z, generate, is_fm3m, to_record

QUOTAS = {"fcc-element": 2, "rocksalt-ionic": 3}


def test_same_seed_same_list_and_all_fm3m():
    a = generate(seed=1, quotas=QUOTAS)
    b = generate(seed=1, quotas=QUOTAS)
    assert [c.material_id for c in a] == [c.material_id for c in b]
    assert len(a) == 5 and len({c.material_id for c in a}) == 5
    for c in a:
        assert is_fm3m(c.structure)
        assert all(site.specie.Z not in EXCLUDED_Z for site in c.structure)


def test_record_round_trips_to_structure():
    from ecdflow.data.table import structure_of

    c = generate(seed=1, quotas={"rocksalt-ionic": 1})[0]
    rec = to_record(c)
    s = structure_of(rec)
    assert s.composition.reduced_formula == rec["formula"]
    assert abs(s.volume - c.structure.volume) < 1e-6


def test_sub_families_hold_a_focus_element_and_keep_earlier_families_unchanged():
    from ecdflow.data.prototypes import FOCUS

    base = generate(seed=3, quotas={"rocksalt-ionic": 4})
    more = generate(seed=3, quotas={"rocksalt-ionic": 4, "rocksalt-sub": 6})
    assert [c.material_id for c in more[:4]] == [c.material_id for c in base]
    sub = more[4:]
    assert len(sub) == 6 and all(c.family == "rocksalt-sub" for c in sub)
    for c in sub:
        assert {site.specie.symbol for site in c.structure} & set(FOCUS)
        assert is_fm3m(c.structure)
