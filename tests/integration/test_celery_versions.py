"""The SDK's and the agent's real-worker suites again, on every Celery minor Sluice supports.

One cached virtualenv per version holds that Celery and its era's kombu and redis-py;
everything else (Sluice's other dependencies, pytest) comes from the running environment
through a .pth file placed after the venv's own packages, so the venv's Celery shadows the
running one. The suites run there as they run here: real workers on a real Redis (and
RabbitMQ when SLUICE_TEST_RABBITMQ_URL is set).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

# Each supported minor's last release, with the kombu of its minor (redis-py >= 5: the
# agent's floor, which every one of these admits).
VERSIONS = {"5.3": "5.3.6", "5.4": "5.4.0", "5.5": "5.5.3", "5.6": "5.6.3", "5.7": "5.7.0"}
SUITES = ["tests/integration/test_sdk_celery.py", "tests/integration/test_agent_redis.py",
          "tests/integration/test_agent_rabbitmq.py"]
REPO = Path(__file__).resolve().parents[2]


def _pins(version: str) -> list[str]:
    minor = version.rsplit(".", 1)[0]
    return [f"celery[redis]=={version}", f"kombu=={minor}.*", "redis>=5"]


def _cache_dir(version: str) -> Path:
    base = Path(os.environ.get("SLUICE_TEST_CACHE") or Path.home() / ".cache" / "sluice-tests")
    return base / f"celery-{version}-py{sys.version_info.major}.{sys.version_info.minor}"


def _build(venv: Path, version: str) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    try:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *_pins(version)], check=True, timeout=600, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        if "Could not find a version" in exc.stderr or "No matching distribution" in exc.stderr \
                or "NewConnectionError" in exc.stderr or "Network is unreachable" in exc.stderr:
            pytest.skip(f"no package index to install celery {version}: {exc.stderr[-300:]}")
        raise
    (venv / "ok").write_text(version)


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


def ready(version: str) -> Path:
    """The cached venv's python, built if missing and linked to the running environment."""
    venv = _cache_dir(version)
    python = venv / "bin" / "python"
    if not (venv / "ok").exists() or not python.exists():
        _build(venv, version)
    link_running_environment(python)
    return python


@pytest.mark.slow
def test_a_cached_venv_follows_the_environment_that_uses_it() -> None:
    # CI met a cache built by a since-deleted clone's venv: its link led nowhere, so no pytest
    python = ready(VERSIONS["5.3"])
    parent_link(python).write_text(
        "import site; site.addsitedir('/nonexistent/site-packages')\n")
    ready(VERSIONS["5.3"])
    subprocess.run([str(python), "-c", "import pytest, sluice, msgspec"], check=True)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # building the venv once (pip) plus the suites themselves
@pytest.mark.parametrize("minor", sorted(VERSIONS))
def test_sdk_and_agent_suites_on_celery(minor: str) -> None:
    version = VERSIONS[minor]
    python = ready(version)
    found = subprocess.run([str(python), "-c", "import celery, kombu, redis; "
                            "print(celery.__version__, kombu.__version__, redis.__version__)"],
                           check=True, capture_output=True, text=True).stdout.split()
    assert found[0] == version and found[1].startswith(minor + "."), found
    run = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout, run.stdout[-2000:]
