"""Benchmark: build times and sizes of the images built here (podman, infra/podman/images.sh).

Run: ``python -m bench.bench_images [--cold] [--cold-pip]``. Writes bench/results/images.json
and images.md. Not part of ``python -m bench`` (it needs podman or Docker: ``make
apt-images``).

- warm: ``images.sh cpu mlflow`` with every layer cached (what ``make test`` pays once the
  machine has built the images);
- ``--cold``: the same with ``--no-cache`` (every layer rebuilt) and the local Debian base
  re-imported from its cached tarball, with the host wheelhouse as it is;
- ``--cold-pip``: also an empty wheelhouse, so every wheel is downloaded (a fresh machine).
Sizes are podman's ``image inspect`` sizes (uncompressed, all layers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench import RESULTS, machine, write_results
from ecdflow.config import REPO_ROOT

IMAGE_REPO, IMAGE_TAG = "localhost/ecdflow", "bench"
LOCAL_BASE = "localhost/ecdflow-debian:bookworm"
CONF = REPO_ROOT / "infra" / "podman" / "containers.conf"


def _podman(*args: str) -> str:
    out = subprocess.run(["podman", *args], capture_output=True, text=True, check=True,
                         env=os.environ | {"CONTAINERS_CONF": str(CONF)}, timeout=600)
    return out.stdout.strip()


def _size_mb(image: str) -> float:
    return round(int(_podman("image", "inspect", "--format", "{{.Size}}", image)) / 1e6, 1)


def build(extra_opts: str = "", wheels: str | None = None) -> dict:
    """``images.sh cpu mlflow`` on the local base; per-step seconds and the whole wall time."""
    with tempfile.NamedTemporaryFile("r", suffix=".timings") as timings:
        env = os.environ | {"BASE_IMAGE": "local", "IMAGE_REPO": IMAGE_REPO,
                            "IMAGE_TAG": IMAGE_TAG, "TIMINGS": timings.name,
                            "EXTRA_BUILD_OPTS": extra_opts}
        if wheels:
            env["WHEELS"] = wheels
        t0 = time.perf_counter()
        out = subprocess.run(["bash", str(REPO_ROOT / "infra/podman/images.sh"), "cpu",
                              "mlflow"], cwd=REPO_ROOT, env=env, capture_output=True,
                             text=True, timeout=3600)
        wall = round(time.perf_counter() - t0, 1)
        if out.returncode != 0:
            raise RuntimeError(out.stdout[-2000:] + out.stderr[-2000:])
        steps = {k: int(v) for k, v in (ln.split() for ln in timings.read().splitlines())}
    return {"wall_s": wall, "steps_s": steps}


def _markdown(r: dict) -> str:
    m = r["machine"]
    md = ["# Images built here (podman)", "",
          f"`python -m bench.bench_images{' --cold' if r.get('cold') else ''}"
          f"{' --cold-pip' if r.get('cold_pip') else ''}`: `infra/podman/images.sh cpu mlflow`"
          f" on the local Debian 12 minbase (`BASE_IMAGE=local`), podman {r['podman']}, "
          f"runc, host network; machine: {m['cpu_count']} CPU cores shared with other work, "
          f"{m['platform']}, load average {m['loadavg_at_start']} at start.", "",
          "| image | size MB (uncompressed) |", "|---|---|"]
    for name, size in r["sizes_MB"].items():
        md.append(f"| {name} | {size} |")
    md += ["", "| build | wall s | per step s |", "|---|---|---|"]
    for key, label in (("cold_pip", "no layer cache, empty wheelhouse (fresh machine)"),
                       ("cold", "no layer cache, wheelhouse of earlier builds"),
                       ("warm", "every layer cached (unchanged lock and project)")):
        if r.get(key + "_build"):
            b = r[key + "_build"]
            md.append(f"| {label} | {b['wall_s']} | "
                      f"{', '.join(f'{k} {v}' for k, v in b['steps_s'].items())} |")
    if r.get("cold_machine") and not r.get("cold"):
        md += ["", f"The no-layer-cache rows come from an earlier `--cold` run (load "
               f"average {r['cold_machine']['loadavg_at_start']} at its start); the warm row from "
               "this run (podman 4.3 does not reuse the layers of a `--no-cache` build, so a "
               "warm build right after one rebuilds everything)."]
    md += ["", f"The local base is bootstrapped once per machine (debootstrap; its rootfs "
           f"tarball, {r['base_tarball_MB']} MB, is cached under `~/.cache/ecdflow`) and "
           "imported; `local-base` above is the "
           "import from that tarball. A change to `requirements/lock.txt` rebuilds the "
           "pip layer (the cold rows); a change to the project only its last layers.", ""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cold", action="store_true", help="also rebuild every layer")
    p.add_argument("--cold-pip", action="store_true",
                   help="also rebuild every layer with an empty pip cache (downloads ~GBs)")
    a = p.parse_args(argv)
    load0 = os.getloadavg()
    res: dict = {"podman": _podman("--version").split()[-1], "cold": a.cold,
                 "cold_pip": a.cold_pip}
    if a.cold_pip:
        with tempfile.TemporaryDirectory(prefix="wheels-") as empty:
            subprocess.run(["podman", "rmi", "-f", LOCAL_BASE], capture_output=True,
                           env=os.environ | {"CONTAINERS_CONF": str(CONF)})
            res["cold_pip_build"] = build("--no-cache", wheels=empty)
    if a.cold:
        subprocess.run(["podman", "rmi", "-f", LOCAL_BASE], capture_output=True,
                       env=os.environ | {"CONTAINERS_CONF": str(CONF)})
        res["cold_build"] = build("--no-cache")
        res["cold_machine"] = machine(loadavg_at_start=[round(x, 2) for x in load0])
        # podman 4.3 does not reuse the layers of a --no-cache build: the build after one
        # rebuilds everything, so the warm row comes from a run of its own (no --cold)
    else:
        prev = RESULTS / "images.json"
        old = json.loads(prev.read_text()) if prev.exists() else {}
        for key in ("cold_build", "cold_pip_build", "cold_machine"):
            if key in old:
                res[key] = old[key]
        res["warm_build"] = build()
    res["sizes_MB"] = {"local base (Debian 12 minbase + python3)": _size_mb(LOCAL_BASE),
                       "ecdflow-cpu": _size_mb(f"{IMAGE_REPO}/ecdflow-cpu:{IMAGE_TAG}"),
                       "mlflow-server": _size_mb(f"{IMAGE_REPO}/mlflow-server:{IMAGE_TAG}")}
    tarball = Path(os.environ.get("ECDFLOW_CACHE", Path.home() / ".cache" / "ecdflow"))
    tarball = tarball / "debian-bookworm-minbase.tar"
    res["base_tarball_MB"] = round(tarball.stat().st_size / 1e6, 1) if tarball.exists() else None
    res["machine"] = machine(loadavg_at_start=[round(x, 2) for x in load0])
    write_results("images", res, _markdown(res))
    print(_markdown(res))
    return res


if __name__ == "__main__":
    main()
