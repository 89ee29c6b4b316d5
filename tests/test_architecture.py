"""The layout holds: packages import only the layers below them, no package imports itself in a circle (type-only
imports counted), modules stay small, --help stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "metricattack"
# Lowest first: a package may import itself and any package of an earlier layer, not one of its own layer
# (docs/architecture.md draws the same table).
LAYERS = (("errors",), ("system",), ("evaluation",), ("data",), ("video",), ("models",), ("attacks",), ("training",),
          ("defenses",), ("experiment",), ("tracking", "wearing"), ("report",), ("cli",))  # fmt: skip
PACKAGES = tuple(name for layer in LAYERS for name in layer)
LIBRARY = ("errors", "system", "evaluation", "data", "video", "models", "attacks", "training", "defenses")
APPLICATION = ("experiment", "tracking", "wearing", "report", "cli")
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


def allowed_imports(package: str) -> set[str]:
    """The packages ``package`` may import: itself and those of earlier layers."""
    number = next(n for n, layer in enumerate(LAYERS) if package in layer)
    return {package} | {name for layer in LAYERS[:number] for name in layer}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """``metricattack.a.b`` for ``root/a/b.py`` (and for ``root/a/b/__init__.py``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(("metricattack",) + (parts[:-1] if parts[-1] == "__init__" else parts))


def module_imports(path: Path, known: set[str], root: Path = PACKAGE) -> set[str]:
    """The modules of ``known`` that the file imports, at any depth: lazy imports and imports under
    ``TYPE_CHECKING`` count. ``from P import X`` is module ``P.X`` when that is a module, else ``P`` itself."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return (found & known) - {me}


def cycles_within_packages(root: Path = PACKAGE) -> list[list[str]]:
    """The import cycles among the modules of each top-level package (strongly connected components of more than
    one module), subpackages included; imports of a package's ``__init__`` implied by importing its modules are not
    counted, explicit ones are."""
    paths = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    top = {name: name.split(".")[1] if name.count(".") else "" for name in paths}
    graph = {name: {m for m in module_imports(path, set(paths), root) if top[m] == top[name]} for name, path in paths.items()}
    order, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(name: str) -> None:  # Tarjan's strongly connected components
        order[name] = low[name] = len(order)
        stack.append(name)
        on_stack.add(name)
        for other in sorted(graph[name]):
            if other not in order:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in on_stack:
                low[name] = min(low[name], order[other])
        if low[name] == order[name]:
            component = []
            while not component or component[-1] != name:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(graph):
        if name not in order:
            visit(name)
    return found


def test_imports_flow_down_the_layers():
    problems = []
    for path in modules():
        layer = layer_of(path)
        if layer in ("__init__", "__main__"):
            continue
        allowed = allowed_imports(layer)
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
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages <= set(PACKAGES), f"packages missing from the layer table: {sorted(packages - set(PACKAGES))}"
    assert set(PACKAGES) - {"errors"} <= packages


def test_the_library_and_application_lists_cover_every_package():
    assert sorted(LIBRARY + APPLICATION) == sorted(PACKAGES)


def test_no_package_imports_itself_in_a_circle():
    assert not cycles_within_packages(), "\n".join(" -> ".join(cycle) for cycle in cycles_within_packages())


def test_the_cycle_check_would_catch_a_type_only_cycle(tmp_path):
    package = tmp_path / "experiment"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "campaign.py").write_text("from metricattack.experiment.registry import ATTACKS\n")
    (package / "registry.py").write_text("from metricattack.experiment import kind\n")
    (package / "kind.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                     "    from metricattack.experiment.campaign import Campaign\n")  # fmt: skip
    (package / "leaf.py").write_text("from metricattack.experiment.kind import X\n")
    assert cycles_within_packages(tmp_path) == [["metricattack.experiment.campaign", "metricattack.experiment.kind",
                                                 "metricattack.experiment.registry"]]  # fmt: skip


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
