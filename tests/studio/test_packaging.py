"""`pip install .` gives a working Studio: the wheel carries the page, its
scripts and its vendored libraries, and nothing is fetched at install or run
time (DESIGN.md 8.5)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
STATIC = ROOT / "service" / "cairn_server" / "studio" / "static"


def test_the_wheel_carries_every_file_of_the_page(tmp_path: pathlib.Path) -> None:
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "-w", str(tmp_path), str(ROOT)], check=True, cwd=tmp_path)
    [wheel] = tmp_path.glob("cairn-*.whl")
    packaged = {
        name.removeprefix("cairn_server/studio/static/")
        for name in zipfile.ZipFile(wheel).namelist()
        if name.startswith("cairn_server/studio/static/")
    }
    on_disk = {str(p.relative_to(STATIC)) for p in STATIC.rglob("*") if p.is_file()}
    assert {"index.html", "js/app.js", "js/views/thread.js"} <= on_disk
    assert on_disk == packaged


def test_the_page_loads_nothing_from_another_origin() -> None:
    remote = re.compile(r"""(src|href)\s*=\s*["']\s*(https?:)?//|@import\s+url\(\s*["']?https?:""")
    imports = re.compile(r"""(?:from|import)\s*\(?\s*["'](https?:)?//""")
    for path in STATIC.rglob("*"):
        if path.suffix not in (".html", ".js", ".css") or "vendor" in path.parts:
            continue
        text = path.read_text()
        assert not remote.search(text), f"{path} loads from another origin"
        assert not imports.search(text), f"{path} imports from another origin"
