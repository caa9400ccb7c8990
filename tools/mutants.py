"""Mutants of a Python module, made from its syntax tree and written as one-place source edits.

`generate(path, root)` parses a module with `ast` and returns one `Mutant` per small change of
its source, in source order:

- arithmetic: `+` <-> `-`, `*` <-> `/`, `//` -> `*`, `**` -> `*`, `%` -> `//`, `&` <-> `|`, in
  expressions and augmented assignments; `a // b` -> `a // b + 1` (the padding `k // 2`);
- comparisons: `<` <-> `<=`, `>` <-> `>=`, `==` <-> `!=`, `in` <-> `not in`, `is` <-> `is not`;
- `and` <-> `or`; `not`, unary `-` and `~` removed; an `if`'s (or a conditional expression's)
  condition negated;
- constants: `0` <-> `1`, another number n -> n + 1, `True` <-> `False`;
- a slice bound b -> b + 1;
- adjacent positional arguments of a call swapped (where both are simple and differ), the two
  elements of a two-element list argument swapped;
- `sigmoid` <-> `tanh`;
- a returned value replaced: a returned pair swapped, anything else by None;
- a call made as a statement removed (`pass`).

Only code that computes results is mutated: docstrings, strings, f-strings, type annotations,
imports, `raise` and `assert` statements, the conditions of branches that only raise, and the
functions a target names as out of scope are left alone.

Each mutant is an edit of the source's bytes, so the rest of the file, its comments and its line
numbers stay as they are, and the diff of a mutant is the line it changes.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import itertools
import re
from pathlib import Path

BINARY = {
    ast.Add: [("+", "-")],
    ast.Sub: [("-", "+")],
    ast.Mult: [("*", "/")],
    ast.Div: [("/", "*")],
    ast.FloorDiv: [("//", "*")],
    ast.Pow: [("**", "*")],
    ast.Mod: [("%", "//")],
    ast.BitAnd: [("&", "|")],
    ast.BitOr: [("|", "&")],
}
"""Operator -> (its token, the token it becomes)."""

COMPARE = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
}

NEGATED_BY_FLIP = {ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot}
"""Comparisons whose flip is their negation."""

UNARY = {ast.Not: "not", ast.USub: "-", ast.Invert: "~"}

ACTIVATIONS = {"sigmoid": "tanh", "tanh": "sigmoid"}

SIMPLE = (ast.Name, ast.Attribute, ast.Subscript)
"""Argument expressions whose swap is a plausible slip: variables, not constants, calls or
comprehensions."""


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One change of one module: bytes `start:end` of the source become `text`."""

    path: str  # relative to the repository root, with "/"
    line: int  # 1-based line where the change starts
    operator: str  # what the change is, e.g. "binop + -> -"
    start: int  # byte offsets into the source
    end: int
    text: str
    function: str  # the enclosing function or class, or "<module>"

    @property
    def key(self) -> str:
        """A name unique within one generation: file, line, byte offset and operator."""
        return f"{self.path}:{self.line}:{self.start}:{self.operator}"

    def apply(self, source: str) -> str:
        """The mutated source."""
        data = source.encode()
        return (data[: self.start] + self.text.encode() + data[self.end :]).decode()

    def original_line(self, source: str) -> str:
        """The changed line (or lines) as it is, stripped."""
        return " ".join(part.strip() for part in _lines_touched(source, self.start, self.end))

    def mutated_line(self, source: str) -> str:
        """The changed line (or lines) once mutated, stripped."""
        mutated = self.apply(source)
        end = self.start + len(self.text.encode())
        return " ".join(part.strip() for part in _lines_touched(mutated, self.start, end))

    def diff(self, source: str) -> str:
        """A unified diff of the change, with one line of context."""
        lines = difflib.unified_diff(
            source.splitlines(keepends=True),
            self.apply(source).splitlines(keepends=True),
            f"a/{self.path}",
            f"b/{self.path}",
            n=1,
        )
        return "".join(lines)


def _lines_touched(source: str, start: int, end: int) -> list[str]:
    """The whole lines that bytes `start:end` of `source` touch."""
    data = source.encode()
    first = data.rfind(b"\n", 0, start) + 1
    last = data.find(b"\n", max(end, start))
    return data[first : last if last >= 0 else len(data)].decode().splitlines() or [""]


class _Source:
    """Byte offsets of a module's (line, column) positions (`ast` columns count UTF-8 bytes)."""

    def __init__(self, text: str):
        self.text = text
        self.data = text.encode()
        self.line_starts = [0]
        for index, byte in enumerate(self.data):
            if byte == ord("\n"):
                self.line_starts.append(index + 1)

    def offset(self, line: int, column: int) -> int:
        return self.line_starts[line - 1] + column

    def start(self, node: ast.AST) -> int:
        return self.offset(node.lineno, node.col_offset)

    def end(self, node: ast.AST) -> int:
        return self.offset(node.end_lineno, node.end_col_offset)

    def segment(self, start: int, end: int) -> str:
        return self.data[start:end].decode()


def _find_token(gap: str, token: str) -> int | None:
    """Where `token` (an operator or keyword) stands in `gap`, the text between two operands."""
    word = token[0].isalpha()
    pattern = r"\b" + r"\s+".join(map(re.escape, token.split())) + r"\b" if word else re.escape(token)
    code = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), gap)  # comments cannot hold it
    for match in re.finditer(pattern, code):
        before = code[match.start() - 1] if match.start() else " "
        after = code[match.end()] if match.end() < len(code) else " "
        if not word and (before in "*/<>=!" or after in "*/<>=!"):
            continue  # part of a longer operator
        return match.start()
    return None


def _is_docstring(node: ast.stmt, body: list[ast.stmt]) -> bool:
    return (
        node is body[0]
        and isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _is_number(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float))


def _only_raises(statements: list[ast.stmt]) -> bool:
    return bool(statements) and all(isinstance(s, ast.Raise) for s in statements)


class _Generator:
    def __init__(self, path: str, source: str, skip_functions: frozenset[str]):
        self.path = path
        self.source = _Source(source)
        self.skip_functions = skip_functions
        self.mutants: list[Mutant] = []
        self.scope = ["<module>"]

    # -- recording ---------------------------------------------------------------------------

    def add(self, node: ast.AST, operator: str, start: int, end: int, text: str) -> None:
        line = self.source.data.count(b"\n", 0, start) + 1 if start else getattr(node, "lineno", 1)
        self.mutants.append(Mutant(self.path, line, operator, start, end, text, self.scope[-1]))

    def replace_token(self, node: ast.AST, left: ast.AST, right: ast.AST, token: str, new: str, operator: str):
        gap_start, gap_end = self.source.end(left), self.source.start(right)
        where = _find_token(self.source.segment(gap_start, gap_end), token)
        if where is None:
            return
        start = gap_start + len(self.source.segment(gap_start, gap_end)[:where].encode())
        matched = re.match(r"\s+".join(map(re.escape, token.split())), self.source.segment(start, gap_end))
        self.add(node, operator, start, start + len(matched.group().encode()), new)

    def wrap(self, node: ast.AST, operator: str, template: str) -> None:
        start, end = self.source.start(node), self.source.end(node)
        self.add(node, operator, start, end, template.format(self.source.segment(start, end)))

    # -- traversal -----------------------------------------------------------------------------

    def body(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            if _is_docstring(statement, statements):
                continue
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Raise, ast.Assert, ast.Global, ast.Nonlocal)):
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name in self.skip_functions:
                return
            for decorator in node.decorator_list:
                self.expression(decorator)
            if not isinstance(node, ast.ClassDef):
                self.arguments(node.args)
            self.scope.append(node.name)
            self.body(node.body)
            self.scope.pop()
            return
        if isinstance(node, ast.If):
            if not _only_raises(node.body):
                self.negate(node.test)
                self.expression(node.test)
            self.body(node.body)
            self.body(node.orelse)
            return
        if isinstance(node, ast.Return):
            if node.value is not None:
                self.returned(node.value)
                self.expression(node.value)
            return
        if isinstance(node, ast.AnnAssign):  # the annotation is not code
            if node.value is not None:
                self.expression(node.value)
            return
        if isinstance(node, ast.AugAssign):
            token = BINARY.get(type(node.op))
            if token:
                for old, new in token:
                    self.replace_token(
                        node, node.target, node.value, old + "=", new + "=", f"augassign {old}= -> {new}="
                    )
            self.expression(node.value)
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            self.add(node, "call statement removed", self.source.start(node), self.source.end(node), "pass")
        for field, value in ast.iter_fields(node):
            if field in ("target", "targets"):
                continue  # what is assigned to
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                self.body(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.expr):
                        self.expression(item)
                    elif isinstance(item, ast.AST):
                        self.generic(item)
            elif isinstance(value, ast.expr):
                self.expression(value)
            elif isinstance(value, ast.AST):
                self.generic(value)

    def generic(self, node: ast.AST) -> None:
        for _, value in ast.iter_fields(node):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.stmt):
                    self.statement(item)
                elif isinstance(item, ast.expr):
                    self.expression(item)
                elif isinstance(item, ast.AST):
                    self.generic(item)

    def arguments(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.expression(default)

    def negate(self, test: ast.expr) -> None:
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return  # removing the `not` is the same mutant
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in NEGATED_BY_FLIP:
            return  # flipping the comparison is the same mutant
        self.wrap(test, "condition negated", "not ({})")

    def returned(self, value: ast.expr) -> None:
        if isinstance(value, ast.Tuple) and len(value.elts) == 2:
            self.swap(value, value.elts[0], value.elts[1], "returned pair swapped")
        elif not (isinstance(value, ast.Constant) and value.value is None):
            self.wrap(value, "returned value -> None", "None")

    def swap(self, node: ast.AST, first: ast.expr, second: ast.expr, operator: str) -> None:
        a_start, a_end = self.source.start(first), self.source.end(first)
        b_start, b_end = self.source.start(second), self.source.end(second)
        a, b = self.source.segment(a_start, a_end), self.source.segment(b_start, b_end)
        if a == b:
            return
        between = self.source.segment(a_end, b_start)
        self.add(node, operator, a_start, b_end, b + between + a)

    def expression(self, node: ast.expr) -> None:
        if isinstance(node, ast.JoinedStr):
            return
        if isinstance(node, ast.BinOp):
            for old, new in BINARY.get(type(node.op), []):
                self.replace_token(node, node.left, node.right, old, new, f"binop {old} -> {new}")
            if isinstance(node.op, ast.FloorDiv):
                self.wrap(node, "floordiv + 1", "({} + 1)")
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for index, op in enumerate(node.ops):
                old, new = COMPARE[type(op)]
                self.replace_token(node, operands[index], operands[index + 1], old, new, f"compare {old} -> {new}")
        elif isinstance(node, ast.BoolOp):
            old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            for left, right in itertools.pairwise(node.values):
                self.replace_token(node, left, right, old, new, f"boolop {old} -> {new}")
        elif isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
            token = UNARY[type(node.op)]
            start, operand = self.source.start(node), self.source.start(node.operand)
            gap = self.source.segment(start, operand)
            if gap.startswith(token):
                rest = gap[len(token) :].lstrip()
                self.add(node, f"unary {token} removed", start, operand, rest)
        elif isinstance(node, ast.Constant):
            self.constant(node)
            return
        elif isinstance(node, ast.IfExp):
            self.negate(node.test)
        elif isinstance(node, ast.Slice):
            for bound in (node.lower, node.upper):
                if bound is not None and not _is_number(bound):  # a number's shift is a constant mutant
                    self.wrap(bound, "slice bound + 1", "({} + 1)")
        elif isinstance(node, ast.Call):
            self.call(node)
        elif isinstance(node, ast.Attribute) and node.attr in ACTIVATIONS:
            end = self.source.end(node)
            self.add(
                node, f"{node.attr} -> {ACTIVATIONS[node.attr]}", end - len(node.attr), end, ACTIVATIONS[node.attr]
            )
        for _, value in ast.iter_fields(node):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.expr):
                    self.expression(item)
                elif isinstance(item, ast.comprehension):
                    self.expression(item.iter)
                    for condition in item.ifs:
                        self.expression(condition)
                elif isinstance(item, ast.keyword):
                    self.expression(item.value)
                elif isinstance(item, ast.arguments):
                    self.arguments(item)

    def constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            new = repr(not value)
        elif isinstance(value, int):
            new = {0: "1", 1: "0"}.get(value, repr(value + 1))
        elif isinstance(value, float):
            new = {0.0: "1.0", 1.0: "0.0"}.get(value, repr(value + 1))
        else:
            return  # strings, bytes, None, Ellipsis: names and messages
        self.add(node, f"constant {value!r} -> {new}", self.source.start(node), self.source.end(node), new)

    def call(self, node: ast.Call) -> None:
        positional = node.args
        if not any(isinstance(a, ast.Starred) for a in positional):
            for first, second in itertools.pairwise(positional):
                if isinstance(first, SIMPLE) and isinstance(second, SIMPLE):
                    self.swap(node, first, second, "arguments swapped")
        for argument in positional:
            if isinstance(argument, ast.List) and len(argument.elts) == 2:
                self.swap(argument, argument.elts[0], argument.elts[1], "list elements swapped")


def generate(path: Path, root: Path, skip_functions: frozenset[str] = frozenset()) -> list[Mutant]:
    """Every mutant of the module at `path` (inside `root`), in source order, duplicates dropped.

    `skip_functions` names functions and classes (at any depth) whose bodies are left alone.
    """
    source = path.read_text()
    generator = _Generator(path.relative_to(root).as_posix(), source, skip_functions)
    generator.body(ast.parse(source).body)
    seen, unique = set(), []
    for mutant in sorted(generator.mutants, key=lambda m: (m.start, m.end, m.operator)):
        mutated = mutant.apply(source)
        if mutated == source or mutated in seen:
            continue
        try:
            ast.parse(mutated)
        except SyntaxError:
            continue
        seen.add(mutated)
        unique.append(mutant)
    return unique
