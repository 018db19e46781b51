"""The config loader's fast path (libyaml, no positions) gives exactly what the positioned
ruamel path gives: the same Config for a good file, the same errors for a bad one, and it
accepts no YAML that ruamel refuses (issue #13)."""

from __future__ import annotations

import pickle
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from test_config import CASES, EXAMPLE, Case, _yaml

from monitor import config as config_module
from monitor import yaml_fast
from monitor.config import (
    MAX_CONFIG_VALUES,
    Config,
    ConfigError,
    ConfigProblem,
    TrunkConfig,
    load_config,
)
from monitor.yaml_fast import NotFast, fast_yaml

ENV = {"TW_PASSWORD": "s3cr3t", "TRUNKWATCH_CARRIER_B_PASSWORD": "s3cr3t"}


class Spy:
    """Counts how often the fast reader answered, to prove which path a load took."""

    def __init__(self) -> None:
        self.fast = 0

    def __call__(self, text: str, max_values: int) -> Any:
        value = fast_yaml(text, max_values)
        self.fast += 1
        return value


def _positioned_only(text: str, max_values: int) -> Any:
    raise NotFast("test: the positioned path only")


def _load_both(
    path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> tuple[Config | list[ConfigProblem], Config | list[ConfigProblem], Spy]:
    results: list[Config | list[ConfigProblem]] = []
    spy = Spy()
    for reader in (spy, _positioned_only):
        monkeypatch.setattr(config_module, "fast_yaml", reader)
        results.append(_outcome(path, env))
    return results[0], results[1], spy


def _outcome(path: Path, env: dict[str, str]) -> Config | list[ConfigProblem]:
    """The Config the file gives, or its problems."""
    try:
        return load_config(path, env=env)
    except ConfigError as exc:
        return exc.problems


GOOD = [
    EXAMPLE.read_text(),
    _yaml(
        """
        agent: noc-1
        defaults: {interval: 5s, timeout: 4s, alive_codes: "2xx,404"}
        trunks:
          - name: a
            uri: "sip:a.example:5060"
            carrier: Carrier A
            interval: 10
            alive_codes: [200, "400-499", "!408"]
          - {name: b, uri: "sips:b.example", max_forwards: 0, up_after: 1}
          - name: "1234"
            uri: sip:c.example
            auth: {username: u, password_env: TW_PASSWORD}
            carrier: >-
              Carrier
              C
        """
    ),
]


@pytest.mark.parametrize("text", GOOD, ids=["example", "mixed"])
def test_good_config_same_from_both_paths(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "trunkwatch.yaml"
    path.write_text(text)
    fast, positioned, spy = _load_both(path, monkeypatch, ENV)
    assert spy.fast == 1  # the fast reader took this file
    assert isinstance(fast, Config), fast
    assert fast == positioned


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_config_same_errors_from_both_paths(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, content in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    path = tmp_path / "trunkwatch.yaml"
    path.write_text(_yaml(case.text))
    fast, positioned, _ = _load_both(path, monkeypatch, case.env)
    assert isinstance(positioned, list) and positioned
    assert fast == positioned
    assert all(p.line is not None for p in fast)  # the line survived the fast attempt


def test_duplicate_trunk_name_found_fast_is_located(tmp_path: Path) -> None:
    path = tmp_path / "trunkwatch.yaml"
    path.write_text(
        "trunks:\n  - {name: a, uri: sip:a.example}\n  - {name: a, uri: sip:b.example}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (3, "trunks[1].name")
    assert problem.problem == "duplicate trunk name 'a'; first defined at line 2"


@pytest.mark.parametrize(
    "text",
    [
        "a: !!str 5\n",  # explicit tags are kept as tagged values by ruamel
        "%YAML 1.1\n---\na: yes\n",  # a directive changes the schema
        "a: &x {b: 1}\nc:\n  <<: *x\n",  # merge keys
        "a: 010\n",  # octal-looking, underscored, hex, timestamps: ruamel types them
        "a: 1_000\n",
        "a: 0x1F\n",
        "a: 2026-01-01\n",
        "a: .inf\n",
        "a: 1e3\n",
        "a: 1\na: 2\n",  # duplicate keys
        "? [a]\n: 1\n",  # a non-scalar key
        "{1: a, true: b}\n",  # keys Python would merge
        "a: [\n",  # a syntax error
        "--- 1\n--- 2\n",  # two documents
    ],
)
def test_outside_the_fast_subset_goes_positioned(text: str) -> None:
    with pytest.raises(NotFast):
        fast_yaml(text, MAX_CONFIG_VALUES)


def test_aliases_and_runaway_sizes_are_not_fast() -> None:
    # ruamel's path counts every use of an alias against MAX_CONFIG_VALUES: left to it.
    with pytest.raises(NotFast):
        fast_yaml("a: &a [x, x]\nb: [*a, *a]\n", MAX_CONFIG_VALUES)
    with pytest.raises(NotFast):
        fast_yaml("a: [" + "x, " * 60 + "]\n", 50)
    with pytest.raises(NotFast):
        fast_yaml("a: " + "[" * 100 + "]" * 100 + "\n", MAX_CONFIG_VALUES)
    assert fast_yaml("a: [" + "x, " * 40 + "]\n", 50) == {"a": ["x"] * 40}


def _ruamel_plain(text: str) -> Any:
    """What the positioned path's tree becomes after config.py's conversion to plain values."""
    root = YAML(typ="rt").load(text)
    loader = config_module._Loader(source="t", root=root, base_dir=Path("/"), env={}, secrets=False)
    plain = loader._plain(root, ())
    if loader._problems:
        raise ValueError(loader._problems)
    return plain


# Plain scalars of every kind the two schemas might disagree on, and some that are text.
SCALAR_WORDS = [
    "", "~", "null", "Null", "NULL", "nULL", "true", "True", "TRUE", "tRUE", "false", "no",
    "yes", "on", "off", "y", "n", "0", "00", "007", "-0", "+1", "12", "-12", "1_0", "0o7",
    "0x1f", "0b1", "1.5", "-1.5", "+1.50", "1.", ".5", "1e3", "1.5e3", "1:30", ".inf",
    "-.inf", ".nan", "2026-01-01", "2026-01-01 10:00:00", "<<", "=", "sip:a.example",
    "5s", "250ms", "2xx,4xx,!408", "a b", "é", "x#y", "1.2.3.4", "[1]",
]  # fmt: skip

scalar = st.one_of(
    st.sampled_from(SCALAR_WORDS),
    st.text(alphabet="0123456789.-+_:eExXoObB ~tfnul", min_size=1, max_size=8),
)
style = st.sampled_from(["plain", "single", "double", "tagged"])


def _render(value: str, how: str) -> str:
    if how == "single":
        return "'" + value.replace("'", "''") + "'"
    if how == "tagged":
        return "! " + value  # the non-specific tag: ruamel types the scalar as if plain
    if how == "double":
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


@st.composite
def documents(draw: st.DrawFn) -> str:
    """Small YAML texts, block and flow, mixing scalar styles and nesting."""
    lines = []
    for index in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(["k", "name", "1", "true", "a b"])) + str(index)
        kind = draw(st.sampled_from(["scalar", "flow_map", "flow_seq", "block_seq"]))
        items = draw(st.lists(st.tuples(scalar, style), min_size=1, max_size=3))
        rendered = [_render(v, s) for v, s in items]
        if kind == "scalar":
            lines.append(f"{key}: {rendered[0]}")
        elif kind == "flow_map":
            body = ", ".join(f"f{i}: {r}" for i, r in enumerate(rendered))
            lines.append(f"{key}: {{{body}}}")
        elif kind == "flow_seq":
            lines.append(f"{key}: [{', '.join(rendered)}]")
        else:
            lines.append(f"{key}:")
            lines += [f"  - {r}" for r in rendered]
    return "\n".join(lines) + "\n"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_fast_reader_agrees_with_ruamel(text: str) -> None:
    try:
        fast = fast_yaml(text, MAX_CONFIG_VALUES)
    except NotFast:
        return  # the positioned path decides
    # Accepted fast: ruamel must accept it too, with the very same values and types.
    slow = _ruamel_plain(text)
    assert fast == slow
    assert repr(fast) == repr(slow)  # 1 vs 1.0 vs True, and key order


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_fast_reader_accepts_nothing_ruamel_refuses(text: str) -> None:
    try:
        fast = fast_yaml(text, MAX_CONFIG_VALUES)
    except NotFast:
        return
    assert fast == _ruamel_plain(text)


def test_implicit_resolver_table_is_ruamels() -> None:
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver

    resolver = VersionedResolver()
    for word in SCALAR_WORDS[1:]:
        expected = str(resolver.resolve(ScalarNode, word, (True, False)))
        assert yaml_fast._ruamel_tag(word) == expected, word


def test_load_is_fast_enough_for_many_trunks(tmp_path: Path) -> None:
    # 20,000 trunks (a fifth of the 100,000): the fast path must be taken, and the
    # result is the positioned path's.
    lines = ["defaults: {interval: 10}", "trunks:"]
    lines += [f'  - {{name: t{i:05d}, uri: "sip:127.0.0.1:5060"}}' for i in range(20_000)]
    path = tmp_path / "trunkwatch.yaml"
    path.write_text("\n".join(lines) + "\n")
    cfg = load_config(path)
    assert len(cfg.trunks) == 20_000
    assert cfg.trunks[1].alive_codes is cfg.trunks[0].alive_codes  # one shared set
    assert textwrap.shorten(cfg.trunks[-1].name, 10) == "t19999"


def test_trunks_share_one_table_of_field_names(tmp_path: Path) -> None:
    # A trunk's values in a key-sharing dict (~220 bytes) instead of a dict of its own
    # (~460): ~25 MB at 100,000 trunks. Whole validation, a trunk shaped like another and a
    # reload's pickled copy all get one.
    path = tmp_path / "trunkwatch.yaml"
    path.write_text(SHAPES)
    cfg = load_config(path, env=ENV)
    again = pickle.loads(pickle.dumps(cfg))
    assert again.trunks == cfg.trunks
    for trunk in (*cfg.trunks, *again.trunks):
        own = dict(trunk.__dict__)  # the same values in a dict of their own
        assert sys.getsizeof(trunk.__dict__) < sys.getsizeof(own) * 0.6, trunk.name
        assert trunk.model_dump() == TrunkConfig.model_validate(own).model_dump()
    assert again.trunks[1].model_fields_set == cfg.trunks[1].model_fields_set


# Trunks written alike (the same fields but name, uri and carrier) are validated on those
# three alone after the first of their shape (monitor.config._like).
SHAPES = _yaml(
    """
    agent: noc-1
    defaults: {interval: 10s, alive_codes: "2xx,404"}
    trunks:
      - {name: a1, uri: "sip:a1@sbc.example"}
      - {name: a2, uri: "sip:a2@sbc.example:5070;transport=tcp"}
      - {name: 12345, uri: "sips:[2001:db8::1]:5061"}
      - {name: c1, uri: "sip:10.0.0.1", carrier: tel-1}
      - {name: c2, uri: "sip:10.0.0.2", carrier: tel-2}
      - {name: i1, uri: "sip:x.example", interval: 30s}
      - {name: i2, uri: "sip:y.example", interval: 30s}
      - {name: i3, uri: "sip:z.example", interval: 30s, timeout: 5s}
      - {name: d1, uri: "sip:d1.example", down_after: 2}
      - {name: d2, uri: "sip:d2.example", down_after: 2.0}
      - {name: d3, uri: "sip:d3.example", down_after: 2}
      - {name: g1, uri: "sip:g1.example", agents: [noc-1]}
      - {name: g2, uri: "sip:g2.example", agents: [noc-1]}
      - {name: p1, uri: "sip:p1.example", auth: {username: u, password_env: TW_PASSWORD}}
      - {name: p2, uri: "sip:p2.example", auth: {username: u, password_env: TW_PASSWORD}}
    """
)


def _shaped_and_whole(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Config | list[ConfigProblem], Config | list[ConfigProblem], int]:
    path = tmp_path / "trunkwatch.yaml"
    path.write_text(text)
    alike = 0
    like = config_module._like

    def counted(*args: Any) -> Any:
        nonlocal alike
        alike += 1
        return like(*args)

    results: list[Config | list[ConfigProblem]] = []
    for shapes in (config_module.MAX_SHAPES, 0):  # 0: every trunk validated whole
        monkeypatch.setattr(config_module, "MAX_SHAPES", shapes)
        monkeypatch.setattr(config_module, "_like", counted)
        results.append(_outcome(path, ENV))
    return results[0], results[1], alike


def test_trunks_written_alike_are_what_whole_validation_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shaped, whole, alike = _shaped_and_whole(SHAPES, tmp_path, monkeypatch)
    assert isinstance(shaped, Config) and isinstance(whole, Config), (shaped, whole)
    assert alike == 6  # a2 and 12345, c2, i2, d3, p2: not the lists (g2), nor 2.0 after 2
    assert shaped.trunks == whole.trunks
    for got, expected in zip(shaped.trunks, whole.trunks, strict=True):
        assert got.model_fields_set == expected.model_fields_set, got.name
        assert got.model_dump() == expected.model_dump()
    assert [t.name for t in shaped.trunks][2] == "12345"  # coerced to text as before
    assert shaped.trunks[4].carrier == "tel-2" and shaped.trunks[1].carrier == ""
    assert "carrier" not in shaped.trunks[1].model_fields_set


def test_a_bad_identity_in_a_known_shape_is_reported_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _yaml(
        f"""
        trunks:
          - {{name: a1, uri: "sip:a1@sbc.example"}}
          - {{name: "a 2", uri: "sip:a2@sbc.example"}}
          - {{name: a3, uri: "http://a3.example"}}
          - {{name: a4, uri: "sip:a4:secret@sbc.example"}}
          - {{name: a5, uri: "sip:a5@sbc.example", carrier: c1}}
          - {{name: a6, uri: "sip:a6@sbc.example", carrier: {"x" * 200}}}
        """
    )
    shaped, whole, alike = _shaped_and_whole(text, tmp_path, monkeypatch)
    assert isinstance(shaped, list)
    assert shaped == whole
    # a2 in the fast attempt (it stops at the first problem), then a2, a3, a4 and a6 in
    # the positioned one; each failed there, then was validated whole.
    assert alike == 5
    assert [(p.line, p.field) for p in shaped] == [
        (3, "trunks[1].name"),
        (4, "trunks[2].uri"),
        (5, "trunks[3].uri"),
        (7, "trunks[5].carrier"),
    ]
    assert "password" in shaped[2].problem and "secret" not in shaped[2].problem


def test_trunk_checks_never_relate_the_identity_to_other_fields() -> None:
    # What _like relies on: name, uri and carrier are checked each on its own. A new
    # check across fields must be looked at with the shape cache in mind.
    decorators = config_module.TrunkConfig.__pydantic_decorators__
    fields = {f for d in decorators.field_validators.values() for f in d.info.fields}
    assert not fields & set(config_module.TRUNK_IDENTITY)
    assert set(decorators.model_validators) == {
        "_register_needs_credentials",
        "_timeout_below_interval",
    }
