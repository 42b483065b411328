"""Import paths people use keep working, and README's map of the package matches its folders.

Every `from lambda_affinity... import ...` written in README.md, docs/, locustfiles/ and bench/ is
imported here, so a move that breaks a documented path fails at once; the paths of earlier versions
(before the package had layer folders) are listed and must give the same objects as their new homes."""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "plugin" / "lambda_affinity"
IMPORT = re.compile(r"^\s*from (lambda_affinity(?:\.\w+)*) import \(?([\w, \n]+?)\)?\s*(?:#.*)?$", re.M)

# old path -> new homes (space-separated), for the names each re-exports
MOVED = {
    "lambda_affinity.users": "lambda_affinity.locust_plugin.users",
    "lambda_affinity.probe": "lambda_affinity.core.reply",
    "lambda_affinity.tracker": "lambda_affinity.core.tracker",
    "lambda_affinity.charts": "lambda_affinity.report.charts",
    "lambda_affinity.simulate": "lambda_affinity.sim.simulate lambda_affinity.sim.replay",
}


# what each old module defined at the top level (before the layer folders): all of it still imports from there
OLD_PUBLIC_NAMES = {
    "lambda_affinity.users": ("AllAtOnce", "FunctionUrlUser", "InvokeUser", "SignerUnavailable", "lambda_client"),
    "lambda_affinity.probe": (
        "MAX_ENV_ID_LEN",
        "Observation",
        "PROBE_VERSION",
        "ProbeReplyError",
        "function_error",
        "http_failure",
        "invoke_failure",
        "parse_reply",
        "snippet",
    ),
    "lambda_affinity.tracker": ("DEFAULT_MAX_ENVS", "ROW_FIELDS", "Tracker", "UserTally"),
    "lambda_affinity.charts": (
        "Axis",
        "Chart",
        "Layout",
        "Markup",
        "PALETTE",
        "Point",
        "SPREADS",
        "Series",
        "THEMES",
        "escape",
        "format_number",
        "html_page",
        "html_table",
        "layout",
        "linear_ticks",
        "log_ticks",
        "render_svg",
    ),
    "lambda_affinity.simulate": ("FUNCTION", "RunResult", "Scenario", "replay", "run", "run_many"),
    "lambda_affinity.summary": (
        "BINS",
        "CHECKS",
        "MILLION",
        "MissCost",
        "PER_USER_KEYS",
        "PER_USER_LIMIT",
        "STAT_KEYS",
        "check_miss_cost",
        "check_value",
        "distribution",
        "evaluate_checks",
        "histogram",
        "histogram_svg",
        "inject_html_section",
        "merge_rows",
        "miss_cost",
        "miss_cost_line",
        "percentile",
        "rates_line",
        "render_html_section",
        "render_table",
        "rows_csv",
        "summarize",
        "summary_csv",
    ),
}


@pytest.mark.parametrize("old, names", sorted(OLD_PUBLIC_NAMES.items()))
def test_every_public_name_of_an_old_module_still_imports_from_it(old, names):
    module = importlib.import_module(old)
    assert [n for n in names if not hasattr(module, n)] == []


def documented_imports() -> list[tuple[str, str, str]]:
    """(file, module, name) of every import statement of the package in the docs and scenarios."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "docs").rglob("*.py"))]
    files += sorted((ROOT / "locustfiles").glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
    found = []
    for path in files:
        for module, names in IMPORT.findall(path.read_text()):
            for name in names.replace("\n", " ").split(","):
                name = name.split(" as ")[0].strip()
                if name:
                    found.append((str(path.relative_to(ROOT)), module, name))
    return found


def test_the_docs_and_scenarios_import_something():
    modules = {m for _, m, _ in documented_imports()}
    assert {"lambda_affinity.users", "lambda_affinity.locust_plugin", "lambda_affinity.platform"} <= modules


@pytest.mark.parametrize("where, module, name", documented_imports())
def test_every_documented_import_works(where, module, name):
    imported = importlib.import_module(module)
    assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), f"{where}: {module}.{name}"


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_old_paths_give_the_objects_of_their_new_homes(old, new):
    before, homes = importlib.import_module(old), [importlib.import_module(m) for m in new.split()]
    assert before.__all__
    for name in before.__all__:
        assert any(getattr(before, name) is getattr(home, name, None) for home in homes), f"{old}.{name}"


def test_the_old_summary_path_spans_statistics_and_renderings():
    from lambda_affinity import summary
    from lambda_affinity.core import summary as statistics
    from lambda_affinity.report import render

    for name in summary.__all__:
        if name == "check_miss_cost":  # the shim's own: MissCostPrice checks itself now
            continue
        assert getattr(summary, name) in (getattr(statistics, name, None), getattr(render, name, None)), name


def test_readme_maps_every_folder_of_the_package_and_no_other():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    mapped = set(re.findall(r"^\| `plugin/lambda_affinity/(\w+)/` \|", table, re.M))
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert mapped == folders
