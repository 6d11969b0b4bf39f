"""pyproject.toml: every module the program imports is packaged, the
dependencies are requirements.txt's, and the wheel installs a program
that runs and finds its sample song."""

import ast
import configparser
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import ROOT, free_port, skip_outside_ci

SCRIPTS = {"p2p-facom": "p2p_facom:main", "p2p-seeder": "seeder:main",
           "p2p-leecher": "leecher:main"}
# Modules run by path as programs (subprocesses), besides the entry points.
STARTED_BY_PATH = ("seeder",)
# What the build needs from the source tree: no tests, no venv, no VCS.
NOT_SHIPPED = (".git", ".venv", "tests", "bench", "launcher", "build",
               "dist", "downloads", "test-artifacts", "__pycache__",
               "*.egg-info", ".pytest_cache", ".hypothesis", ".ruff_cache")
SETUPTOOLS_WITH_WHEEL = (70, 1)  # builds wheels without the wheel package


def pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def py_modules() -> list[str]:
    return pyproject()["tool"]["setuptools"]["py-modules"]


def local_imports(module: str) -> set[str]:
    """Top-level modules of the project that ``module`` imports, at the
    top or inside functions."""
    with open(os.path.join(ROOT, f"{module}.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return {name for name in names
            if os.path.isfile(os.path.join(ROOT, f"{name}.py"))}


def imported_by_the_program() -> set[str]:
    entry = {target.split(":")[0] for target in SCRIPTS.values()}
    todo, seen = [*entry, *STARTED_BY_PATH], set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(local_imports(module) - seen)
    return seen


def test_every_module_the_program_imports_is_packaged():
    program = imported_by_the_program()
    assert {"p2p_facom", "seeder", "leecher", "gui", "player",
            "protocol", "cli"} <= program
    missing = sorted(program - set(py_modules()))
    assert not missing, f"add to py-modules in pyproject.toml: {missing}"


def test_packaged_modules_exist():
    for module in py_modules():
        assert os.path.isfile(os.path.join(ROOT, f"{module}.py")), module


def test_dependencies_are_requirements_txt():
    with open(os.path.join(ROOT, "requirements.txt"),
              encoding="utf-8") as handle:
        pins = [line.strip() for line in handle
                if line.strip() and not line.startswith("#")]
    assert sorted(pyproject()["project"]["dependencies"]) == sorted(pins)


def test_console_scripts_name_existing_functions():
    assert pyproject()["project"]["scripts"] == SCRIPTS
    for target in SCRIPTS.values():
        module, function = target.split(":")
        with open(os.path.join(ROOT, f"{module}.py"),
                  encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        assert any(isinstance(node, ast.FunctionDef) and
                   node.name == function for node in tree.body), target


# ---------------------------------------------------------- the real wheel
def build_tools_here() -> None:
    try:
        import setuptools
    except ImportError:
        setuptools = None
    version = tuple(int(part) for part in
                    setuptools.__version__.split(".")[:2]) \
        if setuptools else (0, 0)
    if version < SETUPTOOLS_WITH_WHEEL:
        skip_outside_ci(f"this venv's setuptools "
                        f"({setuptools and setuptools.__version__}) cannot "
                        f"build a wheel offline: ./setup.sh test installs "
                        f"requirements-test.txt")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """``pip wheel --no-deps`` of a copy of the tree (the build writes
    build/ and *.egg-info next to the sources: not in the repository)."""
    build_tools_here()
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source,
                    ignore=shutil.ignore_patterns(*NOT_SHIPPED))
    out = tmp / "out"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps",
         "--no-build-isolation", "--no-index", "-q", "-w", str(out),
         str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("p2p_facom-*.whl")
    return path


def test_the_wheel_holds_the_modules_data_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/RECORD"))
        record = {line.split(",")[0]
                  for line in archive.read(info).decode().splitlines()}
        entry = configparser.ConfigParser()
        entry.read_string(archive.read(
            info.replace("RECORD", "entry_points.txt")).decode())
    for module in py_modules():
        assert f"{module}.py" in names and f"{module}.py" in record
    assert "music/facom-sample.mp3" in record
    catalogs = {os.path.relpath(os.path.join(folder, name), ROOT)
                for folder, _, files in os.walk(os.path.join(ROOT, "locale"))
                for name in files if name.endswith(".mo")}
    assert catalogs <= record
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]
    assert dict(entry["console_scripts"]) == SCRIPTS


def test_the_installed_program_runs_and_finds_its_song(wheel, tmp_path):
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
         "-q", "--target", str(site), str(wheel)], capture_output=True,
        text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    env = dict(os.environ, PYTHONPATH=str(site))
    away = tmp_path / "elsewhere"  # not the project folder
    away.mkdir()
    helped = subprocess.run([site / "bin" / "p2p-facom", "-h"], cwd=away,
                            env=env, capture_output=True, text=True,
                            timeout=60)
    assert helped.returncode == 0 and "-t {seeder,leecher}" in helped.stdout
    seeder = subprocess.Popen(
        [site / "bin" / "p2p-seeder", "-i", "127.0.0.1", "-p",
         str(free_port()), "-q"], cwd=away, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = seeder.stdout.readline()
    finally:
        seeder.terminate()
        seeder.communicate(timeout=10)
    assert "sharing" in first and str(site / "music") in first, first
