"""What a node receives of a static ``userdata/`` file: the same program without its comments.

EC2 caps user data at 16384 bytes (gzipped here), and the node scripts carry long comments that
explain their cloud rules. The repository keeps the commented sources; nodes get:

- shell scripts, systemd units, drop-ins and logrotate files: every line whose first non-blank
  character is ``#`` removed (the shebang kept). systemd and logrotate treat such lines as
  comments (``systemd.syntax(7)``, ``logrotate(8)``); for bash they are comments unless they sit
  inside a multi-line string, which ``tests/unit/test_minify.py`` rules out with bash's own
  parser (``declare -f`` of the script wrapped in a function prints the same body before and
  after).
- Python scripts: comment lines, trailing comments and the lines of function/class docstrings
  removed; every other line is kept byte for byte, and the module docstring too (scripts print
  it as their usage). Never ``ast.unparse``: its output depends on the deployer's Python (3.12
  and later reuse the outer quote inside f-strings, PEP 701, which is a SyntaxError on the
  node's Python 3.10), so a 3.12 deployer would ship programs that do not start. Comments are
  found by :mod:`tokenize` and docstrings and multi-line strings by :mod:`ast` positions, which
  are the same on every Python from 3.10. The test checks that each shipped line is a source
  line (or its prefix) and that the result parses into the same tree.

Pure code.
"""

from __future__ import annotations

import ast
import io
import tokenize


def _is_python(text: str) -> bool:
    first = text.split("\n", 1)[0]
    return first.startswith("#!") and "python" in first


def _docstrings(
    tree: ast.Module, lines: list[str]
) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, ast.Expr]]:
    """Function/class docstrings that can go: followed by more of the body, and alone on
    their lines (``def f(): "doc"`` keeps its docstring)."""
    out: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, ast.Expr]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and len(node.body) > 1:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
                and first.end_lineno is not None
                and first.end_col_offset is not None
                # ast columns count UTF-8 bytes
                and not lines[first.lineno - 1].encode()[: first.col_offset].strip()
                and not lines[first.end_lineno - 1].encode()[first.end_col_offset :].strip()
                and node.body[1].lineno > first.end_lineno
            ):
                out.append((node, first))
    return out


def _strip_docstrings(tree: ast.Module, lines: list[str]) -> ast.Module:
    """Drop the function and class docstrings that :func:`shipped` drops."""
    for node, _ in _docstrings(tree, lines):
        node.body = node.body[1:]
    return tree


def python_tree(text: str) -> ast.Module:
    """The syntax tree a node's interpreter runs: ``text`` without function/class docstrings."""
    return _strip_docstrings(ast.parse(text), text.split("\n"))


def _string_inner_lines(tree: ast.Module) -> set[int]:
    """Lines after the first of every multi-line string: their text is data, kept as is."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant | ast.JoinedStr) and node.end_lineno is not None:
            out.update(range(node.lineno + 1, node.end_lineno + 1))
    return out


def _strip_python(text: str) -> str:
    """``text`` without comments and function/class docstrings, other lines unchanged."""
    tree = ast.parse(text)
    lines = text.split("\n")
    drop = {n for _, d in _docstrings(tree, lines) for n in range(d.lineno, (d.end_lineno or d.lineno) + 1)}
    keep_whole = _string_inner_lines(tree) - drop
    cut: dict[int, int] = {}  # line -> column where its comment starts
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            cut[tok.start[0]] = tok.start[1]
    out = [lines[0]]  # the shebang
    for n, line in enumerate(lines[1:], start=2):
        if n in drop:
            continue
        if n in keep_whole:
            out.append(line)
            continue
        line = line[: cut[n]].rstrip() if n in cut else line.rstrip()
        if line:
            out.append(line)
    return "\n".join(out) + "\n"


def shipped(text: str) -> str:
    """The node's copy of a static file.

    Args:
        text: the file as kept in ``userdata/``.

    Returns:
        The text without comment lines (shell, units, logrotate) or without comments and
        function docstrings (Python, shebang kept). The same on every Python from 3.10.
    """
    lines = text.split("\n")
    if _is_python(text):
        return _strip_python(text)
    keep = [lines[0]] if lines[0].startswith("#!") else []
    start = 1 if keep else 0
    keep += [line for line in lines[start:] if not line.lstrip().startswith("#")]
    return "\n".join(keep).rstrip("\n") + "\n"
