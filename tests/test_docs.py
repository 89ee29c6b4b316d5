"""The README and docs/ cannot rot: links resolve, commands parse, Python examples import and run,
and the README's default table is the stored output of the current code."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 300
SHELL = {"python3", "python", "pip", "pytest", "cd", "export", "bash", "apt-get", "rm"}  # skipped in ```bash blocks
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FROM_IMPORT = re.compile(r"^\s*from\s+(metricattack[\w.]*)\s+import\s+(?:\(([^)]*)\)|([^#\n]+))", re.MULTILINE)


def name(page: Path) -> str:
    """The page's path in the repository, for messages."""
    return str(page.relative_to(ROOT))


def fenced_blocks(page: Path, language: str) -> list[tuple[int, str]]:
    """(line number of the first line, text) of every ```language block of a Markdown page."""
    blocks, body, start, fence_language = [], None, 0, ""
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```") and body is None:
            body, start, fence_language = [], number + 1, line[3:].strip()
        elif line.startswith("```"):
            if fence_language == language:
                blocks.append((start, "\n".join(body)))
            body = None
        elif body is not None:
            body.append(line)
    return blocks


def prose_lines(page: Path) -> list[tuple[int, str]]:
    """(number, line) of the lines outside fenced blocks."""
    lines, inside = [], False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
        elif not inside:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not - or _), spaces to dashes."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page, with GitHub's -1, -2 suffixes for repeated headings."""
    found, counts = set(), {}
    for _, line in prose_lines(page):
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            base = slug(match[1])
            found.add(f"{base}-{counts[base]}" if base in counts else base)
            counts[base] = counts.get(base, 0) + 1
    return found


# --- 1. links -----------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_relative_link_resolves_to_a_file_and_heading(page):
    problems, count = [], 0
    for number, line in prose_lines(page):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            count += 1
            path_part, _, anchor = target.partition("#")
            file = (page.parent / path_part).resolve() if path_part else page
            if not file.is_file():
                problems.append(f"{name(page)}:{number}: {target}: no file {file}")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                problems.append(f"{name(page)}:{number}: {target}: no heading #{anchor} in {file.name}")
    assert not problems, "\n".join(problems)
    assert count or page.name != "README.md"


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_repository_path_in_code_exists(page):
    """`src/...`, `tests/...`, `benchmarks/...`, `scripts/...` and `docs/...` in code spans name real files (braces expand)."""
    missing = []
    for number, line in prose_lines(page):
        for path in re.findall(r"`((?:src|tests|benchmarks|scripts|docs)/[^` ]+)`", line):
            stem, _, rest = path.partition("{")
            choices, _, tail = rest.partition("}")
            for variant in [stem + choice + tail for choice in choices.split(",")] if rest else [path]:
                if not (ROOT / variant).exists():
                    missing.append(f"{name(page)}:{number}: {variant}")
    assert not missing, "\n".join(missing)


def test_every_guide_is_linked_from_the_readme_and_the_index():
    readme_links = {t.partition("#")[0] for _, line in prose_lines(README) for t in LINK.findall(line)}
    index_links = {t.partition("#")[0] for _, line in prose_lines(ROOT / "docs" / "index.md") for t in LINK.findall(line)}
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme_links, page.name
        assert page.name in index_links or page.name == "index.md", page.name
    assert "docs/architecture.md" in readme_links and "architecture.md" in index_links


def test_the_anchor_slugs_follow_github():
    assert slug("Robust evaluation: `metricattack run --plan robust`") == "robust-evaluation-metricattack-run---plan-robust"
    assert slug("Defenses: `default-robust` and the candidates") == "defenses-default-robust-and-the-candidates"
    assert slug("Mixed precision and channels-last (GPUs)") == "mixed-precision-and-channels-last-gpus"


# --- 2. command lines -------------------------------------------------------------------------------
def command_lines(page: Path) -> list[tuple[str, list[str]]]:
    """(where, argv after `metricattack`) for every metricattack command in the page's ```bash blocks.

    Continuation lines are joined; `&&` and `;` separate commands; `.venv/bin/` and other path prefixes,
    `torchrun ... -m metricattack` and `python -m metricattack`, trailing comments and `...` placeholders
    are removed; lines of plain shell (SHELL) are skipped, any other program is an error.
    """
    found = []
    for start, block in fenced_blocks(page, "bash"):
        logical, first = "", start
        for offset, line in enumerate(block.splitlines() + [""]):
            if not logical:
                first = start + offset
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            logical += line
            if logical.strip():
                found += commands_of(f"{name(page)}:{first}", logical)
            logical = ""
    return found


def commands_of(where: str, line: str) -> list[tuple[str, list[str]]]:
    tokens = shlex.split(line, comments=True)
    segments, current = [], []
    for token in tokens:
        if token in ("&&", ";", "||"):
            segments.append(current)
            current = []
        else:
            current.append(token)
    segments.append(current)
    found = []
    for words in segments:
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value prefixes
            words = words[1:]
        if not words:
            continue
        program = Path(words[0]).name
        if "-m" in words and words.index("-m") + 1 < len(words) and words[words.index("-m") + 1] == "metricattack":
            argv = words[words.index("-m") + 2 :]  # torchrun ... -m metricattack ..., python -m metricattack ...
        elif program == "metricattack":
            argv = words[1:]
        elif program in SHELL:
            continue
        else:
            raise AssertionError(f"{where}: {program!r} in a bash block is neither metricattack nor known shell ({line.strip()})")
        found.append((where, [word for word in argv if word != "..."]))
    return found


def table_commands(page: Path) -> list[tuple[str, list[str]]]:
    """(where, argv) of every `metricattack ... --option` code span in a table row (the commands that made a measurement)."""
    return [
        (f"{name(page)}:{number}", shlex.split(span)[1:])
        for number, line in prose_lines(page) if line.startswith("|")
        for span in re.findall(r"`(metricattack [^`]+)`", line) if " --" in span and "..." not in span
    ]  # fmt: skip


COMMANDS = [command for page in PAGES for command in command_lines(page) + table_commands(page)]


def build_parser():
    from metricattack.cli.parser import build_parser as build

    return build()


@pytest.fixture(scope="module")
def parser_and_subparsers():
    return build_parser()


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[f"{where} {' '.join(argv[:1])}" for where, argv in COMMANDS])
def test_every_command_line_parses(where, argv, parser_and_subparsers, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # options that check paths (--out) see none of the repository's files
    parser, _ = parser_and_subparsers
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{where}: metricattack {shlex.join(argv)}: exit {exc.code}: {capsys.readouterr().err.strip()}")


def test_the_readme_shows_every_command_in_a_command_line(parser_and_subparsers):
    _, subparsers = parser_and_subparsers
    shown = {argv[0] for where, argv in COMMANDS if where.startswith("README.md") and argv}
    assert set(subparsers) <= shown, sorted(set(subparsers) - shown)


def test_the_command_extraction_handles_the_shell_forms():
    assert commands_of("x", "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/metricattack run") == [("x", ["run"])]
    assert commands_of("x", "torchrun --nproc-per-node 4 -m metricattack run --out runs/big ...  # 4 GPUs") == [("x", ["run", "--out", "runs/big"])]
    assert commands_of("x", "export OMP_NUM_THREADS=1") == []
    with pytest.raises(AssertionError, match="neither metricattack"):
        commands_of("x", "curl http://example.com")


def test_a_command_line_the_parser_refuses_fails(parser_and_subparsers, capsys):
    parser, _ = parser_and_subparsers
    with pytest.raises(SystemExit):
        parser.parse_args(["attack", "--eps", "many"])
    capsys.readouterr()


# --- 2b. YAML examples ----------------------------------------------------------------------------------
YAML_HEADER = re.compile(r"# (\S+\.yaml): metricattack (\w+) --config \1")
YAML_BLOCKS = [(f"{name(page)}:{start}", text) for page in PAGES for start, text in fenced_blocks(page, "yaml")]


@pytest.mark.parametrize("where,text", YAML_BLOCKS, ids=[where for where, _ in YAML_BLOCKS])
def test_every_yaml_example_names_options_of_its_command(where, text, parser_and_subparsers):
    header = YAML_HEADER.match(text)
    assert header, f"{where}: a YAML example starts with '# NAME.yaml: metricattack COMMAND --config NAME.yaml'"
    _, subparsers = parser_and_subparsers
    command = subparsers[header[2]]
    actions = {action.dest: action for action in command._actions}
    values = {str(key).replace("-", "_"): value for key, value in yaml.safe_load(text).items()}
    unknown = sorted(set(values) - set(actions) - {"help", "config"})
    assert not unknown, f"{where}: metricattack {header[2]} takes no {unknown}"
    for key, value in values.items():
        check_yaml_value(where, key, value, actions[key])


def check_yaml_value(where: str, key: str, value, action: argparse.Action) -> None:
    if key == "settings":
        from metricattack.experiment.registry import check_setting
        from metricattack.experiment.setting import AttackSetting

        for number, entry in enumerate(value, 1):
            check_setting(AttackSetting(**{k: v for k, v in entry.items() if k not in ("source", "series")}))
        return
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) or action.type is None or isinstance(item, bool):
            continue
        checked = action.type(str(item))
        assert action.choices is None or checked in action.choices, f"{where}: {key}: {item!r}"


# --- 3. Python examples -------------------------------------------------------------------------------
PYTHON_BLOCKS = [(page, start, text) for page in PAGES for start, text in fenced_blocks(page, "python")]
IMPORTS = sorted({
    (name(page), module, imported.strip().split(" as ")[0])
    for page, _, text in PYTHON_BLOCKS
    for module, in_parentheses, on_one_line in FROM_IMPORT.findall(text)
    for imported in (in_parentheses or on_one_line).replace("\n", " ").split(",") if imported.strip()
})  # fmt: skip


@pytest.mark.parametrize("page,start,text", PYTHON_BLOCKS, ids=[f"{name(p)}:{s}" for p, s, _ in PYTHON_BLOCKS])
def test_every_python_example_compiles(page, start, text):
    compile(text, f"{name(page)}:{start}", "exec")


@pytest.mark.parametrize("page,module,imported", IMPORTS, ids=[f"{p} {m}.{i}" for p, m, i in IMPORTS])
def test_every_imported_name_exists(page, module, imported):
    assert hasattr(importlib.import_module(module), imported), f"{page}: {module} has no {imported}"


def test_every_name_in_the_api_guides_table_exists():
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8").split("## Where each name lives", 1)[1]
    rows = re.findall(r"^\| `(metricattack[\w.]*)` \| (.+) \|$", text, re.MULTILINE)
    assert len(rows) >= 15
    missing = [f"{module}.{imported}" for module, names in rows for imported in re.findall(r"`(\w+)`", names)
               if not hasattr(importlib.import_module(module), imported)]  # fmt: skip
    assert not missing, missing


def test_the_api_guide_imports_from_every_public_module():
    modules = {module for page, module, _ in IMPORTS if page == "docs/api.md"}
    assert {"metricattack.data", "metricattack.models", "metricattack.evaluation", "metricattack.attacks",
            "metricattack.experiment.campaign", "metricattack.training.loop", "metricattack.defenses"} <= modules  # fmt: skip


@pytest.mark.parametrize("page", sorted({page for page, _, _ in PYTHON_BLOCKS}), ids=name)
def test_the_python_examples_of_a_page_run_in_order(page, tmp_path, monkeypatch):
    """Each page's examples run top to bottom in one namespace, from an empty folder, on tiny data."""
    import torch

    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_example"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread gains nothing, and on a shared CPU costs 10x
    try:
        for start, text in fenced_blocks(page, "python"):
            exec(compile(text, f"{name(page)}:{start}", "exec"), namespace)  # noqa: S102 - our own documentation
    finally:
        torch.set_num_threads(threads)


# --- 4. the README stays short ------------------------------------------------------------------------
def test_the_readme_is_a_front_door_of_at_most_300_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines: move detail to docs/"


# --- 5. the default table is the stored output of the current code ------------------------------------
def default_table_script():
    spec = importlib.util.spec_from_file_location("default_table", ROOT / "scripts" / "default_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_table_is_the_stored_default_run_but_for_seconds():
    script = default_table_script()
    stored = script.STORED.read_text(encoding="utf-8")
    readme = script.readme_table(README.read_text(encoding="utf-8"))
    assert script.differences(stored, readme) == []
    header, rows = script.parse_table(stored)
    assert header[-1] == "seconds" and len(rows) == 13  # the clean row and the 12 settings of --plan default


def test_the_table_comparison_sees_every_cell_but_seconds():
    script = default_table_script()
    stored = script.STORED.read_text(encoding="utf-8")
    header, rows = script.parse_table(stored)
    width = max(len(cell) for row in rows for cell in row) + 2
    as_text = lambda cells: "\n".join("".join(c.rjust(width) for c in row) for row in cells) + "\n"  # noqa: E731
    for column in range(5, len(header)):
        changed = [list(row) for row in rows]
        changed[-1][column] = "x"
        found = script.differences(stored, as_text([header, *changed]))
        assert found == ([] if header[column] == "seconds" else [f"ifgsm 8 query targeted default: {header[column]} {rows[-1][column]} -> x"])
    assert script.differences(stored, as_text([header, *rows[:-1]])) == ["row ifgsm 8 query targeted default: missing"]


def test_the_readme_prose_quotes_the_default_table():
    script = default_table_script()
    header, rows = script.parse_table(script.STORED.read_text(encoding="utf-8"))
    table = {tuple(row[:4]): dict(zip(header, row)) for row in rows}
    clean = table[("clean", "-", "-", "-")]
    paper = table[("ifgsm", "5", "gallery", "untargeted")]
    eps8 = table[("ifgsm", "8", "gallery", "untargeted")]
    targeted = table[("ifgsm", "8", "query", "targeted")]
    prose = " ".join(README.read_text(encoding="utf-8").split("## What the default numbers mean", 1)[1].split("\n## ", 1)[0].split())
    share = round(100 * float(paper["mAP"]) / float(clean["mAP"]))
    for quoted in (
        f"reaches {clean['mAP']} % mAP and {clean['rank1']} % rank-1",
        f"leaves {paper['mAP']} % mAP ({share} % of the clean value; {eps8['mAP']} % at eps 8)",
        f"falls from rank {clean['match@']} to rank {round(float(paper['match@']))} on average",
        f"keep an SSIM of {float(paper['ssim']):.2f}",
        f"at rank 1 for {targeted['tgt@1']} % of queries",
    ):
        assert quoted in prose, quoted
