"""The documentation keeps up with the code: every command and option of the CLI is named in a docs/ page,
every CLI choice list is its registry's, and benchmarks/README.md names every benchmark script.

These are cheap (no model is built); the registries that import torch are imported here, never by
``compress --help``, which is why some CLI lists are written out by hand and held here instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from compress.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def _docs_text() -> str:
    return "\n".join(path.read_text() for path in sorted(DOCS.glob("*.md")))


def _choices(command: str, option: str) -> tuple[str, ...]:
    param = next(p for p in _commands()[command].params if option in p.opts)
    assert isinstance(param.type, click.Choice), f"compress {command} {option} is not a choice list"
    return tuple(param.type.choices)


def test_every_command_is_listed():
    assert set(_commands()) == set(COMMANDS) and all(_commands().values())


def test_every_command_and_option_is_documented():
    text, missing = _docs_text(), []
    for name, command in _commands().items():
        if f"compress {name}" not in text:
            missing.append(f"compress {name}")
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            for opt in (*param.opts, *param.secondary_opts):
                if opt in ("-h", "--help") or opt.startswith("-") and not opt.startswith("--"):
                    continue  # short forms (-o) are documented beside their long name (--out)
                if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text):
                    missing.append(f"compress {name} {opt}")
    assert not missing, f"not named in any docs/*.md page: {missing}"


def test_docs_pages_exist_and_readme_links_them():
    readme = (ROOT / "README.md").read_text()
    pages = ("cli", "tasks-and-detectors", "runtimes-and-latency", "recovery", "python-api", "troubleshooting")
    for page in pages:
        assert (DOCS / f"{page}.md").is_file(), page
        assert f"docs/{page}.md" in readme, f"README.md does not link docs/{page}.md"
    assert "benchmarks/README.md" in readme
    assert len(readme.splitlines()) < 200, "README.md is for a newcomer: under 200 lines"


def test_export_formats_and_backends_are_the_runtime_registry():
    from compress.export import runtimes

    assert _choices("prune", "--backend") == runtimes.latency_backends()
    for command, option in (("prune", "--export"), ("export", "--format"), ("bench", "--backend")):
        param = next(p for p in _commands()[command].params if option in p.opts)
        allowed = runtimes.NAMES if option == "--backend" else runtimes.formats()
        assert param.callback(None, param, ",".join(allowed)) == allowed  # every registry name is accepted
        try:
            param.callback(None, param, "no-such-runtime")
        except click.BadParameter:
            pass
        else:
            raise AssertionError(f"compress {command} {option} accepts an unknown name")
    # sweep times one backend whose rows are plain FP32 ones: a subset of the registry, never a name it lacks
    assert set(_choices("sweep", "--backend")) <= set(runtimes.NAMES)


def test_task_importance_schedule_choices_are_their_registries():
    from compress.prune.importance.base import ESTIMATORS
    from compress.prune.schedules import SCHEDULES  # the schedule registry
    from compress.tasks import CHOICES, TASKS

    assert _choices("prune", "--task") == CHOICES == ("auto", *TASKS)
    assert set(_choices("prune", "--importance")) == set(ESTIMATORS)
    assert set(_choices("sweep", "--importance")) == set(ESTIMATORS)
    assert set(_choices("prune", "--schedule")) == set(SCHEDULES)


def test_int8_preset_precision_choices_are_their_registries():
    from compress.calibrate.preprocess import PRESETS
    from compress.export.quantize import METHODS, TARGETS
    from compress.recover.config import AMP_MODES

    for command in ("prune", "export"):
        assert _choices(command, "--int8-method") == METHODS
        assert _choices(command, "--target") == TARGETS
    for command in ("inspect", "prune", "export", "bench", "sweep"):
        assert set(_choices(command, "--preset")) == set(PRESETS)
    # the CLI says fp32 where DistillConfig says off (prune_cmd translates it)
    assert {{"fp32": "off"}.get(c, c) for c in _choices("prune", "--recover-precision")} == set(AMP_MODES)


def test_benchmarks_readme_names_every_script():
    text = (ROOT / "benchmarks" / "README.md").read_text()
    scripts = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("benchmarks/real/*.py")])
    missing = [str(p.relative_to(ROOT)) for p in scripts
               if p.name != "__init__.py" and str(p.relative_to(ROOT)) not in text]
    assert scripts and not missing, f"benchmarks/README.md does not name: {missing}"


def _slugs(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_link_between_the_pages_resolves():
    """README.md, ARCHITECTURE.md, docs/*.md and the benchmarks pages link only files that exist and headings
    that exist (RESULTS.md's index by question included)."""
    pages = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted(DOCS.glob("*.md")),
             ROOT / "benchmarks" / "README.md", ROOT / "benchmarks" / "RESULTS.md"]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _slugs(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken
    assert "](#" in (ROOT / "benchmarks" / "RESULTS.md").read_text()[:6000]  # the index by question is at its top
