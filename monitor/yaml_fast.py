"""The config's fast YAML reader: libyaml's C parser, plain values, no positions.

ruamel's round-trip loader keeps a line for every key and item, which is what errors need,
but at 100,000 trunks it took ~40 s and over 1 GB. This reader takes the C parser's node
tree and turns it into plain dicts, lists and scalars the way ruamel's YAML 1.2 loader
would, for a deliberately small subset of YAML; anything outside that subset (explicit
tags, merge keys, directives, timestamps, octal or underscored numbers, duplicate keys,
...) raises `NotFast`, and the caller re-reads the text with ruamel, which then accepts
or reports it exactly as before. A config with a problem is re-read the same way, so
every error keeps its line.
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml
from ruamel.yaml.resolver import VersionedResolver


# The tags this reader's resolver gives are objects, not strings: a tag written in the
# file is always a string (`!!str 5`, `!foo`, even `!tw/plain`), and ruamel keeps those as
# tagged values, so any string tag here is not fast.
class _Tag:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_STR: Final = _Tag("quoted scalar")
_PLAIN: Final = _Tag("plain scalar")  # typed by _plain_scalar
_MAP: Final = _Tag("mapping")
_SEQ: Final = _Tag("sequence")
_OTHER: Final = _Tag("other")


# YAML 1.2 core schema as ruamel reads it, narrowed to the forms whose value is obvious.
_INT: Final = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT: Final = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\.[0-9]+")
_NULLS: Final = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE: Final = frozenset({"true", "True", "TRUE"})
_FALSE: Final = frozenset({"false", "False", "FALSE"})
_RUAMEL_STR: Final = "tag:yaml.org,2002:str"
# Texts left to ruamel: a directive (`%YAML 1.1`) changes how it types scalars (a line
# starting with '%' anywhere, rather than telling directives from content); tabs, control
# characters, a BOM and the Unicode line breaks are where libyaml and ruamel disagree
# (libyaml accepts `a: 0<TAB>`, ruamel refuses it), and so is a block scalar header
# followed by `#` without a space (`|#`: libyaml reads a comment, ruamel refuses it), and
# anchor names beyond letters, digits, `_` and `-` (`&a:b`: libyaml ends the name at `:`).
_NOT_FAST_TEXT: Final = re.compile(
    r"^%"
    r"|[|>][-+0-9]*#"
    r"|(?:^|[\s\[{,])[&*][\w-]*[^\w\s,\[\]{}-]"
    "|[\t\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]",
    re.M,
)


class NotFast(Exception):
    """The fast reader cannot vouch for this text; read it with ruamel instead."""


class _Nodes(yaml.CSafeLoader):  # type: ignore[misc]
    """libyaml's parser and composer, with tags that say which scalars were plain."""

    def resolve(self, kind: type, value: str | None, implicit: tuple[bool, bool]) -> _Tag:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                return _PLAIN
            return _STR if implicit[1] else _OTHER  # `! 5` is neither: ruamel types it
        if kind is yaml.MappingNode:
            return _MAP if implicit else _OTHER
        return _SEQ if implicit else _OTHER


def _ruamel_implicit() -> dict[str | None, tuple[tuple[str, re.Pattern[str]], ...]]:
    """ruamel's YAML 1.2 implicit resolvers by first character (read once: per scalar its
    `resolve` costs ~10 µs, mostly looking up the document's version)."""
    table = VersionedResolver(version=(1, 2)).versioned_resolver
    return {
        # ruamel keeps its patterns behind a lazy proxy: compiled plainly, each match is direct.
        first: tuple((str(tag), re.compile(regexp.pattern, regexp.flags)) for tag, regexp in rs)
        for first, rs in table.items()
    }


_RUAMEL_IMPLICIT: Final = _ruamel_implicit()
_RUAMEL_ANY_FIRST: Final = _RUAMEL_IMPLICIT.get(None, ())


def _ruamel_tag(value: str) -> str:
    """The tag ruamel's YAML 1.2 loader gives a non-empty plain scalar."""
    for tag, regexp in (*_RUAMEL_IMPLICIT.get(value[0], ()), *_RUAMEL_ANY_FIRST):
        if regexp.match(value):
            return tag
    return _RUAMEL_STR


def _plain_scalar(value: str) -> Any:
    if value in _NULLS:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if _INT.fullmatch(value):
        return int(value)  # ValueError past sys.get_int_max_str_digits(): caught, not fast
    if _FLOAT.fullmatch(value):
        return float(value)
    if _ruamel_tag(value) == _RUAMEL_STR:
        return value
    raise NotFast(f"plain scalar typed by ruamel: {value[:40]!r}")


class _Builder:
    __slots__ = ("left",)

    def __init__(self, max_values: int) -> None:
        self.left = max_values

    def value(self, node: Any) -> Any:
        self.left -= 1
        if self.left < 0:
            raise NotFast("too many values")  # ruamel's path reports the runaway aliases
        tag = node.tag
        if tag is _PLAIN:
            return _plain_scalar(node.value)
        if tag is _STR:
            return node.value
        if tag is _MAP:
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.value(key_node)
                if isinstance(key, bool) or not isinstance(key, str | int) or key in out:
                    raise NotFast("mapping key that is not a unique string or integer")
                out[key] = self.value(value_node)
            return out
        if tag is _SEQ:
            return [self.value(item) for item in node.value]
        raise NotFast(f"explicit tag {str(tag)[:40]!r}")


def fast_yaml(text: str, max_values: int) -> Any:
    """Plain values of a one-document YAML text, as ruamel's loader gives them after
    conversion to plain Python; raises NotFast for anything outside the fast subset."""
    if _NOT_FAST_TEXT.search(text):
        raise NotFast("directive or a character the two parsers read differently")
    loader = _Nodes(text)
    try:
        node = loader.get_single_node()
    except Exception as exc:  # every YAML error is reported by ruamel's path
        raise NotFast(type(exc).__name__) from None
    finally:
        loader.dispose()
    if node is None:
        return None
    try:
        return _Builder(max_values).value(node)
    except (RecursionError, ValueError) as exc:
        raise NotFast(type(exc).__name__) from None
