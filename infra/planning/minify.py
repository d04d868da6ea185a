"""What a node receives of a static ``userdata/`` file: the same program without its comments.

EC2 caps user data at 16384 bytes (gzipped here), and the node scripts carry long comments that
explain their cloud rules. The repository keeps the commented sources; nodes get:

- shell scripts, systemd units, drop-ins and logrotate files: every line whose first non-blank
  character is ``#`` removed (the shebang kept). systemd and logrotate treat such lines as
  comments (``systemd.syntax(7)``, ``logrotate(8)``); for bash they are comments unless they sit
  inside a multi-line string, which ``tests/unit/test_minify.py`` rules out with bash's own
  parser (``declare -f`` of the script wrapped in a function prints the same body before and
  after).
- Python scripts: comments and function/class docstrings removed by an ``ast`` round trip
  (``ast.unparse``); the module docstring is kept (scripts print it as their usage). The test
  checks that the result parses as Python 3.10 (the DLAMI's Ubuntu 22.04 interpreter) into the
  same tree.

Pure code.
"""

from __future__ import annotations

import ast


def _is_python(text: str) -> bool:
    first = text.split("\n", 1)[0]
    return first.startswith("#!") and "python" in first


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    """Drop the docstring of every function and class (not the module's)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


def python_tree(text: str) -> ast.Module:
    """The syntax tree a node's interpreter runs: ``text`` without function/class docstrings."""
    return _strip_docstrings(ast.parse(text))


def shipped(text: str) -> str:
    """The node's copy of a static file.

    Args:
        text: the file as kept in ``userdata/``.

    Returns:
        The text without comment lines (shell, units, logrotate) or without comments and
        function docstrings (Python, shebang kept).
    """
    lines = text.split("\n")
    if _is_python(text):
        return lines[0] + "\n" + ast.unparse(python_tree(text)) + "\n"
    keep = [lines[0]] if lines[0].startswith("#!") else []
    start = 1 if keep else 0
    keep += [line for line in lines[start:] if not line.lstrip().startswith("#")]
    return "\n".join(keep).rstrip("\n") + "\n"
