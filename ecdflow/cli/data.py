"""CLI: `ecdflow data` - generate, label, merge, build and export the Fm-3m dataset."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import click

from ecdflow.cli.common import settings
from ecdflow.config import REPO_ROOT
from ecdflow.data.merge import QUICK_SIZE
from ecdflow.errors import EcdflowError, InputError

DATA_DIR = REPO_ROOT / "data" / "fcc"
LABEL_PYTHON = REPO_ROOT / ".venv-label" / "bin" / "python"


def _label_files(labels_dir: Path) -> list[Path]:
    return sorted(labels_dir.glob("sevennet-*.jsonl"))


@click.group("data")
def data() -> None:
    """The default Fm-3m dataset: generate candidate structures, label them with SevenNet
    (own venv), merge the labels into data/fcc/materials.jsonl, build Magpie features and
    procrystal ECD grids, and export one material's ECD as a CHGCAR for VESTA.

    Labels come from an ML potential and ECDs from a procrystal model (docs/data.md).
    """


@data.command("generate")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of the substitution draw (the committed candidates use 0).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              default=DATA_DIR / "candidates.jsonl", show_default=True,
              help="Candidates JSONL to write (unlabelled structures).")
def generate_cmd(seed: int, out: Path) -> None:
    """Draw the seeded, deduplicated Fm-3m candidate structures (primitive cells, Å)."""
    from ecdflow.data.generate import generate, to_record

    cands = generate(seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(to_record(c)) + "\n" for c in cands))
    click.echo(f"{len(cands)} candidates -> {out}")


@data.command("label")
@click.option("--candidates", type=click.Path(dir_okay=False, path_type=Path),
              default=DATA_DIR / "candidates.jsonl", show_default=True)
@click.option("--device", default="cpu", show_default=True, help="torch device: cpu or cuda.")
@click.option("--limit", type=int, default=0, show_default=True,
              help="Label at most this many materials this run (0: all).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Label file to append to (default data/fcc/labels/sevennet-<device>.jsonl).")
def label_cmd(candidates: Path, device: str, limit: int, out: Path | None) -> None:
    """Label candidates with SevenNet 7net-l3i5 (C11, C12, C44, K_VRH, G_VRH in GPa).

    Runs in the separate .venv-label (torch + sevenn; create it with `make labels`),
    appends to the label file and skips ids already labelled in any label file (resumable).
    """
    if not LABEL_PYTHON.exists():
        raise EcdflowError(f"{LABEL_PYTHON} is missing: run `make labels` to create the "
                           "labelling environment")
    if not candidates.is_file():
        raise InputError(str(candidates), "no such candidates file (run `ecdflow data generate`)")
    out = out or DATA_DIR / "labels" / f"sevennet-{device}.jsonl"
    skip = [str(p) for p in _label_files(out.parent) if p.resolve() != out.resolve()]
    cmd = [str(LABEL_PYTHON), "-m", "ecdflow.labelling.sevennet", str(candidates), str(out),
           "--shuffle", "--device", device, "--limit", str(limit)]
    if skip:
        cmd += ["--skip", *skip]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    code = subprocess.call(cmd, cwd=REPO_ROOT, env=env)
    if code:
        raise EcdflowError(f"labeller exited with code {code}")


@data.command("merge")
@click.option("--candidates", type=click.Path(dir_okay=False, path_type=Path),
              default=DATA_DIR / "candidates.jsonl", show_default=True)
@click.option("--labels-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DATA_DIR / "labels", show_default=True,
              help="Folder of sevennet-*.jsonl label files.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Materials table (default: data/fcc/materials.jsonl).")
@click.option("--quick-size", type=int, default=QUICK_SIZE, show_default=True,
              help="Also write a seeded subset of this many rows next to the table "
                   "(materials-quick.jsonl, the quick profile's table; 0: skip).")
@click.pass_context
def merge_cmd(ctx: click.Context, candidates: Path, labels_dir: Path, out: Path | None,
              quick_size: int) -> None:
    """Merge Born-stable, converged labels with the candidates into the materials table."""
    from ecdflow.data.card import counts_block, refresh_card
    from ecdflow.data.merge import QUARANTINE_NAME, merge_labels, write_subset

    out = out or DATA_DIR / "materials.jsonl"
    files = _label_files(labels_dir)
    if not files:
        raise InputError(str(labels_dir), "no sevennet-*.jsonl label files")
    if not candidates.is_file():
        raise InputError(str(candidates), "no such candidates file")
    counts = merge_labels(candidates, files, out, plausibility=settings(ctx).plausibility)
    click.echo(" ".join(f"{k}={v}" for k, v in sorted(counts.items())) + f" -> {out}")
    if counts.get("quarantined"):
        click.echo(f"{counts['quarantined']} implausible rows quarantined -> "
                   f"{out.parent / QUARANTINE_NAME}")
    if quick_size:
        quick = out.with_name(out.stem + "-quick" + out.suffix)
        n = write_subset(out, quick, quick_size, seed=settings(ctx).seed)
        click.echo(f"quick subset: {n} rows -> {quick}")
    card = out.parent / "DATA_CARD.md"
    if card.is_file() and refresh_card(card, counts_block(
            candidates, files, out, plausibility=settings(ctx).plausibility)):
        click.echo(f"counts refreshed in {card}")


@data.command("card")
@click.option("--table", type=click.Path(dir_okay=False, path_type=Path),
              default=DATA_DIR / "materials.jsonl", show_default=True)
@click.option("--card", "card_path", type=click.Path(dir_okay=False, path_type=Path),
              default=DATA_DIR / "DATA_CARD.md", show_default=True)
@click.pass_context
def card_cmd(ctx: click.Context, table: Path, card_path: Path) -> None:
    """Measure the data card's figures (RF+Magpie CV with/without marginal rows, procrystal
    limits, labeller vs references) into its figures block and card-figures.json."""
    from ecdflow.data.card import refresh_card
    from ecdflow.data.figures import (
        END,
        START,
        card_figures,
        figures_block,
        rounded,
        write_figures,
    )
    from ecdflow.data.merge import QUARANTINE_NAME

    if not table.is_file():
        raise InputError(str(table), "no such materials table")
    cfg = settings(ctx)
    fig = rounded(card_figures(table, table.parent / QUARANTINE_NAME, cfg.plausibility))
    out = write_figures(fig, table.parent / "card-figures.json")
    click.echo(f"figures -> {out}")
    if card_path.is_file() and refresh_card(card_path, figures_block(fig), START, END):
        click.echo(f"figures refreshed in {card_path}")


@data.command("build")
@click.option("--table", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Materials table (default: paths.materials).")
@click.option("--limit", type=int, default=0, help="Only the first N good rows (0: all).")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default <work_dir>/data).")
@click.pass_context
def build_cmd(ctx: click.Context, table: Path | None, limit: int, out_dir: Path | None) -> None:
    """Check the table, then write Magpie features (132) and procrystal ECD grids
    (density.grid^3, e/Å^3) for inspection, with a quarantine report of bad rows."""
    from ecdflow.data.build import build_dataset

    cfg = settings(ctx)
    res = build_dataset(table or cfg.path(cfg.paths.materials), out_dir or cfg.work_dir / "data",
                        cfg.density.grid, cfg.density.smearing_A, limit)
    click.echo(" ".join(f"{k}={v}" for k, v in res.counts.items()) + f" -> {res.out_dir}")
    if res.counts["quarantined"]:
        click.echo(f"quarantine report: {res.quarantine}")


@data.command("chgcar")
@click.argument("source")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CHGCAR file to write (open it in VESTA).")
@click.option("--table", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--grid", type=int, default=None, help="Points per edge (default density.grid).")
@click.option("--elements", default=None,
              help="Species of a VASP 4 file without an element line, in file order "
                   "(e.g. 'Na Cl').")
@click.pass_context
def chgcar_cmd(ctx: click.Context, source: str, out: Path, table: Path | None,
               grid: int | None, elements: str | None) -> None:
    """Write an ECD on the conventional cube as a VASP CHGCAR.

    SOURCE is a material id of the table (its procrystal ECD) or a file read by the input
    layer (docs/inputs.md): a CHGCAR-like file (its DFT density, total block, resampled; any
    name, gzip/bzip2/xz) or a CIF/POSCAR/pymatgen-JSON structure (its procrystal ECD).
    The line printed gives the kind read and the electrons in the cell (from the density).
    """
    from ecdflow.chgcar import to_model_grid, write_chgcar
    from ecdflow.cube import conventional_cell
    from ecdflow.density import procrystal_density

    cfg = settings(ctx)
    n = grid or cfg.density.grid
    from ecdflow.io import hint_of, read_input

    if Path(source).exists() or "/" in source or hint_of(source):
        item = read_input(source, elements=elements.split() if elements else None)
        if item.structure is None:
            raise InputError(source, "a formula has no structure or density to write")
        conv = conventional_cell(item.structure)
        if item.rho is not None:
            rho = to_model_grid(item.structure, item.rho, n)
            what = (f"DFT density (total of {item.blocks} block"
                    f"{'s' if item.blocks > 1 else ''}), {item.electrons:.3f} electrons in the "
                    "file's cell")
        else:
            rho = procrystal_density(item.structure, n, cfg.density.smearing_A)
            what = "procrystal density from the structure"
        write_chgcar(out, conv, rho)
        note = f" [{item.note}]" if item.note else ""
        click.echo(f"{source}: {item.kind} {item.formula}, {what}{note}; {rho.shape[0]}^3 ECD "
                   f"-> {out}")
        return
    from ecdflow.data.build import material_structure

    s = material_structure(table or cfg.path(cfg.paths.materials), source)
    rho = procrystal_density(s, n, cfg.density.smearing_A)
    write_chgcar(out, conventional_cell(s), rho)
    click.echo(f"{source}: {rho.shape[0]}^3 ECD -> {out}")
