"""The SDK's real-worker suite again, on the oldest Celery Sluice supports (5.3).

A cached virtualenv holds Celery 5.3 and its era's kombu/redis; everything else (Sluice's
dependencies, pytest) comes from the running environment through a .pth file placed after
the venv's own packages, so the old Celery shadows the new one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

OLDEST = "5.3.6"
PINS = [f"celery=={OLDEST}", "kombu>=5.3.4,<5.4", "redis>=4.5.2,<5"]
REPO = Path(__file__).resolve().parents[2]


def _cache_dir() -> Path:
    base = Path(os.environ.get("SLUICE_TEST_CACHE") or Path.home() / ".cache" / "sluice-tests")
    return base / f"celery-{OLDEST}-py{sys.version_info.major}.{sys.version_info.minor}"


def _build(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    try:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *PINS], check=True, timeout=600, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        if "Could not find a version" in exc.stderr or "No matching distribution" in exc.stderr \
                or "NewConnectionError" in exc.stderr or "Network is unreachable" in exc.stderr:
            pytest.skip(f"no package index to install celery {OLDEST}: {exc.stderr[-300:]}")
        raise
    (venv / "ok").write_text(OLDEST)


def parent_link(python: Path) -> Path:
    """The .pth file in the venv's site-packages that links it to the running environment."""
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    return Path(site.stdout.strip(), "zz_sluice_parent.pth")


def link_running_environment(python: Path) -> None:
    """Let the venv see the running environment's packages (and its editable sluice), after
    its own. Rewritten on every use: the cache outlives the environment that built it."""
    parent = sysconfig.get_paths()["purelib"]
    parent_link(python).write_text(f"import site; site.addsitedir({parent!r})\n")


def ready(venv: Path) -> Path:
    """The cached venv's python, built if missing and linked to the running environment."""
    python = venv / "bin" / "python"
    if not (venv / "ok").exists() or not python.exists():
        _build(venv)
    link_running_environment(python)
    return python


@pytest.fixture(scope="session")
def oldest_python() -> Path:
    return ready(_cache_dir())


@pytest.mark.slow
def test_a_cached_venv_follows_the_environment_that_uses_it(oldest_python: Path) -> None:
    # CI met a cache built by a since-deleted clone's venv: its link led nowhere, so no pytest
    parent_link(oldest_python).write_text(
        "import site; site.addsitedir('/nonexistent/site-packages')\n")
    ready(_cache_dir())
    subprocess.run([str(oldest_python), "-c", "import pytest, sluice, msgspec"], check=True)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # building the venv once (pip) plus the suite itself
def test_sdk_real_worker_suite_on_celery_5_3(oldest_python: Path) -> None:
    version = subprocess.run([str(oldest_python), "-c", "import celery, kombu; "
                              "print(celery.__version__, kombu.__version__)"],
                             check=True, capture_output=True, text=True).stdout.split()
    assert version[0] == OLDEST and version[1].startswith("5.3"), version
    run = subprocess.run(
        [str(oldest_python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/integration/test_sdk_celery.py"],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
