"""The layout holds: packages import only the layers below them, modules stay small, --help stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "metricattack"
# Lowest first: a package may import itself and any package before it (docs/architecture.md draws the same order).
LAYERS = ("errors", "system", "evaluation", "data", "models", "attacks", "training", "defenses", "experiment", "report", "cli")
LIBRARY = ("attacks", "evaluation", "models", "data")
APPLICATION = ("experiment", "cli")
MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("").parts
    return relative[0]


def imported_layers(path: Path) -> set[str]:
    """The first component under ``metricattack`` of every import in the file, at any depth (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "metricattack" else [f"metricattack.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "metricattack" and len(parts) > 1:
                found.add(parts[1])
    return found - {"__version__"}


def test_imports_flow_down_the_layers():
    problems = []
    for path in modules():
        layer = layer_of(path)
        if layer in ("__init__", "__main__"):
            continue
        allowed = set(LAYERS[: LAYERS.index(layer) + 1])
        for target in imported_layers(path) - allowed:
            problems.append(f"{path.relative_to(PACKAGE)} ({layer}) imports metricattack.{target}")
    assert not problems, "\n".join(problems)


def test_the_library_knows_nothing_of_the_application():
    for path in modules():
        if layer_of(path) in LIBRARY:
            assert not imported_layers(path) & set(APPLICATION), path


def test_the_layer_check_would_catch_an_upward_import(tmp_path):
    upward = tmp_path / "upward.py"
    upward.write_text("def f():\n    from metricattack.experiment.campaign import Campaign\n    return Campaign\n")
    assert "experiment" in imported_layers(upward)


def test_top_level_holds_packages_and_three_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "errors.py"]
    packages = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert sorted(set(LAYERS) - {"errors"}) == packages


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_has_two_jobs_worth_of_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_the_attack_registry_is_filled_explicitly_and_complete():
    from metricattack.attacks.steps import STEP_RULES
    from metricattack.experiment.registry import ATTACKS, attack_kind

    assert set(ATTACKS) == set(STEP_RULES) | {"auto", "uap", "blackbox"}
    with pytest.raises(Exception, match="unknown attack 'deepfool'.*fgsm.*uap.*blackbox"):
        attack_kind("deepfool")


def test_help_imports_no_heavy_plotting_or_metric_library():
    """`metricattack --help` builds the parser only: torchvision, torchmetrics and matplotlib are imported where used."""
    code = "import sys; import metricattack.cli.parser as p; p.build_parser(); print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    heavy = [name for name in loaded if name.split(".")[0] in ("torchvision", "torchmetrics", "matplotlib", "scipy", "torchreid")]
    assert not heavy, heavy
