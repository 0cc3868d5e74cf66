"""The documentation cannot drift from the code: flags, settings, exit codes, links, the site build.

Fast: `--help` never loads TensorFlow, and nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli

DOCS = REPO / "docs"
REFERENCE = DOCS / "reference.md"
README = REPO / "README.md"

# Every command and sub-command the reference documents, as `python -m jobs.<...>` arguments.
COMMANDS = [
    ("jobs.train",),
    ("jobs.score",),
    ("jobs.schedule",),
    ("jobs.models",),
    ("jobs.models", "list"),
    ("jobs.models", "show"),
    ("jobs.models", "promote"),
    ("jobs.models", "rollback"),
    ("jobs.models", "history"),
    ("jobs.runs",),
    ("jobs.runs", "list"),
    ("jobs.runs", "show"),
    ("jobs.runs", "prune"),
    ("jobs.labels",),
]
LONG_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
HEADING = re.compile(r"^(#{1,6}) (.*)$")


# -- reading the Markdown ----------------------------------------------------------------------


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every heading outside fenced code blocks."""
    found, fenced = [], False
    for i, line in enumerate(text.splitlines()):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced and (m := HEADING.match(line)):
            found.append((i, len(m.group(1)), m.group(2).strip()))
    return found


def section(text: str, title: str) -> str:
    """The body under the heading titled `title`, up to the next heading of its level or above."""
    lines = text.splitlines()
    marks = headings(text)
    starts = [(i, level) for i, level, t in marks if t == title]
    assert len(starts) == 1, f"expected one heading {title!r}, found {len(starts)}"
    start, level = starts[0]
    end = next((i for i, lv, _ in marks if i > start and lv <= level), len(lines))
    return "\n".join(lines[start + 1 : end])


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in `text`, header and separator rows left out."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        rows.append(cells)
    return rows[1:] if rows else rows  # the first row is the header


def command_title(cmd: tuple[str, ...]) -> str:
    return "`python -m " + " ".join(cmd) + "`"


def help_flags(cmd: tuple[str, ...]) -> set[str]:
    res = run_cli(*cmd, "--help", timeout=60)
    assert res.code == 0, res.stderr
    assert "usage: python -m " + " ".join(cmd) in res.stdout  # the right (sub-)command answered
    # The option lines only: the epilogue (exit codes) may mention another command's flag.
    options = re.findall(r"(?m)^ {2}(-[^ ].*?)(?: {2,}|$)", res.stdout)
    usage = res.stdout.split("\n\n", 1)[0]
    flags = set(LONG_FLAG.findall(" ".join(options)))
    assert flags == set(LONG_FLAG.findall(usage)) - {"--help"} | (flags & {"--help"}), res.stdout
    return flags - {"--help"}


# -- commands and their flags ------------------------------------------------------------------


@pytest.mark.parametrize("cmd", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_reference_lists_exactly_the_flags_of_each_command(cmd):
    documented_section = section(REFERENCE.read_text(), command_title(cmd))
    in_help = help_flags(cmd)
    assert in_help, f"no flags found in {cmd}'s --help"
    documented = set(LONG_FLAG.findall(documented_section)) - {"--help"}
    missing = sorted(in_help - documented)
    unknown = sorted(documented - in_help)
    assert not missing, f"{' '.join(cmd)}: flags in --help but not in reference.md: {missing}"
    assert not unknown, f"{' '.join(cmd)}: reference.md lists flags --help does not have: {unknown}"


def test_reference_has_a_section_for_every_command_and_no_other():
    titles = {t for _, level, t in headings(REFERENCE.read_text()) if t.startswith("`python -m")}
    assert titles == {command_title(c) for c in COMMANDS}


def test_every_sub_command_of_models_and_runs_is_covered():
    """A sub-command added to a job without a section here would otherwise go unnoticed."""
    for job in ("jobs.models", "jobs.runs"):
        res = run_cli(job, "--help", timeout=60)
        assert res.code == 0, res.stderr
        # argparse lists sub-commands under COMMAND, indented by four spaces.
        subs = set(re.findall(r"(?m)^ {4}([a-z]+)(?: |$)", res.stdout))
        assert subs, f"no sub-commands found in {job} --help"
        assert subs == {c[1] for c in COMMANDS if c[0] == job and len(c) == 2}, job


# -- settings ------------------------------------------------------------------------------------


def shown_default(value: object) -> str:
    """How the settings table writes a field's default."""
    if value is None:
        return "(none)"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def settings_table() -> dict[str, tuple[str, str]]:
    """environment name -> (flag, default) from every table under reference.md's Settings."""
    found = {}
    for row in table_rows(section(REFERENCE.read_text(), "Settings")):
        if len(row) != 4 or row[0] == "flag":
            continue
        flag, env, default = (cell.strip("`") for cell in row[:3])
        assert env not in found, f"{env} is listed twice"
        found[env] = (flag, default)
    return found


def test_every_setting_is_in_the_settings_table_with_its_real_default():
    from batch.settings import Settings, env_name, flag_name

    table = settings_table()
    fields = Settings.model_fields
    assert set(table) == {env_name(f) for f in fields}, "settings table and Settings differ"
    for name, info in fields.items():
        flag, default = table[env_name(name)]
        assert flag == flag_name(name), name
        assert default == shown_default(info.default), (
            f"{env_name(name)}: reference.md says {default!r}, the code says {info.default!r}"
        )


def test_every_setting_flag_is_a_flag_of_some_command():
    """The table names flags the jobs really have (the help of each command is the authority)."""
    everywhere = set().union(
        *(help_flags(c) for c in [("jobs.train",), ("jobs.schedule",), ("jobs.score",)])
    )
    for flag, _ in settings_table().values():
        assert flag in everywhere, flag


# -- exit codes ----------------------------------------------------------------------------------


def test_exit_code_table_matches_the_code():
    from batch.core.errors import EXIT_CODES

    rows = table_rows(section(REFERENCE.read_text(), "Exit codes"))
    documented = {int(row[0]): row[1] for row in rows}
    assert len(documented) == len(rows), "an exit code is listed twice"
    assert set(documented) == set(EXIT_CODES)
    for code, meaning in EXIT_CODES.items():
        assert documented[code] == meaning, f"exit {code}: {documented[code]!r} != {meaning!r}"


# -- README and links ----------------------------------------------------------------------------


def test_readme_is_short_and_keeps_the_ci_test_command():
    text = README.read_text()
    assert len(text.splitlines()) < 200
    # .ci/run extracts the test line from between these markers; it must stay one fenced line.
    block = re.search(r"<!-- test-command -->\n```\n(.+)\n```\n<!-- /test-command -->", text)
    assert block, "README.md lost its test-command markers or their fenced block"
    assert block.group(1).endswith("python -m pytest")
    assert "python -m jobs.train --if-missing && python -m jobs.score" in text


MARKDOWN_FILES = [README, *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", path.read_text())  # links in code blocks are not links
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def slug(title: str) -> str:
    """mkdocs' (Python-Markdown toc) anchor for a heading."""
    text = unicodedata.normalize("NFKD", title.replace("`", "")).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_points_at_a_file_of_the_repository(path):
    links = relative_links(path)
    for target in links:
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        assert dest.is_relative_to(REPO), f"{path.name}: {target} points outside the repository"
        assert dest.exists(), f"{path.name}: {target} points at a missing file"
        if anchor and dest.suffix == ".md":
            anchors = {slug(t) for _, _, t in headings(dest.read_text())}
            assert anchor in anchors, f"{path.name}: {target}: no heading with that anchor"


def test_readme_links_every_docs_page():
    linked = {t.partition("#")[0] for t in relative_links(README)}
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in linked, f"README.md does not link {page.name}"


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_docs_name_no_file_outside_the_repository(path):
    assert "../shared" not in path.read_text(), f"{path.name} points outside the repository"


def test_the_link_checker_finds_broken_links(tmp_path):
    """The checks above can fail: a missing file and a missing anchor are both caught."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[a](missing.md) [b](#no-such) [c](#title) `[d](x.md)`\n")
    assert relative_links(page) == ["missing.md", "#no-such", "#title"]
    assert {slug(t) for _, _, t in headings(page.read_text())} == {"title"}
    assert slug("`python -m jobs.models list`") == "python-m-jobsmodels-list"
    assert slug("Metrics (Prometheus, node_exporter's textfile collector)") == (
        "metrics-prometheus-node_exporters-textfile-collector"
    )


# -- the site ------------------------------------------------------------------------------------


def test_mkdocs_build_is_strict_clean(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        print(
            "mkdocs is not installed (pip install 'mkdocs>=1.6,<2'): the site build is not checked"
        )
        pytest.skip("mkdocs is not installed: pip install 'mkdocs>=1.6,<2'")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-3000:]
    for page in ("index", "operators", "analysts", "model", "reference", "architecture"):
        assert (tmp_path / "site" / page / "index.html").is_file() or (
            tmp_path / "site" / f"{page}.html"
        ).is_file(), page
