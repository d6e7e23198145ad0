"""The input layer's rules in isolation: content over name, compression, encodings, dialects."""

import bz2
import gzip
import lzma

import pytest

from ecdflow.errors import InputError
from ecdflow.io import parse_text, read_input, read_table, sniff
from ecdflow.io.raw import decode_text, decompress

POSCAR = ("NaCl\n1.0\n5.64 0 0\n0 5.64 0\n0 0 5.64\nNa Cl\n1 1\nDirect\n0 0 0\n"
          "0.5 0.5 0.5\n")


@pytest.mark.parametrize("pack", [gzip.compress, bz2.compress, lzma.compress, lambda b: b])
@pytest.mark.parametrize("name", ["POSCAR", "x.cif", "x.json", "CHGCAR", "plain"])
def test_compression_by_magic_and_content_over_name(tmp_path, pack, name):
    p = tmp_path / name
    p.write_bytes(pack(POSCAR.encode()))
    item = read_input(p)
    assert item.kind == "poscar" and item.formula == "NaCl"
    assert ("not " in item.note) == (name in ("x.cif", "x.json", "CHGCAR"))


def test_nested_compression_and_corrupt_streams_are_refused():
    with pytest.raises(InputError, match="holding another compressed file"):
        decompress(gzip.compress(bz2.compress(b"x")), "f")
    with pytest.raises(InputError, match="corrupt or truncated xz"):
        decompress(lzma.compress(b"x" * 1000)[:30], "f")


@pytest.mark.parametrize("raw,text", [
    ("Müller".encode("latin-1"), "Müller"), ("€ 5".encode("cp1252"), "€ 5"),
    (b"\xef\xbb\xbfa\r\nb\rc", "a\nb\nc"), ("Å".encode(), "Å")])
def test_decoding(raw, text):
    assert decode_text(raw, "f") == text


@pytest.mark.parametrize("text,kind", [
    (POSCAR, "poscar"), ("data_x\n_cell_length_a 5\n", "cif"), ('{"lattice": {}, "sites": []}',
                                                                 "json"),
    ("NaCl\n", "formula"), ("material_id;formula\n1;NaCl\n", "table"),
    ('{"material_id": "a", "formula": "NaCl"}\n', "table"), ("hello world\n", "")])
def test_sniff(text, kind):
    assert sniff(text) == kind


def test_unknown_hint_and_table_text_are_refused():
    with pytest.raises(InputError, match="unknown format 'xyz'"):
        parse_text(POSCAR, "row 0", hint="xyz")
    with pytest.raises(InputError, match="row 3: a table, not a single structure"):
        parse_text("formula,K_VRH\nNaCl,24\n", "row 3")


def test_table_dialects_keep_formulas_and_read_decimal_commas(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("material_id;formula;K_VRH\r\n007;NaN;24,5\r\n8;NA;\r\n".encode("cp1252"))
    assert read_table(p) == [{"material_id": "007", "formula": "NaN", "K_VRH": 24.5},
                             {"material_id": "8", "formula": "NA"}]


def test_cif_with_two_structures_is_refused():
    from pymatgen.core import Lattice, Structure

    one = Structure(Lattice.cubic(4.0), ["Cu"], [[0, 0, 0]]).to(fmt="cif")
    two = one + "\n" + one.replace("data_Cu", "data_Cu_b")
    with pytest.raises(InputError, match="CIF holds 2 structures"):
        parse_text(two, "two.cif")
