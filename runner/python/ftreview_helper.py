"""Helpers ftreview runs with the target's interpreter (Python parses Python packaging files
better than anything else). Each subcommand prints one JSON document on stdout.

  project-info SRC_DIR NAME   build backend, test requirements, test paths of a source tree
  installed DIST              extension modules and top-level packages a distribution installed
  gil-check MODULE            whether importing MODULE turns the GIL back on (run without PYTHON_GIL)
"""

import configparser
import glob
import importlib
import importlib.machinery
import importlib.metadata
import json
import os
import re
import sys
import warnings

try:
    import tomllib
except ImportError:  # Python < 3.11: only pyproject-less projects are fully understood
    tomllib = None

TEST_NAMES = ("test", "tests", "testing")
# Files that list what the tests need; dev-wide files (docs, linters too) only as a fallback.
TEST_REQUIREMENT_GLOBS = (
    "requirements/test*.txt",
    "requirements/pytest*.txt",
    "requirements/ci*.txt",
    "requirements-test*.txt",
    "requirements_test*.txt",
    "test-requirements*.txt",
    "test_requirements*.txt",
    "tests/requirements*.txt",
)
DEV_REQUIREMENT_GLOBS = ("requirements-dev.txt", "requirements_dev.txt", "requirements/dev.txt")


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req):
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return canonical(match.group(1)) if match else None


def load_toml(path):
    if tomllib is None or not os.path.isfile(path):
        return {}
    with open(path, "rb") as f:
        return tomllib.load(f)


def read_requirements(path, seen):
    """Requirement lines of a requirements file, following -r includes; local paths and
    editable installs are dropped (they would rebuild the project without TSan)."""
    path = os.path.normpath(path)
    if path in seen or not os.path.isfile(path):
        return []
    seen.add(path)
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            include = re.match(r"^(-r|--requirement)\s*=?\s*(\S+)", line)
            if include:
                out += read_requirements(os.path.join(os.path.dirname(path), include.group(2)), seen)
            elif line.startswith(("-", ".", "/", "file:")) or "://" in line:
                continue
            else:
                out.append(line)
    return out


def dependency_group(groups, name, seen=()):
    out = []
    for entry in groups.get(name, []):
        if isinstance(entry, dict) and "include-group" in entry:
            inner = entry["include-group"]
            if inner not in seen:
                out += dependency_group(groups, inner, seen + (name,))
        elif isinstance(entry, str):
            out.append(entry)
    return out


def tox_deps(src):
    path = os.path.join(src, "tox.ini")
    if not os.path.isfile(path):
        return []
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
        deps = parser.get("testenv", "deps", fallback="")
    except configparser.Error:
        return []
    out = []
    for line in deps.splitlines():
        line = line.strip().replace("{toxinidir}", src)
        if re.match(r"^[\w,{}-]+:\s", line):  # factor-conditional line
            continue
        if line.startswith("-r"):
            out += read_requirements(os.path.join(src, line[2:].strip()), set())
        elif line and not line.startswith(("-", ".", "/")):
            out.append(line)
    return out


def pytest_config(src, pyproject):
    """(testpaths, addopts) from the first pytest configuration file pytest itself would use."""
    for name, section in (("pytest.ini", "pytest"), ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = os.path.join(src, name)
        if not os.path.isfile(path):
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except configparser.Error:
            continue
        if parser.has_section(section):
            paths = parser.get(section, "testpaths", fallback="").split()
            return paths, parser.get(section, "addopts", fallback="")
    options = pyproject.get("tool", {}).get("pytest", {}).get("ini_options", {})
    paths = options.get("testpaths", [])
    addopts = options.get("addopts", "")
    return ([paths] if isinstance(paths, str) else list(paths)), (" ".join(addopts) if isinstance(addopts, list) else addopts)


def add_files(src, patterns, add):
    seen = set()
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(src, pattern))):
            add(read_requirements(path, seen), os.path.relpath(path, src))


def project_info(src, name):
    pyproject = load_toml(os.path.join(src, "pyproject.toml"))
    build_system = pyproject.get("build-system", {})
    project = pyproject.get("project", {})
    own = {canonical(name or project.get("name", "") or os.path.basename(src))}
    sources = []
    requirements = []

    def add(found, origin):
        kept = [r for r in found if requirement_name(r) not in own]
        if kept:
            sources.append(origin)
            requirements.extend(kept)

    groups = pyproject.get("dependency-groups", {})
    for group in TEST_NAMES:
        add(dependency_group(groups, group), f"pyproject.toml [dependency-groups] {group}")
    extras = project.get("optional-dependencies", {})
    for extra in TEST_NAMES:
        add(extras.get(extra, []), f"pyproject.toml [project.optional-dependencies] {extra}")
    setup_cfg = os.path.join(src, "setup.cfg")
    if os.path.isfile(setup_cfg):
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(setup_cfg)
            for extra in TEST_NAMES:
                lines = parser.get("options.extras_require", extra, fallback="").splitlines()
                add([l.strip() for l in lines if l.strip()], f"setup.cfg extras_require {extra}")
        except configparser.Error:
            pass
    add_files(src, TEST_REQUIREMENT_GLOBS, add)
    if not requirements:
        add(dependency_group(groups, "dev"), "pyproject.toml [dependency-groups] dev")
        add_files(src, DEV_REQUIREMENT_GLOBS, add)
    if not requirements:
        add(tox_deps(src), "tox.ini [testenv] deps")
    testpaths, addopts = pytest_config(src, pyproject)
    if not testpaths:
        testpaths = [d for d in ("tests", "test") if os.path.isdir(os.path.join(src, d))]
    seen = set()
    unique = [r for r in requirements if not (r in seen or seen.add(r))]
    return {
        "build_backend": build_system.get("build-backend") or "setuptools.build_meta:__legacy__",
        "build_requires": build_system.get("requires", []),
        "test_requirements": unique,
        "requirement_sources": sources,
        "testpaths": [p for p in testpaths if os.path.exists(os.path.join(src, p))],
        "addopts": addopts,
    }


def installed(dist_name):
    dist = importlib.metadata.distribution(dist_name)
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    modules, tops = [], set()
    for f in dist.files or []:
        parts = f.parts
        if parts[0] == ".." or parts[0].endswith((".dist-info", ".data")) or "__pycache__" in parts:
            continue
        tops.add(parts[0].split(".")[0])
        name = str(f)
        if name.endswith(suffixes):
            module = ".".join(parts[:-1] + (parts[-1].split(".")[0],))
            modules.append({"module": module, "path": str(f.locate().resolve())})
    return {"name": dist.metadata["Name"], "version": dist.version, "extensions": modules, "top_level": sorted(tops)}


def _gil_enabled():
    """True on a GIL build (which has no `sys._is_gil_enabled`): the GIL is always on there."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else probe()


def gil_check(module):
    before = _gil_enabled()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            importlib.import_module(module)
            error = None
        except BaseException as exc:  # report, do not crash the check
            error = f"{type(exc).__name__}: {exc}"
    return {
        "module": module,
        "gil_before": before,
        "gil_after": _gil_enabled(),
        "warnings": [str(w.message) for w in caught],
        "error": error,
    }


def main(argv):
    command, *args = argv
    result = {"project-info": project_info, "installed": installed, "gil-check": gil_check}[command](*args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
