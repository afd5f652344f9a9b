"""Every --help of `jr` (each command, subcommand and group) and of `jr-push` ends with EXAMPLES and
the exit codes; every example parses with the parser it belongs to (and the `jr render` ones
render), so an example cannot outlive an option. `jr help environment` lists every environment
variable the package reads, checked against the source."""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from jenkins_registry.cli import help_cmd, help_text, main, push
from jenkins_registry.cli.common import run_command
from jenkins_registry.errors import ExitCode

PACKAGE = Path(__file__).resolve().parent.parent / "jenkins_registry"
Capture = pytest.CaptureFixture[str]


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:  # type: ignore[type-arg]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def jr_parser() -> argparse.ArgumentParser:
    """`jr`'s parser, with `jr help` added as cli/main.py will once it lists help_cmd (whether it
    does is test_jr_lists_the_help_command's business)."""
    parser = main.build_parser()
    commands = _subcommands(parser)
    assert commands is not None
    if "help" not in commands.choices:
        help_cmd.register(commands)
    return parser


def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    commands = _subcommands(parser)
    if commands is None:
        return
    seen: set[int] = set()
    for name, sub in commands.choices.items():
        if id(sub) not in seen:  # an alias maps to a parser already walked
            seen.add(id(sub))
            yield from walk(sub, f"{path} {name}")


def all_parsers() -> dict[str, argparse.ArgumentParser]:
    return {**dict(walk(jr_parser(), "jr")), **dict(walk(push.build_parser(), "jr-push"))}


PATHS = sorted(all_parsers())


def example_argv(command: str) -> tuple[str, list[str]]:
    """The program and arguments of the jr / jr-push run by a shell line: after the last pipe,
    `sudo` and variable assignments; `"$(command -v jr)"` is jr."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    words = list(lexer)
    if "|" in words:
        words = words[len(words) - words[::-1].index("|"):]
    while words and (words[0] == "sudo" or re.fullmatch(r"[A-Za-z_]\w*=.*", words[0])):
        words = words[1:]
    assert words, command
    program = {"$(command -v jr)": "jr"}.get(words[0], words[0])
    return program, words[1:]


def sections(text: str) -> tuple[list[str], list[str]]:
    """The lines of the last `examples:` section and of the `exit codes:` section after it, which
    must end the help."""
    lines = text.rstrip("\n").split("\n")
    assert "examples:" in lines, "no examples: section"
    start = len(lines) - 1 - lines[::-1].index("examples:")
    rest = lines[start + 1:]
    assert "" in rest, "the examples are not followed by the exit codes"
    blank = rest.index("")
    examples, tail = rest[:blank], rest[blank + 1:]
    assert tail and tail[0] == "exit codes:", "the help does not end with the exit codes"
    assert all(line.startswith("  ") for line in tail[1:]), "something follows the exit codes"
    return examples, tail[1:]


@pytest.mark.parametrize("path", PATHS)
def test_every_help_ends_with_examples_that_parse_and_the_exit_codes(path: str, capsys: Capture) -> None:
    parser = all_parsers()[path]
    examples, codes = sections(parser.format_help())
    commands = [line.strip() for line in examples if not line.strip().startswith("#")]
    assert commands, "no example"
    listed = [int(line.split()[0]) for line in codes]
    assert {0, 2} <= set(listed) and set(listed) <= {int(code) for code in ExitCode}, listed
    for command in commands:
        assert_parses(path, command, parser, capsys)


def assert_parses(path: str, command: str, parser: argparse.ArgumentParser, capsys: Capture) -> None:
    words = path.split()
    program, argv = example_argv(command)
    assert [program, *argv[:len(words) - 1]] == words, f"{command!r} is not an example of {path}"
    try:
        parser.parse_args(argv[len(words) - 1:])
    except SystemExit:
        pytest.fail(f"{command!r} does not parse: {capsys.readouterr().err.strip()}")


@pytest.mark.parametrize("path", sorted(set(help_text.HELP) & set(PATHS)))
def test_every_example_in_the_table_parses(path: str, capsys: Capture) -> None:
    """help_text's examples parse, also for a parser not wired to show them yet."""
    for example in help_text.examples(path):
        assert_parses(path, example.command, all_parsers()[path], capsys)


@pytest.mark.parametrize("path", sorted(help_text.HELP))
def test_every_help_entry_is_a_command(path: str) -> None:
    """No examples kept for a command that is gone (or not wired yet)."""
    assert path in all_parsers()


@pytest.mark.parametrize("path", sorted(p for p in help_text.HELP if p.startswith(("jr render ", "jr help"))))
def test_local_examples_run(path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: Capture) -> None:
    """The examples that need no server run, in an empty directory, and succeed."""
    monkeypatch.chdir(tmp_path)
    for example in help_text.examples(path):
        program, argv = example_argv(example.command)
        env = dict(re.findall(r"(?:^| )([A-Z_]+)=(\S+) ", example.command))
        code = run_command(program, jr_parser(), argv, env)
        assert code == 0, (example.command, capsys.readouterr().err)


def test_every_exit_code_has_a_meaning() -> None:
    assert set(help_text.EXIT_CODE_MEANINGS) == set(ExitCode)
    assert all(meaning and "\n" not in meaning for meaning in help_text.EXIT_CODE_MEANINGS.values())


def test_a_group_shows_the_codes_and_examples_of_its_commands() -> None:
    codes = help_text.exit_codes("jr jenkins")
    assert ExitCode.CONFLICT in codes and ExitCode.CHECK_FAILED in codes
    assert set(help_text.exit_codes("jr")) == set(ExitCode)  # every code, some command returns it
    assert ExitCode.MISSING_PACKAGE in help_text.exit_codes("jr render job")
    assert ExitCode.MISSING_PACKAGE not in help_text.exit_codes("jr docker insecure-registry add")
    assert help_text.examples("jr render")[0] == help_text.examples("jr render jenkinsfile")[0]
    text = help_text.epilog("jr docker insecure-registry add", "as root:\n  note\n")
    assert text.startswith("as root:\n  note\n\nexamples:\n")
    assert "  5    not allowed to write daemon.json" in text  # the command's own wording


def test_the_formatter_wraps_descriptions_and_keeps_epilogs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    parser = argparse.ArgumentParser(prog="x", description="word " * 60,
                                     epilog=help_text.epilog("jr logout", "notes:\n  kept " + "as is " * 20),
                                     formatter_class=help_text.HelpFormatter)
    text = parser.format_help()
    description = text.split("\n\n")[1]
    assert len(description.splitlines()) > 1 and all(len(line) <= 80 for line in description.splitlines())
    assert "  kept " + "as is " * 19 + "as is" in text  # one line, not wrapped
    assert text.endswith(help_text.exit_codes_epilog(help_text.exit_codes("jr logout")))


def test_jr_lists_the_help_command() -> None:
    """cli/main.py must list help_cmd in COMMAND_MODULES for `jr help` to exist."""
    assert "help_cmd" in main.COMMAND_MODULES


# ---------------------------------------------------------------------------------------------
# jr help


def run_help(argv: list[str], capsys: Capture) -> tuple[int, str, str]:
    code = run_command("jr", jr_parser(), argv, {})
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_jr_help_lists_the_topics(capsys: Capture) -> None:
    code, out, _ = run_help(["help"], capsys)
    assert code == 0
    for topic in help_cmd.TOPICS:
        assert re.search(rf"^  {re.escape(topic)} ", out, re.M)


def test_jr_help_environment_lists_every_variable(capsys: Capture) -> None:
    code, out, _ = run_help(["help", "environment"], capsys)
    assert code == 0
    listed = re.findall(r"^([A-Z][A-Z0-9_]+)$", out, re.M)
    assert listed == [variable.name for variable in help_text.ENVIRONMENT]
    assert "JR_REGISTRY" in listed and "GIT_COMMIT" in listed
    assert out.count("read by: ") == len(listed)


def test_jr_help_exit_codes_and_an_unknown_topic(capsys: Capture) -> None:
    code, out, _ = run_help(["help", "exit-codes"], capsys)
    assert code == 0
    assert [int(n) for n in re.findall(r"^  (\d+) ", out, re.M)] == sorted(int(c) for c in ExitCode)
    code, out, err = run_help(["help", "nope"], capsys)
    assert (code, out) == (ExitCode.USAGE, "")
    assert "No help topic 'nope'" in err and "environment" in err


# ---------------------------------------------------------------------------------------------
# The environment list cannot drift from the source


_VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")


def _module_constants(tree: ast.Module) -> dict[str, tuple[str, ...]]:
    """Module-level names bound to a string or a tuple of strings."""
    constants: dict[str, tuple[str, ...]] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        values: tuple[str, ...] | None = None
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            values = (node.value.value,)
        elif isinstance(node.value, ast.Tuple) and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts):
            values = tuple(e.value for e in node.value.elts)  # type: ignore[attr-defined]
        for target in node.targets:
            if values is not None and isinstance(target, ast.Name):
                constants[target.id] = values
    return constants


def _is_environ(node: ast.expr) -> bool:
    return "environ" in ast.unparse(node)


def _environ_keys(node: ast.AST) -> list[ast.expr]:
    """The key expressions *node* reads from an environment, if it does."""
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return [node.slice]
    if not isinstance(node, ast.Call) or not node.args:
        return []
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value):
        return [node.args[0]]
    if ast.unparse(func) in ("os.getenv", "getenv"):
        return [node.args[0]]
    if any(_is_environ(arg) for arg in node.args):  # a helper handed the environment and a name
        return [arg for arg in node.args if isinstance(arg, ast.Constant)]
    return []


def variables_read() -> dict[str, str]:
    """Every environment variable the package names, with where: a literal or a module constant
    given to `….environ.get(…)` / `environ[…]` / `os.getenv(…)` or to a helper along with the
    environment, a loop over a tuple of names read that way, a `*_ENV` constant, and any `JR_*`
    string (the tool's own namespace, e.g. handed to a helper that reads it). help_text.py, the
    list itself, is not scanned."""
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in PACKAGE.rglob("*.py")
             if path.name != "help_text.py"}
    constants: dict[str, tuple[str, ...]] = {}
    for tree in trees.values():
        constants.update(_module_constants(tree))

    found: dict[str, str] = {}
    for path, tree in trees.items():
        where = str(path.relative_to(PACKAGE.parent))
        loops: dict[str, tuple[str, ...]] = {}  # loop variable → the constant tuple it runs over
        for node in ast.walk(tree):
            if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name) \
                    and isinstance(node.iter, ast.Name) and node.iter.id in constants:
                loops[node.target.id] = constants[node.iter.id]
        for name, values in _module_constants(tree).items():
            if name.endswith("_ENV") and len(values) == 1 and _VARIABLE.fullmatch(values[0]):
                found.setdefault(values[0], where)
        for node in ast.walk(tree):
            names: list[str] = []
            for key in _environ_keys(node):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    names.append(key.value)
                elif isinstance(key, ast.Name):
                    names += constants.get(key.id, ()) if len(constants.get(key.id, ())) == 1 \
                        else loops.get(key.id, ())
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"JR_[A-Z0-9_]+", node.value):
                names.append(node.value)
            for name in names:
                if _VARIABLE.fullmatch(name):
                    found.setdefault(name, f"{where}:{getattr(node, 'lineno', '?')}")
    return found


def test_every_variable_the_package_reads_is_listed() -> None:
    found = variables_read()
    assert {"JR_REGISTRY", "JR_TIMEOUT", "DOCKER_HOST", "JENKINS_API_TOKEN", "NEXUS_USERNAME",
            "REQUESTS_CA_BUNDLE", "CI"} <= set(found), found  # the scan itself works
    listed = {variable.name for variable in help_text.ENVIRONMENT}
    missing = {name: where for name, where in found.items() if name not in listed}
    assert not missing, f"read but not in help_text.ENVIRONMENT: {missing}"


def test_the_scan_sees_each_way_of_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable read in any of the ways the scan knows is found (so the test above can fail)."""
    package = tmp_path / "jenkins_registry"
    package.mkdir()
    (package / "m.py").write_text(
        "import os\nA_ENV = 'X_ONE'\nNAME = 'X_TWO'\nMANY = ('X_SEVEN', 'X_EIGHT')\n"
        "def f(args, environ):\n"
        "    return (args.environ.get(NAME), os.environ['X_THREE'], os.getenv('X_FOUR'),\n"
        "            environ.get('X_FIVE'), seconds('JR_SIX'), helper(environ, 'X_NINE'),\n"
        "            [environ[name] for name in MANY], environ.get(args.dynamic), 'NOT_READ')\n")
    monkeypatch.setattr(importlib.import_module(__name__), "PACKAGE", package)
    assert set(variables_read()) == {"X_ONE", "X_TWO", "X_THREE", "X_FOUR", "X_FIVE", "JR_SIX",
                                     "X_SEVEN", "X_EIGHT", "X_NINE"}
