"""The wheel ships the templates: build it offline, install it (not editable) into a fresh venv,
and render from the installed copy, far away from this source tree.

Offline on purpose: the wheel is built without build isolation from a copy of the sources (so the
checkout gets no build/ directory), and installed with --no-index --no-deps. jinja2 and markupsafe,
the only third-party modules rendering needs, are made importable through a directory holding
just those two (a link to each), never the project's own site-packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.test_render import ROOT

pytestmark = pytest.mark.slow

TEMPLATES = ["Jenkinsfile.j2", "_push.sh.j2", "credential.xml.j2", "job-freestyle.xml.j2",
             "job-pipeline.xml.j2", "shell.sh.j2"]
EXAMPLE_ARGS = ["render", "jenkinsfile", "--registry", "10.211.55.6:8082", "--image", "jenkins-test",
                "--credentials-id", "docker-registry-login", "--tag", "latest", "--tag",
                "${BUILD_NUMBER}"]


def _copy_sources(target: Path) -> Path:
    source = target / "src"
    source.mkdir(parents=True)
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("jenkins_registry", "templates"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    return source


def _third_party_path(target: Path) -> Path:
    import jinja2
    import markupsafe

    deps = target / "deps"
    deps.mkdir()
    for module in (jinja2, markupsafe):
        package_dir = Path(module.__file__ or "").parent
        (deps / package_dir.name).symlink_to(package_dir, target_is_directory=True)
    return deps


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A venv with the built wheel installed, and the environment to run it in."""
    work = tmp_path_factory.mktemp("wheel")
    source = _copy_sources(work)
    dist = work / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(dist), str(source)],
        capture_output=True, text=True, timeout=300, cwd=work,
    )
    assert built.returncode == 0, (
        "building the wheel offline failed; it needs setuptools>=70.1, or setuptools with the "
        f"`wheel` package, in this venv:\n{built.stderr[-3000:]}")
    wheels = list(dist.glob("jenkins_registry-*.whl"))
    assert len(wheels) == 1, wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    for template in TEMPLATES:
        assert f"jenkins_registry/templates/{template}" in names, f"{template} is not in the wheel"
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(  # this venv's pip, pointed at the new venv: no ensurepip, no index
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-index",
         "--no-deps", str(wheels[0])],
        check=True, capture_output=True, timeout=300, cwd=work,
    )
    env = {"PATH": f"{env_dir / 'bin'}:{os.environ['PATH']}", "HOME": str(work),
           "PYTHONPATH": str(_third_party_path(work)), "PYTHONNOUSERSITE": "1", "LC_ALL": "C.UTF-8"}
    return env_dir, env


def test_installed_package_renders_from_its_own_templates(
        installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    env_dir, env = installed
    probe = (
        "import jenkins_registry, jenkins_registry.render as r\n"
        "print(jenkins_registry.__file__)\n"
        "print(r.template_origin('Jenkinsfile.j2'))\n"
        "print(r.environment().get_template('Jenkinsfile.j2').filename)\n"
    )
    done = subprocess.run([str(env_dir / "bin" / "python"), "-c", probe], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    site = (env_dir / "lib").resolve()
    for line in done.stdout.splitlines():
        path = Path(line).resolve()
        assert path.is_relative_to(site), f"{path} is not inside the installed venv"
        assert not path.is_relative_to(ROOT), f"{path} comes from the source tree"

    # The console script from the wheel renders exactly Jenkinsfile.example.
    out = tmp_path / "Jenkinsfile"
    done = subprocess.run([str(env_dir / "bin" / "jr"), *EXAMPLE_ARGS, "--output", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == (ROOT / "Jenkinsfile.example").read_text(encoding="utf-8")


def test_installed_package_reports_bad_input_without_traceback(
        installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    env_dir, env = installed
    done = subprocess.run([str(env_dir / "bin" / "jr"), *EXAMPLE_ARGS, "--tag", "a\nb"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr and "control character" in done.stderr
