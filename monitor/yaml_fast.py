"""The config's fast YAML reader: libyaml's C parser, plain values, no positions.

ruamel's round-trip loader keeps a line for every key and item, which is what errors need,
but at 100,000 trunks it took ~40 s and over 1 GB. This reader takes the C parser's
events and builds plain dicts, lists and scalars the way ruamel's YAML 1.2 loader would,
for a deliberately small subset of YAML; anything outside that subset (tags, anchors and
aliases, merge keys, directives, timestamps, octal or underscored numbers, duplicate
keys, ...) raises `NotFast`, and the caller re-reads the text with ruamel, which then accepts
or reports it exactly as before. A config with a problem is re-read the same way, so
every error keeps its line.
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml
from ruamel.yaml.resolver import VersionedResolver

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
# followed by `#` without a space (`|#`: libyaml reads a comment, ruamel refuses it).
# Anchors and aliases are not fast either (see _build): libyaml also ends `&a:b` at `:`.
_NOT_FAST_TEXT: Final = re.compile(
    r"^%"
    r"|[|>][-+0-9]*#"
    "|[\t\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]",
    re.M,
)


class NotFast(Exception):
    """The fast reader cannot vouch for this text; read it with ruamel instead."""


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


_RUAMEL_INT: Final = "tag:yaml.org,2002:int"
_RUAMEL_FLOAT: Final = "tag:yaml.org,2002:float"


def _plain_scalar(value: str) -> Any:
    if value in _NULLS:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    tag = _ruamel_tag(value)
    if tag == _RUAMEL_STR:
        return value
    if tag == _RUAMEL_INT and _INT.fullmatch(value):
        return int(value)  # ValueError past sys.get_int_max_str_digits(): caught, not fast
    if tag == _RUAMEL_FLOAT and _FLOAT.fullmatch(value):
        return float(value)
    raise NotFast(f"plain scalar typed by ruamel: {value[:40]!r}")


# Distinct plain scalars remembered with their value while one text is read.
MAX_TYPED: Final = 4096
# Configs nest a handful of levels; ruamel's recursive conversion refuses a few hundred.
MAX_DEPTH: Final = 64


def fast_yaml(text: str, max_values: int) -> Any:
    """Plain values of a one-document YAML text, as ruamel's loader gives them after
    conversion to plain Python; raises NotFast for anything outside the fast subset."""
    if _NOT_FAST_TEXT.search(text):
        raise NotFast("directive or a character the two parsers read differently")
    # Built from the parser's events as they come: a composed node tree of 100,000 trunks
    # held ~190 MB at once beside the values built from it.
    parser = yaml.CSafeLoader(text)
    try:
        return _build(parser.get_event, max_values)
    except NotFast:
        raise
    except Exception as exc:  # every YAML error is reported by ruamel's path
        raise NotFast(type(exc).__name__) from None
    finally:
        parser.dispose()


def _build(next_event: Any, max_values: int) -> Any:
    if type(next_event()) is not yaml.StreamStartEvent:
        raise NotFast("no stream start")
    event = next_event()
    if type(event) is yaml.StreamEndEvent:
        return None  # an empty file
    if type(event) is not yaml.DocumentStartEvent:
        raise NotFast("no document start")
    left = max_values
    typed: dict[str, Any] = {}
    # Open collections: [container, pending key] per level (key None: a list or a key slot).
    stack: list[list[Any]] = []
    root: Any = None
    done = False
    while not done:
        event = next_event()
        kind = type(event)
        if kind is yaml.ScalarEvent:
            if event.anchor is not None or event.tag is not None:
                raise NotFast("anchor or tag")  # tags, even `!`, are ruamel's to type
            if not event.implicit[0]:
                value = event.value  # quoted or a block scalar: text
            else:
                # Keys repeat (name, uri, ... once per trunk): typed once each.
                value = typed.get(event.value, _NO_KEY)
                if value is _NO_KEY:
                    value = _plain_scalar(event.value)
                    if len(typed) < MAX_TYPED:
                        typed[event.value] = value
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            if event.anchor is not None or event.tag is not None:
                raise NotFast("anchor or tag")
            if len(stack) >= MAX_DEPTH:
                raise NotFast("nested too deeply")
            left -= 1
            value = {} if kind is yaml.MappingStartEvent else []
            _add(stack, value)
            stack.append([value, _NO_KEY])
            if left < 0:
                raise NotFast("too many values")
            continue
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            closed = stack.pop()
            if not stack:
                root, done = closed[0], True
            continue
        else:  # an alias (ruamel counts and converts each use), or anything unexpected
            raise NotFast(kind.__name__)
        left -= 1
        if left < 0:
            raise NotFast("too many values")
        if not stack:
            root, done = value, True
        else:
            _add(stack, value)
    if type(next_event()) is not yaml.DocumentEndEvent:
        raise NotFast("no document end")
    if type(next_event()) is not yaml.StreamEndEvent:
        raise NotFast("more than one document")
    return root


_NO_KEY: Final = object()  # a mapping waiting for its next key


def _add(stack: list[list[Any]], value: Any) -> None:
    if not stack:
        return
    top = stack[-1]
    container = top[0]
    if type(container) is list:
        container.append(value)
    elif top[1] is _NO_KEY:
        if (type(value) is not str and type(value) is not int) or value in container:
            raise NotFast("mapping key that is not a unique string or integer")
        top[1] = value
    else:
        container[top[1]] = value
        top[1] = _NO_KEY
