"""The arrows point one way (import-linter's contracts in pyproject.toml): spec, then models, then
the engine, then the adapters, which don't import each other."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a dev dependency: make install"
    done = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_every_module_of_processes_is_in_a_layer():
    """A module outside the layers is outside the contract: nothing would check its arrows (as
    the worker supervisor was, importing ``integrations``)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    named = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    package = ROOT / "processes"
    modules = {p.stem for p in package.glob("*.py")} | {
        p.parent.name for p in package.glob("*/__init__.py")
    }
    outside = modules - {"__init__", "apps", "migrations"}  # Django's entry points
    assert sorted(m for m in outside if f"processes.{m}" not in named) == []


def test_processes_never_imports_integrations():
    """Checked by the contract above; the supervisor's alerts and the set-up's schedules go
    through ``processes.hooks``."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    forbidden = [
        (c["source_modules"], c["forbidden_modules"])
        for c in config["contracts"]
        if c["type"] == "forbidden"
    ]
    assert (["processes"], ["integrations"]) in forbidden
