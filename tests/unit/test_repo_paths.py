"""Nothing in src/ or tests/ reads outside the repo: a plain `git clone` runs the tests.

Every Python file is parsed; these are refused:
- `parents[N]` or a chain of `.parent` on a path built from `__file__` that climbs above
  the repo's root;
- a string literal with a `..` path segment (`"../shared/fixtures"`), or an absolute path
  under the directory that holds the repo (`"/work/shared/..."` when the repo is
  `/work/sluice`), or naming `shared/fixtures`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[2]
SCANNED: Final = ("src", "tests")
_UP: Final = re.compile(r"(^|[/\\])\.\.([/\\]|$)")


def _python_files() -> list[Path]:
    # this file is left out: it spells what it refuses
    return sorted(p for top in SCANNED for p in (REPO / top).rglob("*.py")
                  if ".venv" not in p.parts and p != Path(__file__).resolve())


def _from_file(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(node))


def _parent_chain(node: ast.AST) -> tuple[int, ast.AST]:
    """`x.parent.parent` -> (2, x)."""
    count = 0
    while isinstance(node, ast.Attribute) and node.attr == "parent":
        count += 1
        node = node.value
    return count, node


def _climbs(node: ast.AST, depth: int) -> str | None:
    """What climbs above the repo root in `node` (depth: the `parents` index of the root,
    e.g. 2 for tests/unit/x.py), or None."""
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents" and _from_file(node.value)
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int)
            and node.slice.value > depth):
        return f"parents[{node.slice.value}]"
    count, base = _parent_chain(node)
    if count and _from_file(base) and not isinstance(node, ast.Subscript):
        inner, _ = _parent_chain(base)
        if inner == 0 and count - 1 > depth:
            return ".parent" * count
    return None


def _outside_literal(text: str, repo: Path) -> bool:
    if _UP.search(text) or "shared/fixtures" in text:
        return True
    beside = str(repo.parent).rstrip("/") + "/"  # siblings of the repo, e.g. ../shared
    return text.startswith(beside) and not (text + "/").startswith(str(repo) + "/")


def offences(path: Path, repo: Path = REPO) -> Iterator[str]:
    rel = path.relative_to(repo)
    depth = len(rel.parts) - 1  # tests/unit/x.py: parents[2] is the root
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        climb = _climbs(node, depth)
        if climb is not None:
            yield f"{where}: {climb} leaves the repo"
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and "\n" not in node.value and _outside_literal(node.value, repo)):
            yield f"{where}: path outside the repo {node.value!r}"


def test_nothing_reads_outside_the_repo() -> None:
    found = [o for path in _python_files() for o in offences(path)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("source", [
    'FIXTURES = Path(__file__).resolve().parents[3] / "x"',
    'FIXTURES = Path(__file__).parent.parent.parent.parent / "x"',
    'FIXTURES = Path("../shared/fixtures")',
    'FIXTURES = Path(os.environ.get("X", "../shared/fixtures")).resolve()',
    'FIXTURE = Path("{beside}/shared/data/celery-5.7-events.jsonl")',
])
def test_the_scan_sees_paths_that_leave(tmp_path: Path, source: str) -> None:
    repo = tmp_path / "repo"
    file = repo / "tests" / "unit" / "test_x.py"
    file.parent.mkdir(parents=True)
    file.write_text(source.format(beside=tmp_path) + "\n")
    assert list(offences(file, repo)), source


def test_paths_inside_the_repo_pass(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    file = repo / "tests" / "unit" / "test_x.py"
    file.parent.mkdir(parents=True)
    file.write_text('ROOT = Path(__file__).resolve().parents[2]\n'
                    'HERE = Path(__file__).parent.parent\n'
                    'FIXTURES = Path(__file__).resolve().parent / "fixtures"\n'
                    'TB = "/srv/shop/tasks.py"\n'
                    f'OWN = "{repo}/tests/fixtures"\n')
    assert list(offences(file, repo)) == []
