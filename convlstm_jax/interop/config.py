"""A ConvLSTM's configuration as JSON: the one format `convlstm-parity` and `convlstm-convert` read and write.

A configuration file holds a JSON object in one of two forms; both commands read both:

- keywords: `convlstm_torch.ConvLSTM` keywords, plus "bidirectional": {"merge": "concat" or "sum"}
  for a Bidirectional's weights, such as {"padding": "valid", "stride": [[2, 2], [1, 1]]}.
- written: what `convlstm-convert` writes beside its output (`config_path`), {"kind": "ConvLSTM",
  "Bidirectional" or "FramePredictor", "options": {...}, "merge": a Bidirectional's, "source":
  the file it was converted from, "format": that file's format}. "options" holds every constructor
  keyword of the Linen model (of a Bidirectional's layer), the Linen-only ones included.

Sizes (kernel_size, input_kernel_size, stride, dilation) are an int (every axis, every layer), a
list of one size per axis ([5, 3]: a (5, 3) kernel for every layer), or a list per layer of those
([[5, 5], [3, 3]]: 5x5 then 3x3), which is how they are written. A list of ints whose length is both
the number of layers and of axes could be either, and is refused (`fit_sizes`) unless its entries
are equal.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KINDS = ("ConvLSTM", "Bidirectional", "FramePredictor")
"""The models a written configuration describes."""

KEYS = ("kind", "options", "merge", "source", "format")
"""The keys of the written form."""

SIZES = ("kernel_size", "input_kernel_size", "stride", "dilation")
"""The options with one size per spatial axis, per layer."""

_FLAGS = ("batch_first", "bias", "return_all_layers", "check_finite", "reverse", "keep_order")
_DTYPES = ("dtype", "param_dtype")
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


@dataclasses.dataclass
class ModelConfig:
    """A configuration read from a file: its kind, constructor keywords (decoded) and a Bidirectional's merge.

    Attributes:
      kind: "ConvLSTM", "Bidirectional" or "FramePredictor"; None where the file does not say (keywords
        without "bidirectional").
      options: constructor keywords; sizes per layer as lists with a tuple per axis inside, dtypes and
        precisions decoded.
      merge: a Bidirectional's merge, else None.
      label: how messages name the file.
    """

    kind: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    merge: str | None = None
    label: str = ""

    def over(self, other: ModelConfig) -> ModelConfig:
        """`other` over `self`, key by key."""
        kind = other.kind or self.kind
        merge = other.merge if other.kind else self.merge
        return ModelConfig(kind, self.options | other.options, merge if kind == "Bidirectional" else None, other.label)

    def reference_keywords(self) -> dict[str, Any]:
        """The `convlstm_torch.ConvLSTM` keywords among the options, with "bidirectional": {"merge": ...}
        for a Bidirectional (whose layer's reverse and keep_order, false, are left out), as
        `convlstm_jax.interop.checkpoints.checkpoint_options` takes them.

        Raises:
          ValueError: the configuration is a FramePredictor's.
        """
        if self.kind == "FramePredictor":
            raise ValueError(
                f"{self.label} describes a FramePredictor; its stacks' weights take a ConvLSTM's configuration."
            )
        names = reference_names()
        keywords = {key: value for key, value in self.options.items() if key in names}
        if self.kind == "Bidirectional":
            if not keywords.get("reverse"):
                keywords = {key: value for key, value in keywords.items() if key not in ("reverse", "keep_order")}
            keywords["bidirectional"] = {"merge": self.merge or "concat"}
        return keywords


def config_path(path: Path, fmt: str) -> Path:
    """Where the configuration beside a model file is: the whole file name with .json added, or
    DIR/config.json for an orbax directory.

    >>> str(config_path(Path("out/model.msgpack"), "msgpack")), str(config_path(Path("ckpt"), "orbax"))
    ('out/model.msgpack.json', 'ckpt/config.json')
    """
    if fmt == "orbax":
        return path / "config.json"
    return path.with_name(path.name + ".json")


def reference_names() -> tuple[str, ...]:
    """The keywords of the reference's stack, `convlstm_torch.ConvLSTM` (declared in `convlstm_common`)."""
    from convlstm_common.options import StackOptions, declared

    return tuple(f.name for f in declared(StackOptions))


def option_names(kind: str) -> tuple[str, ...]:
    """The constructor keywords of a written configuration's Linen model of `kind`."""
    import convlstm_jax
    from convlstm_common.options import declared

    if kind == "FramePredictor":
        fields = dataclasses.fields(convlstm_jax.FramePredictor)
        return tuple(f.name for f in fields if f.name not in ("parent", "name"))
    return tuple(f.name for f in declared(convlstm_jax.ConvLSTM))


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _load(path: Path, label: str) -> Any:
    try:
        return json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise ValueError(f"{label}: no such file.") from None
    except OSError as error:
        raise ValueError(f"{label} cannot be read: {error.strerror}.") from None
    except ValueError as error:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{label} is not JSON ({error}).") from None


def is_written(raw: Any) -> bool:
    """Whether a JSON value is a configuration in the written form (an object with "kind")."""
    return isinstance(raw, dict) and "kind" in raw


def read_config(path: Path, label: str | None = None) -> ModelConfig:
    """Reads a configuration file of either form (see the module's docstring).

    Args:
      path: the JSON file.
      label: how messages name it (default: "--config PATH").

    Raises:
      ValueError: the file is missing, not JSON or not an object, has an unknown key or option,
        kind or merge.
      TypeError: a flag is not true or false, "bidirectional" is not an object with "merge" only,
        or "options" is not an object.
    """
    label = label or f"--config {path}"
    return parse_config(_load(path, label), label)


def parse_config(raw: Any, label: str) -> ModelConfig:
    """A configuration from its JSON value (`read_config`); `label` names it in messages."""
    if not isinstance(raw, dict):
        raise ValueError(f'{label} must hold a JSON object such as {{"stride": 2}}, got a JSON {_json_type(raw)}.')
    if is_written(raw):
        return _parse_written(raw, label)
    return _parse_keywords(raw, label)


def _parse_keywords(raw: dict[str, Any], label: str) -> ModelConfig:
    from convlstm_jax import MERGES

    keywords = reference_names()
    unknown = sorted(raw.keys() - {*keywords, "bidirectional"})
    if unknown:
        raise ValueError(
            f"{label}: unknown key(s) {', '.join(map(repr, unknown))}; the keys are convlstm_torch.ConvLSTM's "
            f"keywords ({', '.join(keywords)}) and 'bidirectional', or those convlstm-convert writes "
            f"({', '.join(KEYS)})."
        )
    _check_flags(raw, label)
    options = dict(raw)
    merge = None
    if "bidirectional" in options:
        value = options.pop("bidirectional")
        if not isinstance(value, dict) or value.keys() - {"merge"}:
            raise TypeError(
                f'{label}: bidirectional must be an object {{"merge": "concat" or "sum"}} ({{}}: "concat"), '
                f"got {json.dumps(value)}."
            )
        merge = value.get("merge", "concat")
        if merge not in MERGES:
            raise ValueError(f"{label}: bidirectional merge must be one of {MERGES}, got {json.dumps(merge)}.")
    options = _decode_options("ConvLSTM", options, label)
    return ModelConfig("Bidirectional" if merge else None, options, merge, label)


def _parse_written(raw: dict[str, Any], label: str) -> ModelConfig:
    from convlstm_jax import MERGES

    unknown = sorted(raw.keys() - set(KEYS))
    if unknown:
        raise ValueError(
            f"{label}: unknown key(s) {', '.join(map(repr, unknown))}; the keys are kind, options, merge, source "
            "and format."
        )
    kind = raw["kind"]
    if kind not in KINDS:
        raise ValueError(f"{label}: kind must be one of {KINDS}, got {json.dumps(kind)}.")
    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise TypeError(f"{label}: options must be a JSON object of constructor keywords, got {json.dumps(options)}.")
    names = option_names(kind)
    unknown = sorted(options.keys() - set(names))
    if unknown:
        raise ValueError(
            f"{label}: unknown option(s) {', '.join(map(repr, unknown))} of a {kind}; its options are "
            f"{', '.join(names)}."
        )
    if kind != "FramePredictor":
        _check_flags(options, label)
    merge = raw.get("merge")
    if kind == "Bidirectional":
        merge = "concat" if merge is None else merge
        if merge not in MERGES:
            raise ValueError(f"{label}: merge must be one of {MERGES}, got {json.dumps(merge)}.")
    elif merge is not None:
        raise ValueError(f"{label}: merge is a Bidirectional's; kind is {kind}.")
    return ModelConfig(kind, _decode_options(kind, options, label), merge, label)


def _check_flags(options: Mapping[str, Any], label: str) -> None:
    for key in _FLAGS:
        if key in options and not isinstance(options[key], bool):
            raise TypeError(f"{label}: {key} must be true or false, got {json.dumps(options[key])}.")


def _decode_precision(value: Any) -> Any:
    import jax

    if isinstance(value, str):
        return jax.lax.Precision(value.lower())
    if isinstance(value, list):
        return tuple(_decode_precision(v) for v in value)
    return value


def _decode_options(kind: str, options: dict[str, Any], label: str) -> dict[str, Any]:
    """Options from JSON: lists inside per-layer lists of sizes as tuples, frame sizes as tuples,
    dtypes and precisions by name."""
    decoded = dict(options)
    for name, value in options.items():
        if not isinstance(value, list):
            pass
        elif kind == "FramePredictor" and name in ("kernel_size", "hidden_dim"):
            decoded[name] = tuple(value)
        elif name in SIZES:
            decoded[name] = [tuple(v) if isinstance(v, list) else v for v in value]
        elif name == "frame_size":
            decoded[name] = tuple(value)
    if any(isinstance(options.get(name), str) for name in _DTYPES) or "precision" in options:
        import jax.numpy as jnp

        for name in _DTYPES:
            if isinstance(options.get(name), str):
                try:
                    decoded[name] = jnp.dtype(options[name])
                except TypeError:
                    raise ValueError(f"{label}: {name} {options[name]!r} is not a dtype.") from None
        if "precision" in options:
            try:
                decoded["precision"] = _decode_precision(options["precision"])
            except ValueError:
                raise ValueError(
                    f"{label}: precision {options['precision']!r} is not a jax.lax.Precision ('default', 'high', "
                    "'highest')."
                ) from None
    return decoded


def fit_sizes(options: Mapping[str, Any], num_layers: int, spatial_dims: int, label: str) -> dict[str, Any]:
    """`options` with each list of ints among the sizes read as what it can only mean.

    A list of `spatial_dims` ints is one size per axis, for every layer, where `num_layers` differs; one
    of `num_layers` ints one size per layer where `spatial_dims` differs. A list that could be either,
    with entries that differ, is refused.

    >>> fit_sizes({"kernel_size": [5, 3]}, num_layers=3, spatial_dims=2, label="--config c.json")
    {'kernel_size': (5, 3)}

    Raises:
      ValueError: a list that could mean both, with both spellings.
    """
    fitted = dict(options)
    for name in SIZES:
        value = options.get(name)
        if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
            continue
        if len(value) == spatial_dims != num_layers:
            fitted[name] = tuple(value)
        elif len(value) == spatial_dims == num_layers and len(set(value)) > 1:
            noun = "kernel" if "kernel" in name else name
            every = json.dumps([value] * num_layers)
            each = json.dumps([[v] * spatial_dims for v in value])
            raise ValueError(
                f"{label}: {name} {json.dumps(value)} could be one {tuple(value)} {noun} for every layer or one "
                f"{noun} per layer ({', '.join(map(str, value))}): write {every} for the first, {each} for the second."
            )
    return fitted


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _json_value(value: Any) -> Any:
    """An option's value as JSON: tuples as lists, dtypes and precisions by name."""
    import jax
    import jax.numpy as jnp

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    if isinstance(value, jax.lax.Precision):
        return str(value).lower()
    try:
        return jnp.dtype(value).name
    except TypeError:
        raise TypeError(f"{value!r} ({type(value).__name__}) has no JSON form.") from None


def config_object(
    kind: str, options: Mapping[str, Any], merge: str | None = None, source: Any = None, fmt: str | None = None
) -> dict[str, Any]:
    """The written form's JSON object: kind, options (tuples as lists, dtypes and precisions by name),
    merge (a Bidirectional's), source and format (where given)."""
    config: dict[str, Any] = {"kind": kind, "options": {k: _json_value(v) for k, v in options.items()}}
    if merge is not None:
        config["merge"] = merge
    if source is not None:
        config["source"] = str(source)
    if fmt is not None:
        config["format"] = fmt
    return config


def dumps(config: Mapping[str, Any]) -> str:
    """A written configuration (`config_object`) as JSON text: one line per key, and per option."""
    lines = []
    for key, value in config.items():
        if key == "options":
            options = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            lines.append(f'  "options": {{\n{options}\n  }}')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    """Writes a written configuration (`config_object`) to `path`, checked to read back as one."""
    text = dumps(config)
    parse_config(json.loads(text), str(path))
    Path(path).write_text(text)
