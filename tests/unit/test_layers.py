"""The layer rule (docs/architecture.md), checked on every import under src/sluice.

Layers, lowest first: domain, store, log, views, service, api, demo, cli. A module may import
its own package and any lower layer, never a higher one. The edge packages (sdk, agent,
transport) run inside users' processes: they may import only sluice.domain and
sluice.transport; of the layers, only service, api, demo and cli may import them. Resource
packages (sql, dashboard) hold files, not code: anyone may import them, they import nothing
of sluice. Top-level modules (src/sluice/__init__.py) belong to no layer and are not checked.
Imports are read with `ast`, wherever they are (function bodies, TYPE_CHECKING blocks):
relative ones are resolved against the module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final, NamedTuple

SRC: Final = Path(__file__).resolve().parents[2] / "src"
ROOT: Final = "sluice"

RANK: Final = {"domain": 0, "store": 1, "log": 2, "views": 3, "service": 4, "api": 5,
               "demo": 6, "cli": 7}
EDGE: Final = frozenset({"sdk", "agent", "transport"})
EDGE_MAY_IMPORT: Final = frozenset({"domain", "transport"})
MAY_IMPORT_EDGE: Final = frozenset({"service", "api", "demo", "cli"})
RESOURCES: Final = frozenset({"sql", "dashboard"})


class Violation(NamedTuple):
    path: str
    line: int
    importer: str  # the importing module
    imported: str  # the module it names
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported}: {self.why}"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(module: str, is_package: bool) -> list[str]:
    parts = module.split(".")
    return parts if is_package else parts[:-1]


def imported_modules(tree: ast.AST, module: str, is_package: bool
                     ) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import of a sluice module in the tree. For
    `from PKG import NAME` both PKG.NAME and PKG are candidates; the caller keeps the one
    that says which top-level package is meant."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(module, is_package)
                up = node.level - 1
                if up > len(package) - 1:
                    found.append((node.lineno, "." * node.level + (node.module or "")))
                    continue
                base = package[:len(package) - up]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == ROOT:  # `from sluice import sdk`: the name may be a package
                found.extend((node.lineno, f"{ROOT}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found
            if name == ROOT or name.startswith(ROOT + ".") or name.startswith(".")]


def top_package(module: str, packages: frozenset[str]) -> str | None:
    """The top-level package (sluice.X) a module belongs to; None for a top-level module."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in packages:
        return None
    return parts[1]


def why_not(importer: str, imported: str) -> str | None:
    """Why package `importer` may not import package `imported` (None: it may)."""
    if importer == imported or imported in RESOURCES:
        return None
    for package in (importer, imported):
        if package not in RANK and package not in EDGE and package not in RESOURCES:
            return f"package {package!r} has no layer (add it to tests/unit/test_layers.py)"
    if importer in RESOURCES:
        return "a resource package imports nothing of sluice"
    if importer in EDGE:
        if imported in EDGE_MAY_IMPORT:
            return None
        return (f"the edge package {importer!r} may import only "
                f"{', '.join(sorted(EDGE_MAY_IMPORT))}")
    if imported in EDGE:
        if importer in MAY_IMPORT_EDGE:
            return None
        return (f"only {', '.join(sorted(MAY_IMPORT_EDGE))} may import the edge package "
                f"{imported!r}")
    if RANK[imported] > RANK[importer]:
        return f"{importer!r} (layer {RANK[importer]}) is below {imported!r} " \
               f"(layer {RANK[imported]})"
    return None


def check_source(source: str, module: str, is_package: bool, packages: frozenset[str],
                 path: str = "<string>") -> list[Violation]:
    importer = top_package(module, packages)
    if importer is None:
        return []  # a top-level module: no layer
    tree = ast.parse(source, filename=path)
    out = []
    for line, imported in imported_modules(tree, module, is_package):
        if imported.startswith("."):
            out.append(Violation(path, line, module, imported,
                                 "relative import beyond the sluice package"))
            continue
        target = top_package(imported, packages)
        if target is None:
            continue  # sluice itself or a top-level module: no layer
        why = why_not(importer, target)
        if why:
            out.append(Violation(path, line, module, imported, why))
    return out


def packages_under(src: Path = SRC) -> frozenset[str]:
    return frozenset(p.name for p in (src / ROOT).iterdir()
                     if p.is_dir() and (p / "__init__.py").is_file())


def check_tree(src: Path = SRC) -> list[Violation]:
    packages = packages_under(src)
    violations = []
    for path in sorted((src / ROOT).rglob("*.py")):
        violations.extend(check_source(
            path.read_text(encoding="utf-8"), module_name(path, src),
            path.name == "__init__.py", packages, str(path.relative_to(src.parent))))
    return violations


# -- the tests ----------------------------------------------------------------------------


def test_every_import_follows_the_layers() -> None:
    packages = packages_under()
    assert {"domain", "store", "log", "views", "service", "api", "sdk"} <= packages
    unknown = packages - set(RANK) - EDGE - RESOURCES
    assert not unknown, f"packages without a layer: {sorted(unknown)}"
    violations = check_tree()
    assert not violations, "imports against the layer rule:\n" + "\n".join(
        str(v) for v in violations)


_KNOWN = frozenset({*RANK, *EDGE, *RESOURCES})


def _check(source: str, module: str, is_package: bool = False) -> list[str]:
    return [v.imported for v in check_source(source, module, is_package, _KNOWN)]


def test_the_checker_finds_what_runs_against_the_rule() -> None:
    # upward, absolute and relative, at module level and inside a function
    assert _check("from sluice.views import registry\n", "sluice.store.x") == [
        "sluice.views"]
    assert _check("from ..views.registry import READ_MODELS\n", "sluice.store.x") == [
        "sluice.views.registry"]
    assert _check("from .. import service\n", "sluice.log", is_package=True) == [
        "sluice.service"]
    assert _check("def f():\n    import sluice.api.app\n", "sluice.views.jobs.reader") == [
        "sluice.api.app"]
    assert _check("from sluice import cli\n", "sluice.demo.run") == ["sluice.cli"]
    # the edge: what it may import, and who may import it
    assert _check("from sluice.store import db\n", "sluice.agent.run") == ["sluice.store"]
    assert _check("from sluice.sdk import config\n", "sluice.agent.run") == ["sluice.sdk"]
    assert _check("from sluice.agent import run\n", "sluice.views.model") == [
        "sluice.agent"]
    # an unranked package
    assert _check("from sluice.newthing import x\n", "sluice.api.app") == []  # not a package
    assert _check("import sluice.api\n", "sluice.newthing.x") == []  # importer not a package
    assert check_source("from sluice.api import app\n", "sluice.newthing.x", False,
                        _KNOWN | {"newthing"})[0].why.startswith("package 'newthing'")


def test_the_checker_lets_the_rule_through() -> None:
    allowed = [
        ("from sluice.domain.events import Event\nfrom sluice.store import usage\n"
         "from sluice.log import event_log\nfrom sluice.views import registry\n",
         "sluice.service.ingest"),
        ("from . import model\nfrom .model import ReadModel\nfrom ..model import Context\n",
         "sluice.views.jobs.projector"),
        ("from sluice.domain import events\nfrom sluice.transport import sender\n"
         "from .config import Config\n", "sluice.sdk.runtime"),
        ("from sluice.sdk import init\nfrom sluice.agent import run\n", "sluice.demo.run"),
        ("from sluice.transport.sender import Sender\n", "sluice.api.ingest"),
        ("import sluice\nfrom sluice import __version__\n", "sluice.store.db"),
        ("from sluice import sdk\nfrom sluice.store import db\n", "sluice"),  # no layer
    ]
    for source, module in allowed:
        assert _check(source, module) == [], module
