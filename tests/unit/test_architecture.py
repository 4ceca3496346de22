"""The layout is the architecture: imports run one way, and nothing goes round in a circle.

Read from the source (every import, also those inside functions), not from what Python
happened to load, so a lazy import cannot hide an arrow that points up.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "inboxwatch"

# Each layer and the layers it may import. `inboxwatch` is the package's own __init__
# (the version). A layer missing here fails the test: a new package must take its place.
BOTTOM = {"inboxwatch", "errors"}
ADAPTERS = {"imap", "local", "store", "delivery"}  # none imports another of these
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "periods": set(),
    "durations": set(),
    "links": set(),
    "secretfiles": {"errors"},
    "net": {"errors"},
    "auth": {"config", "secretfiles", "errors"},
    "standardsconfig": {"durations"},
    "tomlfiles": {"errors", "secretfiles"},
    "digestconfig": {"periods", "standardsconfig"},
    "configerrors": set(),
    "config": {
        *("errors", "periods", "durations", "secretfiles", "links", "standardsconfig"),
        *("tomlfiles", "digestconfig", "configerrors"),
    },
    "core": {"errors", "durations"},
    "imap": {"auth", "core", "config", "net", "errors"},
    "local": {"core", "errors"},
    "store": {"core", "config", "errors"},
    "delivery": {"auth", "core", "config", "links", "net", "periods", "errors"},
    "service": {
        *("auth", *ADAPTERS, "core", "config", "standardsconfig", "net", "periods", "errors"),
    },
    "setup": set(),
    "cli": {
        *("service", "auth", *ADAPTERS, "setup", "core", "config", "durations"),
        *("secretfiles", "errors"),
    },
    "__main__": {"cli"},
}
# Libraries that belong to one layer: whoever else imports them crosses a boundary.
OWNERS = {
    "imapclient": {"imap"},
    "imaplib": {"imap"},
    "smtplib": {"delivery"},
    "sqlite3": {"store"},
    "jinja2": {"delivery"},
    "apscheduler": {"service", "periods"},
    "click": {"cli"},
    "rich": {"cli"},
    "pydantic": {"config", "configerrors", "standardsconfig", "digestconfig"},
    "pydantic_settings": {"config"},
    "holidays": {"standardsconfig"},
    "psycopg": {"store"},
    "mailbox": {"local"},
    "msal": {"auth"},
    "requests": {"auth"},
    "prometheus_client": {"service"},
    "apprise": {"delivery"},
    "dns": {"setup"},
}
# The whole core, imported in a fresh interpreter, must not load any of these.
NOT_IN_CORE = {*OWNERS, "socketserver", "ssl", "subprocess"} - {"mailbox"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports(path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(inboxwatch modules, top-level outside modules) that `path` imports, anywhere."""
    ours: set[str] = set()
    theirs: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from inboxwatch.store import lastreport` imports the submodule itself.
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                for a in node.names
            ]
        else:
            continue
        for name in names:
            (ours if name.split(".")[0] == "inboxwatch" else theirs).add(name)
    return ours, {name.split(".")[0] for name in theirs}


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    found = modules()
    arrows: dict[str, set[str]] = {}
    outside: dict[str, set[str]] = {}
    for name, path in found.items():
        ours, theirs = imports(path, set(found))
        arrows[name] = {target for target in ours if target != name}
        outside[name] = theirs
    return arrows, outside


def cycle(arrows: dict[str, set[str]]) -> list[str] | None:
    """One import circle, or None (depth-first search, colouring modules)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(arrows.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(arrows):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_every_layer_is_in_the_table():
    assert {layer(m) for m in modules()} <= set(ALLOWED) | BOTTOM


def test_imports_only_run_downward():
    arrows, _ = graph()
    upward = [
        f"{source} -> {target}"
        for source, targets in arrows.items()
        for target in targets
        if layer(target) != layer(source)
        and layer(target) not in ALLOWED[layer(source)] | {"inboxwatch"}
    ]
    assert upward == []


def test_no_import_circle_anywhere():
    arrows, _ = graph()
    assert cycle(arrows) is None


def test_the_circle_finder_finds_circles():
    # The test above must be able to fail: a two-module and a three-module circle.
    assert cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_libraries_stay_in_their_layer():
    _, outside = graph()
    strays = [
        f"{module} imports {library}"
        for module, libraries in outside.items()
        for library in libraries
        if library in OWNERS and layer(module) not in OWNERS[library]
    ]
    assert strays == []


def test_imaplib_internals_are_touched_in_one_module():
    touching = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("_imap", "_new_tag"):
                touching.add(name)
    assert touching == {"inboxwatch.imap.wire"}


def loaded_after(*imports: str) -> list[str]:
    """The modules a fresh interpreter holds after importing `imports`."""
    code = "import sys\n" + "".join(f"import {m}\n" for m in imports)
    code += "print('\\n'.join(sorted(sys.modules)))"
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()


def test_importing_the_core_loads_no_io_library():
    core = sorted(m for m in modules() if layer(m) == "core")
    loaded = loaded_after(*core)
    assert {m.split(".")[0] for m in loaded} & NOT_IN_CORE == set()
    allowed = {*core, "inboxwatch.errors", "inboxwatch.durations"}  # durations: pure, re only
    assert {m for m in loaded if m.startswith("inboxwatch.")} <= allowed


def test_the_fetch_worker_starts_without_the_config():
    # A big folder's second connection is a process of its own; pydantic and the config
    # cost it ~0.1 s and ~12 MB (bench/README), so its side must not import them.
    loaded = loaded_after("inboxwatch.imap.workermain")
    assert "inboxwatch.config" not in loaded
    assert not {m.split(".")[0] for m in loaded} & {"pydantic", "pydantic_settings", "click"}


def test_the_cli_group_loads_a_command_only_when_it_runs():
    # `--version`, a container's `health` probe and cron's `run --once` should not pay
    # for every command's imports (0.53 s for `--version` before, 0.06 s after).
    loaded = loaded_after("inboxwatch.cli.main")
    assert not {m.split(".")[0] for m in loaded} & {"pydantic", "rich", "jinja2", "imapclient"}
    assert not {m for m in loaded if m.startswith("inboxwatch.cli.")} - {
        "inboxwatch.cli.main",
        "inboxwatch.cli.options",
    }
    run = loaded_after("inboxwatch.cli.run")
    assert not {m.split(".")[0] for m in run} & {"rich", "jinja2", "dns"}


def test_a_poll_from_cron_loads_no_scheduler_and_no_http_client():
    # `run --once` schedules nothing, and asks a token endpoint only when its access
    # token ran out: ~20 ms of every cron run (bench/README, issue 21).
    loaded = set(loaded_after("inboxwatch.cli.run", "inboxwatch.service.scheduler"))
    assert not loaded & {"apscheduler.schedulers", "urllib.request", "http.client"}


def test_every_command_named_by_the_group_is_found():
    import click

    from inboxwatch.cli.main import COMMANDS, cli

    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert isinstance(command, click.Command) and command.name == name
    assert cli.get_command(context, "nope") is None
