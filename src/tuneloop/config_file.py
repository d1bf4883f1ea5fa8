"""The commented ``tuneloop.toml``, rendered from the settings' own declarations.

Every key's comment is its field's ``description`` in :mod:`tuneloop.config`, and every value
is the field's default (or the value of the config being rendered), so the file a new
workspace starts from cannot drift from the code that reads it. A setting that is off unless
given (``None``, an empty table, an optional section) is written commented out with the
field's first example, so the file still shows how to turn it on.
"""

from __future__ import annotations

import re
import textwrap
import types
import typing
from typing import Any

import tomlkit
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tuneloop.config import SecurityConfig, TuneloopConfig

WIDTH = 99  # the project's line length
COLUMN = 25  # where inline comments start, when the key and value leave room
HEADER = "# tuneloop workspace configuration. Every key is optional; these are the defaults."


def default_toml(name: str, encryption: bool = False, key: str = "env:TUNELOOP_KEY") -> str:
    """The commented ``tuneloop.toml`` a new workspace starts from."""
    security = SecurityConfig(encryption=encryption, key=key)
    return render(TuneloopConfig(name=name, security=security))


def render(config: TuneloopConfig) -> str:
    """``config`` as a commented TOML file that parses back to an equal config."""
    lines = [HEADER]
    lines += _fields(config, [])
    return "\n".join(lines).rstrip() + "\n"


def _fields(model: BaseModel, path: list[str]) -> list[str]:
    """A section's keys, then its subsections, each under its own header."""
    keys: list[str] = []
    tables: list[str] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        section = _section_of(info.annotation)
        if isinstance(value, BaseModel):
            tables += ["", *_header([*path, name], value)]
            tables += _fields(value, [*path, name])
        elif section is not None:  # an optional section, off: shown commented out
            tables += ["", *_commented_section([*path, name], section, info)]
        elif _is_named_tables(info.annotation) and value:
            for entry, body in value.items():
                tables += ["", f"[{'.'.join([*path, name, entry])}]", *_fields(body, [])]
        elif _is_named_tables(info.annotation):
            tables += ["", *_commented_named_tables([*path, name], info)]
        else:
            keys += _key(name, value, info)
    return keys + tables


def _header(path: list[str], model: BaseModel) -> list[str]:
    """The section's header, and the first sentence of its class's docstring as its comment."""
    doc = " ".join((type(model).__doc__ or "").split())
    first = _plain(re.split(r"(?<=[.!?])\s", doc, maxsplit=1)[0])
    return [f"[{'.'.join(path)}]", *_comment_lines(first)]


def _plain(text: str) -> str:
    """A docstring's reStructuredText as plain words: ``x`` and :class:`~m.X` become x and X."""
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    return text.replace("``", "")


def _key(name: str, value: Any, info: FieldInfo) -> list[str]:
    """``name = value  # description``, or commented out with an example when it is off."""
    off = value is None or (isinstance(value, dict) and not value)
    if off:
        example = info.examples[0] if info.examples else None
        if example is None:
            raise ValueError(f"setting {name!r} is off by default but declares no example")
        return _with_comment(f"# {name} = {_toml(example)}", info.description)
    return _with_comment(f"{name} = {_toml(value)}", info.description)


def _with_comment(line: str, description: str | None) -> list[str]:
    if not description:
        raise ValueError(f"{line.split('=')[0].strip('# ')}: declare a description")
    inline = f"{line.ljust(COLUMN - 2)}  # {description}"
    if len(inline) <= WIDTH:
        return [inline]
    return [*_comment_lines(description), line]


def _comment_lines(text: str) -> list[str]:
    return [f"# {part}" for part in textwrap.wrap(text, WIDTH - 2)]


def _commented_section(path: list[str], section: type[BaseModel], info: FieldInfo) -> list[str]:
    """An optional section, off: its header and keys commented out, with their examples."""
    lines = [f"# [{'.'.join(path)}]", *_comment_lines(info.description or "")]
    for name, field in section.model_fields.items():
        value = (
            field.examples[0] if field.examples else field.get_default(call_default_factory=True)
        )
        lines += ["# " + x.removeprefix("# ") for x in _key(name, value, field)]
    return lines


def _commented_named_tables(path: list[str], info: FieldInfo) -> list[str]:
    """A table of named sections (API keys): one example entry, commented out."""
    example = info.examples[0] if info.examples else None
    if not isinstance(example, dict) or len(example) != 1:
        raise ValueError(f"{'.'.join(path)}: declare one example entry {{name: {{...}}}}")
    [(entry, body)] = example.items()
    lines = [*_comment_lines(info.description or ""), f"# [{'.'.join([*path, entry])}]"]
    section = _named_section_of(info.annotation)
    for name, value in body.items():
        lines += [
            "# " + x.removeprefix("# ") for x in _key(name, value, section.model_fields[name])
        ]
    return lines


def _toml(value: Any) -> str:
    """One value as TOML writes it (tuples as arrays, dicts as inline tables)."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update(value)
        return str(table.as_string())
    return str(tomlkit.item(value).as_string())


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The section type of ``Section | None``; None for anything else."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return found[0] if found else None
    return None


def _is_named_tables(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is not dict or len(args) != 2:
        return False
    return isinstance(args[1], type) and issubclass(args[1], BaseModel)


def _named_section_of(annotation: Any) -> type[BaseModel]:
    section: type[BaseModel] = typing.get_args(annotation)[1]
    return section
