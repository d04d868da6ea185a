"""Nodes receive the static files without comments: prove the programs are unchanged.

Shell scripts are compared through bash's own parser: a script wrapped in a function and printed
back with ``declare -f`` comes out in bash's canonical form (comments gone, strings kept byte
for byte), so a removed line that was part of a multi-line string would show as a difference.
Python scripts must parse as Python 3.10 (the DLAMI's interpreter) into the same tree as the
source minus function docstrings.
"""

from __future__ import annotations

import ast
import subprocess

import pytest

from infra.planning.minify import python_tree, shipped
from infra.planning.userdata import USERDATA_DIR, static_file

FILES = sorted(p.name for p in USERDATA_DIR.iterdir() if p.is_file())
PYTHON = [n for n in FILES if static_file(n).startswith("#!") and "python" in static_file(n).split("\n")[0]]
BASH = [n for n in FILES if static_file(n).startswith("#!/usr/bin/env bash") or n.endswith(".sh")]
OTHER = [n for n in FILES if n not in PYTHON and n not in BASH]


def bash_canonical(text: str) -> str:
    """bash's canonical print of ``text`` as the body of a function."""
    wrapped = "__sglang_body() {\n" + text + "\n}\ndeclare -f __sglang_body\n"
    proc = subprocess.run(["bash", "-n"], input=wrapped, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run(["bash"], input=wrapped, capture_output=True, text=True, check=True, timeout=30)
    return out.stdout


def test_every_file_is_classified() -> None:
    assert PYTHON and BASH and OTHER
    assert "sglang-nccl-transport" in PYTHON and "sglang-lib.sh" in BASH
    assert any(n.endswith(".service") for n in OTHER)


@pytest.mark.parametrize("name", BASH)
def test_shell_script_is_the_same_program(name: str) -> None:
    src = static_file(name)
    out = shipped(src)
    assert len(out) < len(src) or "#" not in src.split("\n", 1)[1]
    assert out.split("\n", 1)[0] == src.split("\n", 1)[0]  # shebang kept
    assert bash_canonical(out) == bash_canonical(src)


def test_bash_comparison_catches_a_changed_string() -> None:
    """The check is not vacuous: a comment-looking line inside a multi-line string matters."""
    src = "#!/usr/bin/env bash\nmsg='first\n# inside the string\nlast'\necho \"$msg\"\n"
    assert bash_canonical(shipped(src)) != bash_canonical(src)


@pytest.mark.parametrize("name", PYTHON)
def test_python_script_is_the_same_program(name: str) -> None:
    src = static_file(name)
    out = shipped(src)
    assert out.startswith("#!") and len(out) < len(src)
    got = ast.parse(out, feature_version=(3, 10))
    assert ast.dump(got) == ast.dump(python_tree(src))
    assert ast.get_docstring(got) == ast.get_docstring(ast.parse(src))  # usage text kept


@pytest.mark.parametrize("name", OTHER)
def test_units_and_configs_lose_only_comment_lines(name: str) -> None:
    src = static_file(name)
    out = shipped(src)
    kept = [line for line in src.split("\n") if line.strip() and not line.lstrip().startswith("#")]
    assert [line for line in out.split("\n") if line.strip()] == kept


@pytest.mark.parametrize("name", PYTHON)
def test_python_lines_are_source_lines(name: str) -> None:
    """Every shipped line is a source line, or one without its trailing comment: nothing is
    re-printed by the deployer's Python (``ast.unparse`` on 3.12+ reuses the outer quote inside
    f-strings, a SyntaxError on the node's 3.10)."""
    src_lines = static_file(name).split("\n")
    out_lines = shipped(static_file(name)).rstrip("\n").split("\n")
    i = 0
    for line in out_lines:
        while i < len(src_lines) and not (
            src_lines[i] == line or (src_lines[i].startswith(line) and "#" in src_lines[i][len(line) :])
        ):
            i += 1
        assert i < len(src_lines), f"{name}: shipped line not in the source, in order: {line!r}"
        i += 1


def test_python_keeps_quotes_strings_and_needed_docstrings() -> None:
    src = (
        "#!/usr/bin/env python3\n"
        '"""Usage text."""\n'
        "d = {'k': 1}  # a comment\n"
        "# a comment line\n"
        "print(f\"{d['k']} # not a comment\")\n"
        "TEXT = '''first\n"
        "# inside the string\n"
        "\n"
        "last'''\n"
        "def only_doc():\n"
        '    """Only a docstring: it stays, or the body would be empty."""\n'
        "def one_line(): 'same line as def'; return 1\n"
        "def f():\n"
        '    """Gone.\n'
        "\n"
        '    Really."""\n'
        "    return 2\n"
    )
    out = shipped(src)
    assert out == (
        "#!/usr/bin/env python3\n"
        '"""Usage text."""\n'
        "d = {'k': 1}\n"
        "print(f\"{d['k']} # not a comment\")\n"
        "TEXT = '''first\n"
        "# inside the string\n"
        "\n"
        "last'''\n"
        "def only_doc():\n"
        '    """Only a docstring: it stays, or the body would be empty."""\n'
        "def one_line(): 'same line as def'; return 1\n"
        "def f():\n"
        "    return 2\n"
    )
    assert ast.dump(ast.parse(out)) == ast.dump(python_tree(src))
