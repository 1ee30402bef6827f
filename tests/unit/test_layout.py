"""The house rules, held by walking the package's source (AST, function-level imports too):
floors only import downwards, no import circles, server knowledge only in hotconf/servers/,
no store-kind branches in the process role, a small Config, every error exported."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

import hotconf
from hotconf import errors

PACKAGE = Path(hotconf.__file__).parent

GROUND, EDGES, ROLE, CONFIG, TOP = range(5)
FLOOR_NAMES = ["ground (pure core)", "edges (I/O)", "process role", "Config", "top (integrations)"]

# The floor map, in one place: the longest matching prefix wins. A new module must be placed.
FLOORS: Dict[str, int] = {
    "hotconf._version": GROUND,
    "hotconf.errors": GROUND,
    "hotconf.masking": GROUND,
    "hotconf.changes": GROUND,
    "hotconf.deltas": GROUND,
    "hotconf.formats": GROUND,
    "hotconf.snapshot": GROUND,
    "hotconf.options": GROUND,
    "hotconf.backoff": GROUND,
    "hotconf.runtime": GROUND,
    "hotconf.typed": GROUND,
    "hotconf.reload": GROUND,  # the package's docstring
    "hotconf.reload.policy": GROUND,
    "hotconf.apollo": GROUND,
    "hotconf.apollo.urls": GROUND,
    "hotconf.apollo.signing": GROUND,
    "hotconf.apollo.responses": GROUND,
    "hotconf.apollo.notifications": GROUND,
    "hotconf.apollo.transport": EDGES,
    "hotconf.apollo.client": EDGES,
    "hotconf.stores": EDGES,
    "hotconf.cache": EDGES,
    "hotconf.election": EDGES,
    "hotconf.blocking": EDGES,
    "hotconf.pathlocks": GROUND,
    "hotconf.status": GROUND,
    "hotconf.registry": EDGES,
    "hotconf.metrics": EDGES,
    "hotconf.reload.actions": EDGES,
    "hotconf.reload.record": EDGES,
    "hotconf.process": ROLE,
    "hotconf.reload.controller": ROLE,
    "hotconf.models": GROUND,
    "hotconf.aio": CONFIG,  # await cfg.ready(), async listeners on the bound loop
    "hotconf.listeners": CONFIG,
    "hotconf.resources": CONFIG,
    "hotconf.bound": CONFIG,
    "hotconf.config": CONFIG,
    "hotconf": TOP,  # the package root: the public API
    "hotconf.servers": TOP,
    "hotconf.integrations": TOP,
    "hotconf.cli": TOP,
    "hotconf.devserver": TOP,
    "hotconf.testing": TOP,
}


def modules() -> Dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def floor_of(module: str) -> int:
    best = max((prefix for prefix in FLOORS if module == prefix or module.startswith(prefix + ".")),
               key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} has no floor: add it to FLOORS in {__file__}")
    return FLOORS[best]


def imports_of(module: str) -> Iterator[Tuple[str, int]]:
    """(imported hotconf module, line) for every import anywhere in the module's source."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hotconf":
                    yield _known(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "hotconf":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in MODULES else _known(base)), node.lineno


def _known(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rpartition(".")[0]
    return name


GRAPH: Dict[str, Set[str]] = {m: {dst for dst, _ in imports_of(m)} - {m} for m in MODULES}


def test_every_module_has_a_floor():
    for module in MODULES:
        floor_of(module)


def test_no_module_imports_one_on_a_higher_floor():
    wrong = []
    for module in MODULES:
        for imported, line in imports_of(module):
            if floor_of(imported) > floor_of(module):
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} {module} "
                             f"({FLOOR_NAMES[floor_of(module)]}) imports {imported} "
                             f"({FLOOR_NAMES[floor_of(imported)]})")
    assert wrong == []


def test_no_import_circles():
    cycles: List[List[str]] = []
    state: Dict[str, int] = {}  # 1 visiting, 2 done

    def visit(module: str, path: List[str]) -> None:
        state[module] = 1
        for nxt in sorted(GRAPH[module]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_function_level_imports():
    """The walk must not miss an import hidden in a function (that is how circles hide)."""
    tree = ast.parse("def f():\n    from .config import Config\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))
    assert "hotconf.process.binding" in GRAPH["hotconf.config"]


SERVER_MODULES = ("uwsgi", "uwsgidecorators", "gunicorn", "celery", "billiard", "kombu")


def _outside_servers(module: str) -> bool:
    return not (module == "hotconf.servers" or module.startswith("hotconf.servers."))


def test_only_servers_import_uwsgi_or_gunicorn():
    found = []
    for module, path in MODULES.items():
        if not _outside_servers(module):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] in SERVER_MODULES:
                    found.append(f"{module}:{node.lineno} imports {name}")
    assert found == []


def test_only_servers_and_the_cli_reload_command_send_signals():
    found = []
    for module, path in MODULES.items():
        if not _outside_servers(module):
            continue
        tree = ast.parse(path.read_text())
        allowed: Set[int] = set()
        if module == "hotconf.cli":  # `hotconf reload --pidfile` names the signal it sends
            for fn in ast.walk(tree):
                if isinstance(fn, ast.FunctionDef) and fn.name == "cmd_reload":
                    allowed |= {n.lineno for n in ast.walk(fn) if hasattr(n, "lineno")}
        for node in ast.walk(tree):
            # kill(pid, 0) sends nothing: it asks whether the process exists (the registry)
            if (isinstance(node, ast.Call) and len(node.args) == 2
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value == 0):
                allowed.add(node.lineno)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in allowed:
                continue
            if isinstance(node, ast.Attribute) and node.attr in ("kill", "killpg", "SIGHUP"):
                found.append(f"{module}:{node.lineno} uses .{node.attr}")
            if isinstance(node, ast.Name) and node.id in ("kill", "killpg", "SIGHUP"):
                found.append(f"{module}:{node.lineno} uses {node.id}")
    assert found == []


@pytest.mark.parametrize("module", ["hotconf.process.role", "hotconf.process.binding",
                                    "hotconf.process.poller"])
def test_the_process_role_never_branches_on_store_kinds(module):
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in ("memory", "file", "uwsgi")
                   for o in operands) or any(
                    isinstance(o, (ast.Name, ast.Attribute)) and
                    getattr(o, "id", getattr(o, "attr", "")) == "kind" for o in operands):
                found.append(f"line {node.lineno}: compares a store kind")
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance" \
                and "Store" in ast.unparse(node.args[1]):
            found.append(f"line {node.lineno}: isinstance(..., Store)")
        if isinstance(node, ast.Attribute) and node.attr == "persistent":
            found.append(f"line {node.lineno}: .persistent")
    assert found == []


def test_config_is_small():
    lines = MODULES["hotconf.config"].read_text().count("\n")
    assert lines < 200, f"hotconf/config.py has {lines} lines: move what is not reading out"


def test_every_exception_is_exported_from_the_package():
    for name in dir(errors):
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, Exception) and \
                value.__module__ == errors.__name__:
            assert getattr(hotconf, name, None) is value, f"hotconf.{name} is missing"
            assert name in hotconf.__all__
    # No other module defines an exception a user could meet (the CLI's is its exit code; a
    # private one, caught in its own module, is control flow: models' _Invalid).
    others = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and module not in ("hotconf.errors", "hotconf.cli") \
                    and not node.name.startswith("_") \
                    and any(ast.unparse(b).endswith(("Error", "Exception")) for b in node.bases):
                others.append(f"{module}.{node.name}")
    assert others == []


def test_every_package_says_what_lives_there_and_what_it_may_import():
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert doc, f"{module} has no docstring"
        if module != "hotconf":
            assert "import" in doc.lower(), f"{module}'s docstring does not say what it may import"


def test_the_core_install_pulls_no_framework():
    """`pip install hotconf` brings requests and watchdog; Django, Celery, FastAPI and the
    others come only with their extras."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    core = {dep.split(">")[0].split("=")[0].split("[")[0].strip().lower()
            for dep in project["dependencies"]}
    assert core == {"requests", "watchdog"}
    extras = project["optional-dependencies"]
    for extra, package in (("django", "django"), ("celery", "celery"), ("fastapi", "fastapi"),
                           ("pydantic", "pydantic"), ("metrics", "prometheus_client")):
        assert any(dep.lower().startswith(package) for dep in extras[extra]), extra
