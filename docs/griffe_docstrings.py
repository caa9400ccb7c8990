"""A griffe extension for the API reference: docstrings as `help()` shows them, read as Google style.

- A docstring with a line that is only a `{name}` placeholder is completed when its module is
  imported (a decorator writes the options' "Args" there): such objects take their docstring from
  the imported object; every other docstring is read from the source, without importing anything.
- Napoleon's Google style accepts an "Example:" heading as well as "Examples:"; griffe reads only
  the latter as examples (code to show as such), so "Example:" headings are read as "Examples:".
- An option declared with `option(default, doc=...)` (`convlstm_common.options`) shows its default
  as its value, and in the signatures of the dataclasses that inherit it, not the whole call; a
  required option shows none.
- An "Args" entry may document several parameters at once (`inputs, targets: ...`, the names
  possibly running over several lines); griffe expects one name per entry, so such an entry is
  read as one entry per name, each with the shared description.
"""

import inspect
import re

import griffe

PLACEHOLDER = re.compile(r"^\s*\{\w+\}\s*$", re.MULTILINE)
EXAMPLE_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
ARGS_HEADING = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params):\s*$")
NAMES = re.compile(r"^[\w*]+(\s*,\s*[\w*]+)+$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_shared_entries(text: str) -> str:
    """Rewrites "a, b: description" entries of "Args" sections as one entry per name."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        heading = ARGS_HEADING.match(lines[i])
        out.append(lines[i])
        i += 1
        if not heading:
            continue
        entry_indent = None
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(heading.group(1))):
            line = lines[i]
            if entry_indent is None and line.strip():
                entry_indent = _indent(line)
            if not line.strip() or _indent(line) != entry_indent:
                out.append(line)
                i += 1
                continue
            # An entry: its names may run over lines that end with a comma.
            head, j = line.strip(), i + 1
            while ":" not in head and head.endswith(",") and j < len(lines) and _indent(lines[j]) > entry_indent:
                head, j = f"{head} {lines[j].strip()}", j + 1
            names, sep, description = head.partition(":")
            body = []
            while j < len(lines) and lines[j].strip() and _indent(lines[j]) > entry_indent:
                body.append(lines[j])
                j += 1
            if sep and NAMES.match(names.strip()):
                for name in (n.strip() for n in names.split(",")):
                    out.append(f"{' ' * entry_indent}{name}:{description}")
                    out.extend(body)
            else:
                out.append(line)
                out.extend(lines[i + 1 : j])
            i = j
    return "\n".join(out)


class GoogleDocstrings(griffe.Extension):
    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs) -> None:
        value = attr.value
        if isinstance(value, griffe.ExprCall) and str(value.function) == "option":
            positional = [a for a in value.arguments if not isinstance(a, griffe.ExprKeyword)]
            attr.value = positional[0] if positional else None

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None:
            return
        value = obj.docstring.value
        if PLACEHOLDER.search(value):
            runtime = griffe.dynamic_import(obj.path)
            value = inspect.cleandoc(runtime.__doc__ or "")
        obj.docstring.value = split_shared_entries(EXAMPLE_HEADING.sub(r"\1Examples:", value))
