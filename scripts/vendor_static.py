"""Vendor the third-party web assets of the Data Docs from the npm registry.

Usage: ``.venv/bin/python scripts/vendor_static.py`` (needs ``npm``; the result is committed).
For each ``package@version`` in ``ecdflow.html.offline.PACKAGES`` it runs ``npm pack`` (which
checks the tarball against the registry's sha512 integrity), keeps the listed files plus
``package.json`` (the licence field) under ``ecdflow/html/static/vendor/<name>-<version>/``,
and writes ``VENDOR.json`` (package, version, licence, integrity, files).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ecdflow.html.offline import PACKAGES, VENDOR_DIR, package_dir


def main() -> None:
    manifest = []
    shutil.rmtree(VENDOR_DIR, ignore_errors=True)
    VENDOR_DIR.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec, files in PACKAGES.items():
            out = subprocess.run(["npm", "pack", spec, "--json", "--pack-destination", tmp],
                                 check=True, capture_output=True, text=True, cwd=tmp)
            info = json.loads(out.stdout)[0]
            dest = VENDOR_DIR / package_dir(spec)
            with tarfile.open(Path(tmp) / info["filename"]) as tar:
                for f in ("package.json", *files):
                    member = tar.extractfile(f"package/{f}")
                    if member is None:
                        raise SystemExit(f"{spec}: no file {f}")
                    (dest / f).parent.mkdir(parents=True, exist_ok=True)
                    (dest / f).write_bytes(member.read())
            pkg = json.loads((dest / "package.json").read_text())
            manifest.append({"package": info["name"], "version": info["version"],
                             "license": pkg.get("license"), "integrity": info["integrity"],
                             "dir": dest.name, "files": ["package.json", *files]})
            print(f"{spec}: {len(files)} files, licence {pkg.get('license')}")
    (VENDOR_DIR / "VENDOR.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
