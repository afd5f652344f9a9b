"""The package's import graph, read from the source (every import statement, including those inside
functions and under TYPE_CHECKING): no cycles, the shell on top, the secret types at the bottom."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "jenkins_registry"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
ENTRY_POINT = f"{PACKAGE}.__main__"  # `python -m jenkins_registry` runs the shell: allowed to import it


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules *name* imports. `from P import M` counts as importing P.M when that is a
    module; the parent packages Python imports on the way are not counted."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {target for target in found if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.keyring_store" in graph[f"{PACKAGE}.credentials"]  # top level
    assert f"{PACKAGE}.keyring_store" in graph[f"{PACKAGE}.cli.login"]  # inside a function
    assert f"{PACKAGE}.cli.main" in graph[ENTRY_POINT]


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_shell_imports_the_shell() -> None:
    shell = f"{PACKAGE}.cli"
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        if name != ENTRY_POINT and name != shell and not name.startswith(f"{shell}.")
        for target in targets
        if target == shell or target.startswith(f"{shell}.")
    )
    assert offenders == []


def test_the_secret_types_are_the_bottom_floor() -> None:
    graph = import_graph()
    assert graph[f"{PACKAGE}.secret_types"] <= {f"{PACKAGE}.errors"}
    assert graph[f"{PACKAGE}.errors"] == set()
    assert f"{PACKAGE}.credentials" not in graph[f"{PACKAGE}.keyring_store"]


# -- one definition per fact ----------------------------------------------------------------------


def definitions(names: set[str]) -> dict[str, list[str]]:
    """Where each function of *names* is defined (module-level or nested), across the package."""
    found: dict[str, list[str]] = {name: [] for name in names}
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names:
                found[node.name].append(module)
    return found


def test_registry_path_tag_host_port_and_loopback_are_defined_once() -> None:
    """The parsers of the reference grammar and the host/port/loopback rules live in reference.py
    only; a second definition anywhere (even a private copy) fails here."""
    defined_once = {"parse_registry", "parse_path", "parse_tag", "parse_reference", "split_host_port",
                    "is_loopback"}
    copies_seen_before = {"_port", "port_of", "parse_port", "_always_insecure"}  # must not come back
    found = definitions(defined_once | copies_seen_before)
    assert {name: places for name, places in found.items() if places} == {
        name: [f"{PACKAGE}.reference"] for name in defined_once
    }


def test_literal_facts_stand_in_one_module() -> None:
    """The engine's implicit insecure range, and `HOST:PORT/NAME` assembled from a registry and a
    repository, are written once (reference.py, push_target.py), then imported or called."""
    insecure_range: list[str] = []
    assembled: list[str] = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == "127.0.0.0/8":
                insecure_range.append(module)
            if isinstance(node, ast.JoinedStr):
                parts = [ast.unparse(v.value) if isinstance(v, ast.FormattedValue) else repr(v.value)
                         for v in node.values]
                for left, middle, right in zip(parts, parts[1:], parts[2:], strict=False):
                    if "registry" in left and middle == "'/'" and ("repository" in right or "path" in right):
                        assembled.append(module)
    assert insecure_range == [f"{PACKAGE}.reference"]
    assert sorted(set(assembled)) == [f"{PACKAGE}.push_target", f"{PACKAGE}.reference"]


def test_media_types_are_written_in_one_module() -> None:
    """Every `application/vnd.…` media type is spelled in media_types.py and imported elsewhere."""
    spelled = sorted({module for module, path in modules().items()
                      for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                      if isinstance(node, ast.Constant) and isinstance(node.value, str)
                      and node.value.startswith("application/vnd.")})
    assert spelled == [f"{PACKAGE}.media_types"]


def test_only_the_engine_facade_imports_docker() -> None:
    offenders = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name == "docker" or name.startswith("docker.") for name in names):
                offenders.append(module)
    assert sorted(set(offenders)) == [f"{PACKAGE}.docker_engine"]


def test_the_registry_client_layers_never_reach_the_engine() -> None:
    graph = import_graph()
    layers = [f"{PACKAGE}.{name}" for name in
              ("registry_auth", "registry_session", "registry_blobs", "registry_client", "http_transport")]
    for layer in layers:
        assert f"{PACKAGE}.docker_engine" not in graph[layer], layer


def test_no_class_is_past_400_lines() -> None:
    sizes = {
        f"{module}.{node.name}": node.end_lineno - node.lineno + 1
        for module, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and node.end_lineno is not None
    }
    assert {name: size for name, size in sizes.items() if size >= 400} == {}
