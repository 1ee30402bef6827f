"""Typed models over config keys (pure): which keys a model reads, how the strings become typed
values, and how bad values are reported (every key at once, secrets masked).

The models are defined at module level under ``from __future__ import annotations``: their
annotations are strings, as in most application code, and must be resolved by the schema."""

from __future__ import annotations

import enum
import subprocess
import sys
import traceback
import typing
from dataclasses import dataclass, field, make_dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Literal, Optional, Set, Tuple, Union

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotconf.errors import InvalidValuesError, ValueProblem
from hotconf.models import ModelSchema

try:
    import pydantic
except ImportError:  # the core install: the pydantic tests skip
    pydantic = None  # type: ignore[assignment]


def lookup_of(values: Dict[str, str]) -> Callable[[str], Optional[str]]:
    return values.get


def problems_of(schema: ModelSchema, values: Dict[str, str], pinned: object = None) -> List[ValueProblem]:
    with pytest.raises(InvalidValuesError) as caught:
        schema.build(values.get, pinned)
    assert caught.value.model == schema.name
    return caught.value.problems


# dataclass models


class Level(enum.Enum):
    DEBUG = "debug"
    INFO = "info"


class Mode(enum.IntEnum):
    FAST = 1
    SAFE = 2


@dataclass
class Pool:
    size: int = 5
    timeout: float = 1.0


@dataclass
class Service:
    name: str
    port: int
    debug: bool = False
    pool: Pool = field(default_factory=lambda: Pool(size=9, timeout=9.0))
    tags: List[str] = field(default_factory=list)
    url: str = field(default="", metadata={"key": "db.url"})
    workers: int = field(default=2, metadata={"restart": True})


@dataclass
class Everything:
    text: str
    number: int
    ratio: float
    flag: bool
    level: Level
    mode: Mode
    color: Literal["red", "green"]
    amount: Decimal
    wait: timedelta
    path: Path
    raw: Any
    maybe: Optional[int]
    ports: List[int]
    pair: Tuple[int, str]
    many: Tuple[float, ...]
    names: Set[str]
    frozen: FrozenSet[int]
    labels: Dict[str, int]
    blob: dict


@dataclass
class Leaf:
    x: int
    y: str = "y"


@dataclass
class Middle:
    leaf: Leaf
    depth: int = 1


@dataclass
class Outer:
    middle: Middle
    top: bool = True


@dataclass
class Range:
    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.lo >= self.hi:
            raise ValueError(f"lo must be below hi (lo={self.lo}, hi={self.hi})")


@dataclass
class Db:
    password: str
    url: str = field(metadata={"key": "url"})
    port: int = 5432

    def __post_init__(self) -> None:
        if len(self.password) < 10:
            raise ValueError(f"password {self.password!r} is too short")


@dataclass
class BadSecrets:
    password: int
    url: int


@dataclass(frozen=True)
class Frozen:
    size: int = field(metadata={"restart": True})
    name: str = "n"


@dataclass
class Restartable:
    host: str = field(metadata={"restart": True})
    level: int = 0
    pool: Pool = field(default_factory=Pool)
    frozen: Frozen = field(default_factory=lambda: Frozen(size=1))
    whole: Pool = field(default_factory=Pool, metadata={"restart": True})


@dataclass
class Maybe:
    pool: Optional[Pool]
    count: Optional[int]
    label: Optional[str] = "x"


@dataclass
class Unsupported:
    callback: Callable[[], None]


class NeedsTwo:
    def __init__(self, a: str, b: str):
        self.a, self.b = a, b


@dataclass
class TwoArgs:
    thing: NeedsTwo


@dataclass
class Node:
    name: str
    child: Optional[Node] = None


@dataclass
class Clash:
    a: str = field(metadata={"key": "b"})
    b: str = "b"


@dataclass
class Numbers:
    a: int
    b: int
    c: int


@dataclass
class TwentyFields:
    f0: int
    f1: str
    f2: float
    f3: bool
    f4: int
    f5: str
    f6: float
    f7: bool
    f8: int
    f9: str
    f10: int
    f11: str
    f12: float
    f13: bool
    f14: int
    f15: str
    f16: List[str]
    f17: int
    f18: str
    f19: Level


SERVICE = {"svc.name": "api", "svc.port": "8080"}


# prefixes and keys


def test_a_prefix_with_or_without_its_dot_reads_the_same_keys():
    with_dot, without = ModelSchema.of(Service, "svc."), ModelSchema.of(Service, "svc")
    assert with_dot.prefix == without.prefix == "svc."
    assert with_dot.keys == without.keys == (
        "svc.name", "svc.port", "svc.debug", "svc.pool.size", "svc.pool.timeout", "svc.tags",
        "svc.db.url", "svc.workers")
    assert with_dot.build(SERVICE.get) == Service(name="api", port=8080)


@pytest.mark.parametrize("prefix", ["", None])
def test_no_prefix_reads_the_field_names(prefix):
    schema = ModelSchema.of(Range, prefix)
    assert schema.prefix == "" and schema.keys == ("lo", "hi")
    assert schema.build({"lo": "1", "hi": "2"}.get) == Range(1, 2)


def test_the_schema_describes_the_model_and_is_cached():
    schema = ModelSchema.of(Service, "svc", namespace="db")
    assert (schema.model, schema.name, schema.namespace) == (Service, "Service", "db")
    assert ModelSchema.of(Service, "svc.", namespace="db") is schema
    assert ModelSchema.of(Service, "svc") is not schema  # another namespace


def test_an_explicit_key_is_relative_to_the_prefix():
    schema = ModelSchema.of(Service, "svc")
    built = schema.build({**SERVICE, "svc.db.url": "mysql://h/db", "svc.url": "ignored"}.get)
    assert built.url == "mysql://h/db"
    assert "svc.url" not in schema.keys


def test_the_annotations_are_strings_and_still_resolved():
    assert Service.__annotations__["port"] == "int"
    assert ModelSchema.of(Service, "svc").build(SERVICE.get).port == 8080


def test_the_type_hints_are_read_once_not_on_each_build(monkeypatch):
    schema = ModelSchema.of(Everything, "e")

    def forbidden(*args, **kwargs):
        raise AssertionError("get_type_hints called by build")

    monkeypatch.setattr(typing, "get_type_hints", forbidden)
    assert schema.build(EVERYTHING.get).number == 42


# types


EVERYTHING = {
    "e.text": " hi ", "e.number": " 42 ", "e.ratio": "0.5", "e.flag": "yes", "e.level": "info",
    "e.mode": "2", "e.color": "green", "e.amount": "1.10", "e.wait": "1.5", "e.path": "/tmp/x",
    "e.raw": "[raw]", "e.maybe": "7", "e.ports": "80, 443,,", "e.pair": '[1, "b"]',
    "e.many": "1.5,2", "e.names": "a,b,a", "e.frozen": "[3, 3, 4]", "e.labels": '{"a": 1, "b": "2"}',
    "e.blob": '{"x": [1, {"y": null}]}',
}


def test_every_supported_type_is_converted():
    built = ModelSchema.of(Everything, "e").build(EVERYTHING.get)
    assert built == Everything(
        text=" hi ", number=42, ratio=0.5, flag=True, level=Level.INFO, mode=Mode.SAFE, color="green",
        amount=Decimal("1.10"), wait=timedelta(seconds=1.5), path=Path("/tmp/x"), raw="[raw]", maybe=7,
        ports=[80, 443], pair=(1, "b"), many=(1.5, 2.0), names={"a", "b"}, frozen=frozenset({3, 4}),
        labels={"a": 1, "b": 2}, blob={"x": [1, {"y": None}]})
    assert type(built.number) is int and type(built.mode) is Mode


@pytest.mark.parametrize(("key", "raw", "message"), [
    ("e.number", "4.2", "not a valid integer"),
    ("e.number", "", "not a valid integer"),
    ("e.ratio", "half", "not a valid number"),
    ("e.flag", "maybe", "not a valid boolean (true/false, yes/no, on/off, 1/0)"),
    ("e.level", "loud", "not one of: debug, info"),
    ("e.mode", "3", "not one of: 1, 2"),
    ("e.color", "blue", "not one of: red, green"),
    ("e.amount", "1,10", "not a valid decimal number"),
    ("e.wait", "5m", "not a valid duration in seconds"),
    ("e.maybe", "", "not a valid integer"),
    ("e.ports", "80,http", "item 2: not a valid integer"),
    ("e.ports", "[80, true]", "item 2: not a valid integer"),
    ("e.ports", "[80,", "not valid JSON (Expecting value: line 1 column 5 (char 4))"),
    ("e.pair", "1,b,c", "expected 2 items, got 3"),
    ("e.pair", "x,b", "item 1: not a valid integer"),
    ("e.labels", '{"a": "one"}', "entry 'a': not a valid integer"),
    ("e.labels", "[1]", "not a JSON object"),
    ("e.blob", "a=1", "not valid JSON (Expecting value: line 1 column 1 (char 0))"),
])
def test_a_value_that_does_not_convert_says_what_was_wanted(key, raw, message):
    problems = problems_of(ModelSchema.of(Everything, "e"), {**EVERYTHING, key: raw})
    assert problems == [ValueProblem(key, "application", raw, message)]


def test_an_enum_is_read_by_value_then_by_name():
    schema = ModelSchema.of(Everything, "e")
    assert schema.build({**EVERYTHING, "e.level": "DEBUG"}.get).level is Level.DEBUG
    assert schema.build({**EVERYTHING, "e.level": " debug "}.get).level is Level.DEBUG
    assert schema.build({**EVERYTHING, "e.mode": "FAST"}.get).mode is Mode.FAST


@pytest.mark.parametrize(("raw", "expected"), [
    ("a, b ,c", ["a", "b", "c"]),
    (" a,,b, ", ["a", "b"]),
    ("", []),
    ('["a,b", " c "]', ["a,b", " c "]),
    ("  [1, 2]", ["1", "2"]),
])
def test_a_list_is_comma_separated_or_a_json_array(raw, expected):
    built = ModelSchema.of(Service, "svc").build({**SERVICE, "svc.tags": raw}.get)
    assert built.tags == expected


def test_optional_without_a_default_is_none_when_missing():
    schema = ModelSchema.of(Maybe, "m")
    assert schema.build({}.get) == Maybe(pool=None, count=None, label="x")
    assert schema.build({"m.count": "3", "m.label": ""}.get) == Maybe(pool=None, count=3, label="")
    assert schema.build({"m.pool.size": "2"}.get) == Maybe(pool=Pool(size=2), count=None)


@pytest.mark.skipif(sys.version_info < (3, 10), reason="X | None needs Python 3.10")
def test_the_pipe_form_of_optional_is_optional():
    Piped = make_dataclass("Piped", [("count", eval("int | None")), ("pool", eval("Pool | None"))])
    schema = ModelSchema.of(Piped, "p")
    assert schema.keys == ("p.count", "p.pool.size", "p.pool.timeout")
    assert schema.build({}.get) == Piped(count=None, pool=None)
    assert schema.build({"p.count": "1", "p.pool.size": "2"}.get) == Piped(count=1, pool=Pool(size=2))


def test_a_union_takes_the_first_member_the_text_converts_to():
    Either = make_dataclass("Either", [("value", Union[int, bool, str]), ("strict", Union[int, bool])])
    schema = ModelSchema.of(Either)
    assert schema.build({"value": "1", "strict": "1"}.get) == Either(value=1, strict=1)
    assert schema.build({"value": "yes", "strict": "off"}.get) == Either(value=True, strict=False)
    assert schema.build({"value": "x", "strict": "0"}.get).value == "x"
    assert problems_of(schema, {"value": "x", "strict": "x"}) == [ValueProblem(
        "strict", "application", "x",
        "not a valid integer or not a valid boolean (true/false, yes/no, on/off, 1/0)")]


def test_a_missing_key_takes_the_default_and_a_required_one_is_a_problem():
    schema = ModelSchema.of(Service, "svc")
    assert schema.build(SERVICE.get) == Service(name="api", port=8080, debug=False, tags=[], url="",
                                                workers=2)
    assert problems_of(schema, {"svc.name": "api"}) == [
        ValueProblem("svc.port", "application", None, "missing (required)")]


def test_an_empty_string_is_a_value_not_a_missing_key():
    assert problems_of(ModelSchema.of(Service, "svc"), {**SERVICE, "svc.port": ""}) == [
        ValueProblem("svc.port", "application", "", "not a valid integer")]


# nested models


def test_nested_models_read_dotted_keys_two_levels_deep():
    schema = ModelSchema.of(Outer, "o")
    assert schema.keys == ("o.middle.leaf.x", "o.middle.leaf.y", "o.middle.depth", "o.top")
    built = schema.build({"o.middle.leaf.x": "3", "o.middle.depth": "2", "o.top": "off"}.get)
    assert built == Outer(middle=Middle(leaf=Leaf(x=3, y="y"), depth=2), top=False)
    assert problems_of(schema, {"o.middle.leaf.x": "three"}) == [
        ValueProblem("o.middle.leaf.x", "application", "three", "not a valid integer")]
    assert problems_of(schema, {}) == [
        ValueProblem("o.middle.leaf.x", "application", None, "missing (required)")]


def test_a_nested_model_with_a_default_is_used_whole_until_one_of_its_keys_is_set():
    schema = ModelSchema.of(Service, "svc")
    assert schema.build(SERVICE.get).pool == Pool(size=9, timeout=9.0)  # the field's default
    # one key set: the model is read from its keys, the others from Pool's own defaults
    assert schema.build({**SERVICE, "svc.pool.timeout": "2"}.get).pool == Pool(size=5, timeout=2.0)
    assert problems_of(schema, {**SERVICE, "svc.pool.size": "big"})[0].key == "svc.pool.size"


# all problems at once, whole-model checks, masking


def test_every_bad_key_is_reported_at_once_in_key_order():
    schema = ModelSchema.of(Service, "svc")
    values = {"svc.port": "http", "svc.debug": "perhaps", "svc.pool.size": "x", "svc.tags": "1"}
    with pytest.raises(InvalidValuesError) as caught:
        schema.build(values.get)
    error = caught.value
    assert error.model == "Service"
    assert error.keys == ["svc.name", "svc.port", "svc.debug", "svc.pool.size"]
    assert [p.message for p in error.problems] == [
        "missing (required)", "not a valid integer",
        "not a valid boolean (true/false, yes/no, on/off, 1/0)", "not a valid integer"]
    assert "application:svc.port = 'http': not a valid integer" in str(error)


def test_a_failing_post_init_is_one_problem_naming_every_key_of_the_model():
    problems = problems_of(ModelSchema.of(Range, "r"), {"r.lo": "5", "r.hi": "3"})
    assert problems == [ValueProblem("r.lo, r.hi", "application", "lo=5, hi=3",
                                     "rejected by Range: lo must be below hi (lo=5, hi=3)")]


def test_a_nested_post_init_names_the_keys_of_the_nested_model_only():
    @dataclass
    class Holder:
        name: str
        span: Range

    problems = problems_of(ModelSchema.of(Holder, ""), {"name": "n", "span.lo": "2", "span.hi": "1"})
    assert [p.key for p in problems] == ["span.lo, span.hi"]


def test_secrets_never_appear_in_problems_or_the_message():
    values = {"db.password": "hunter2", "db.url": "mysql://u:hunter2@h/db"}
    with pytest.raises(InvalidValuesError) as caught:
        ModelSchema.of(BadSecrets, "db").build(values.get)
    error = caught.value
    assert error.problems == [
        ValueProblem("db.password", "application", "****", "not a valid integer"),
        ValueProblem("db.url", "application", "mysql://u:****@h/db", "not a valid integer")]
    shown = str(error) + repr(error.problems) + "".join(traceback.format_exception(
        type(error), error, error.__traceback__))
    assert "hunter2" not in shown
    assert error.__context__ is None and error.__cause__ is None


def test_a_post_init_message_quoting_a_secret_is_scrubbed():
    values = {"db.password": "hunter2", "db.url": "mysql://u:hunter2@h/db"}
    with pytest.raises(InvalidValuesError) as caught:
        ModelSchema.of(Db, "db").build(values.get)
    error = caught.value
    assert error.problems == [ValueProblem(
        "db.password, db.url, db.port", "application", "password=****, url=mysql://u:****@h/db",
        "rejected by Db: password '****' is too short")]
    assert "hunter2" not in str(error) + repr(error.problems)
    assert error.__context__ is None


# restart fields


RESTARTABLE = {"r.host": "a", "r.level": "1", "r.pool.size": "3", "r.frozen.size": "4"}


def test_restart_keys_are_listed_including_nested_ones():
    schema = ModelSchema.of(Restartable, "r")
    assert schema.restart_keys == ("r.host", "r.frozen.size", "r.whole.size", "r.whole.timeout")


def test_a_pinned_instance_keeps_its_restart_values_and_takes_the_others():
    schema = ModelSchema.of(Restartable, "r")
    first = schema.build(RESTARTABLE.get)
    changed = {"r.host": "b", "r.level": "2", "r.pool.size": "6", "r.frozen.size": "8", "r.frozen.name": "m",
               "r.whole.size": "7"}
    second = schema.build(changed.get, pinned=first)
    assert second == Restartable(host="a", level=2, pool=Pool(size=6), frozen=Frozen(size=4, name="m"),
                                 whole=Pool())
    assert second is not first
    unpinned = schema.build(changed.get)
    assert schema.changed_restart_keys(first, unpinned) == ["r.host", "r.frozen.size", "r.whole.size"]
    assert schema.changed_restart_keys(first, second) == []


def test_a_restart_value_is_still_validated_when_pinned():
    schema = ModelSchema.of(Restartable, "r")
    first = schema.build(RESTARTABLE.get)
    assert problems_of(schema, {**RESTARTABLE, "r.frozen.size": "big"}, pinned=first) == [
        ValueProblem("r.frozen.size", "application", "big", "not a valid integer")]


def test_pinning_re_checks_the_model_with_the_pinned_values():
    @dataclass
    class Window:
        lo: int = field(metadata={"restart": True})
        hi: int

        def __post_init__(self) -> None:
            if self.lo >= self.hi:
                raise ValueError("lo must be below hi")

    schema = ModelSchema.of(Window, "w")
    first = schema.build({"w.lo": "5", "w.hi": "9"}.get)
    assert schema.build({"w.lo": "1", "w.hi": "6"}.get, pinned=first) == Window(lo=5, hi=6)
    problems = problems_of(schema, {"w.lo": "1", "w.hi": "3"}, pinned=first)
    assert [(p.key, p.message) for p in problems] == [
        ("w.lo, w.hi", f"rejected by {Window.__qualname__}: lo must be below hi")]


def test_values_are_flat_and_typed():
    schema = ModelSchema.of(Maybe, "m")
    assert schema.values(Maybe(pool=Pool(size=2), count=None)) == {
        "m.pool.size": 2, "m.pool.timeout": 1.0, "m.count": None, "m.label": "x"}
    assert schema.values(Maybe(pool=None, count=1))["m.pool.size"] is None


# programming errors, at schema time


def test_an_unsupported_type_is_a_type_error_naming_the_field():
    with pytest.raises(TypeError, match=r"Unsupported\.callback: the type .*Callable"):
        ModelSchema.of(Unsupported)
    with pytest.raises(TypeError, match=r"TwoArgs\.thing: the type NeedsTwo"):
        ModelSchema.of(TwoArgs)


@pytest.mark.parametrize("model", [int, dict, Pool(), "Pool"])
def test_a_non_model_is_a_type_error(model):
    with pytest.raises(TypeError, match="is not a dataclass or a pydantic model"):
        ModelSchema.of(model)


def test_a_recursive_model_or_two_fields_on_one_key_are_type_errors():
    with pytest.raises(TypeError, match="Node contains itself"):
        ModelSchema.of(Node)
    with pytest.raises(TypeError, match="several fields read c.b"):
        ModelSchema.of(Clash, "c")


def test_unresolvable_annotations_are_a_type_error():
    class Local:
        pass

    @dataclass
    class UsesLocal:
        thing: Local

    with pytest.raises(TypeError, match=r"cannot resolve the type hints of .*UsesLocal \(NameError"):
        ModelSchema.of(UsesLocal)


def test_the_module_does_not_import_pydantic():
    code = "import sys, hotconf.models; assert 'pydantic' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dataclasses_work_without_pydantic_loaded(monkeypatch):
    monkeypatch.delitem(sys.modules, "pydantic", raising=False)
    assert ModelSchema.of(Range, "without").build({"without.lo": "1", "without.hi": "2"}.get) == Range(1, 2)


# property: ints


KEY = st.sampled_from(["n.a", "n.b", "n.c"])


@given(st.integers(), st.integers(), st.integers())
def test_integers_written_as_strings_are_read_back(a, b, c):
    built = ModelSchema.of(Numbers, "n").build({"n.a": str(a), "n.b": f" {b} ", "n.c": str(c)}.get)
    assert (built.a, built.b, built.c) == (a, b, c)


def _not_an_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return True
    return False


@given(KEY, st.text(st.characters(blacklist_characters="@")).filter(_not_an_integer))
def test_a_non_integer_names_exactly_its_key(key, text):
    values = {"n.a": "1", "n.b": "2", "n.c": "3", key: text}
    assert problems_of(ModelSchema.of(Numbers, "n"), values) == [
        ValueProblem(key, "application", text, "not a valid integer")]


# pydantic models


if pydantic is not None:
    from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

    class PPool(BaseModel):
        size: int = 5
        timeout: float = 1.0

    class PCache(BaseModel):
        pool: PPool
        ttl: int = 60

    class PNeeds(BaseModel):
        x: int

    class PHolder(BaseModel):
        needs: PNeeds
        note: str = ""

    class PService(BaseModel):
        name: str
        port: int
        debug: bool = False
        level: Level = Level.INFO
        cache: PCache = Field(default_factory=lambda: PCache(pool=PPool(size=9)))
        tags: List[str] = []
        ports: List[int] = []
        labels: Dict[str, int] = {}
        url: str = Field(default="", alias="db.url")
        workers: int = Field(default=2, json_schema_extra={"restart": True})
        maybe: Optional[int]

    class PSecrets(BaseModel):
        password: Literal["a", "b"]
        url: int = Field(alias="url")
        token: str = ""

        @field_validator("token")
        @classmethod
        def _token_checked(cls, value: str) -> str:
            if not value.startswith("t-"):
                raise ValueError(f"token {value} must start with t-")
            return value

    class PRange(BaseModel):
        lo: int
        hi: int

        @model_validator(mode="after")
        def _ordered(self) -> PRange:
            if self.lo >= self.hi:
                raise ValueError("lo must be below hi")
            return self

    class PFrozen(BaseModel):
        model_config = ConfigDict(frozen=True)
        size: int = Field(json_schema_extra={"restart": True})
        inner: PPool = Field(default_factory=PPool)
        name: str = "n"

    class PMixed(BaseModel):
        pool: Pool  # a dataclass inside a pydantic model
        tags: List[str] = []

    @dataclass
    class DMixed:
        pool: PPool  # a pydantic model inside a dataclass
        name: str = "d"


@pytest.fixture
def need_pydantic():
    pytest.importorskip("pydantic")


P_SERVICE = {"svc.name": "api", "svc.port": "8080"}


def test_pydantic_keys_use_the_prefix_aliases_and_nesting(need_pydantic):
    schema = ModelSchema.of(PService, "svc")
    assert ModelSchema.of(PService, "svc.") is schema and schema.prefix == "svc."
    assert schema.keys == ("svc.name", "svc.port", "svc.debug", "svc.level", "svc.cache.pool.size",
                           "svc.cache.pool.timeout", "svc.cache.ttl", "svc.tags", "svc.ports",
                           "svc.labels", "svc.db.url", "svc.workers", "svc.maybe")
    assert schema.restart_keys == ("svc.workers",)


def test_pydantic_builds_from_the_raw_strings(need_pydantic):
    values = {**P_SERVICE, "svc.debug": "yes", "svc.level": "debug", "svc.cache.pool.size": "3",
              "svc.tags": "a, b,,", "svc.ports": "[80, 443]", "svc.labels": '{"x": "1"}',
              "svc.db.url": "mysql://h/db", "svc.maybe": "4"}
    built = ModelSchema.of(PService, "svc").build(values.get)
    assert type(built) is PService
    assert built.model_dump(by_alias=True) == {
        "name": "api", "port": 8080, "debug": True, "level": Level.DEBUG,
        "cache": {"pool": {"size": 3, "timeout": 1.0}, "ttl": 60}, "tags": ["a", "b"],
        "ports": [80, 443], "labels": {"x": 1}, "db.url": "mysql://h/db", "workers": 2, "maybe": 4}


def test_pydantic_defaults_optional_and_nested_defaults(need_pydantic):
    built = ModelSchema.of(PService, "svc").build(P_SERVICE.get)
    assert built.maybe is None and built.tags == [] and built.workers == 2
    assert built.cache == PCache(pool=PPool(size=9))  # the field's default, used whole


def test_pydantic_reports_every_bad_key_with_its_full_key(need_pydantic):
    values = {"svc.port": "http", "svc.level": "loud", "svc.cache.pool.size": "big",
              "svc.ports": "80,x", "svc.labels": "{", "svc.maybe": ""}
    problems = problems_of(ModelSchema.of(PService, "svc"), values)
    assert [(p.key, p.value) for p in problems] == [
        ("svc.name", None), ("svc.port", "http"), ("svc.level", "loud"), ("svc.cache.pool.size", "big"),
        ("svc.ports", "80,x"), ("svc.labels", "{"), ("svc.maybe", "")]
    messages = {p.key: p.message for p in problems}
    assert messages["svc.name"] == "missing (required)"
    assert messages["svc.port"].startswith("Input should be a valid integer")
    assert messages["svc.ports"].startswith("item 2: Input should be a valid integer")
    assert messages["svc.labels"].startswith("not valid JSON (")
    assert messages["svc.level"] == "Input should be 'debug' or 'info'"


def test_pydantic_nested_model_without_a_default_names_its_missing_keys(need_pydantic):
    assert problems_of(ModelSchema.of(PHolder, "h"), {"h.note": "n"}) == [
        ValueProblem("h.needs.x", "application", None, "missing (required)")]
    # PPool's fields all have defaults: a required pool with none of its keys set is valid
    assert ModelSchema.of(PCache, "c").build({"c.ttl": "1"}.get) == PCache(pool=PPool(), ttl=1)


def test_pydantic_secrets_are_masked_even_when_a_message_would_quote_them(need_pydantic):
    values = {"db.password": "hunter2", "db.url": "mysql://u:hunter2@h/db", "db.token": "xhunter2"}
    with pytest.raises(InvalidValuesError) as caught:
        ModelSchema.of(PSecrets, "db").build(values.get)
    error = caught.value
    assert [(p.key, p.value) for p in error.problems] == [
        ("db.password", "****"), ("db.url", "mysql://u:****@h/db"), ("db.token", "****")]
    assert error.problems[2].message == "Value error, token **** must start with t-"
    shown = str(error) + repr(error.problems) + "".join(traceback.format_exception(
        type(error), error, error.__traceback__))
    assert "hunter2" not in shown
    assert error.__context__ is None and error.__cause__ is None


def test_a_pydantic_model_validator_is_one_problem_naming_every_key(need_pydantic):
    problems = problems_of(ModelSchema.of(PRange, "r"), {"r.lo": "5", "r.hi": "3"})
    assert problems == [ValueProblem("r.lo, r.hi", "application", "lo=5, hi=3",
                                     "rejected by PRange: Value error, lo must be below hi")]


def test_a_frozen_pydantic_model_is_built_and_pinned(need_pydantic):
    schema = ModelSchema.of(PFrozen, "f")
    first = schema.build({"f.size": "1", "f.inner.size": "2"}.get)
    second = schema.build({"f.size": "7", "f.inner.size": "3", "f.name": "m"}.get, pinned=first)
    assert second == PFrozen(size=1, inner=PPool(size=3), name="m")
    assert schema.changed_restart_keys(first, schema.build({"f.size": "7"}.get)) == ["f.size"]
    assert problems_of(schema, {"f.size": "x"}, pinned=first)[0].key == "f.size"


def test_pydantic_restart_pinning_keeps_values_and_validates_new_ones(need_pydantic):
    schema = ModelSchema.of(PService, "svc")
    first = schema.build({**P_SERVICE, "svc.workers": "4"}.get)
    second = schema.build({**P_SERVICE, "svc.workers": "8", "svc.port": "81"}.get, pinned=first)
    assert (second.workers, second.port) == (4, 81)
    assert schema.values(second)["svc.workers"] == 4
    assert [p.key for p in problems_of(schema, {**P_SERVICE, "svc.workers": "many"}, pinned=first)] == [
        "svc.workers"]


def test_a_dataclass_inside_pydantic_and_pydantic_inside_a_dataclass(need_pydantic):
    mixed = ModelSchema.of(PMixed, "m")
    built = mixed.build({"m.pool.size": "3", "m.tags": "a,b"}.get)
    assert built == PMixed(pool=Pool(size=3), tags=["a", "b"])
    assert [p.key for p in problems_of(mixed, {"m.pool.size": "x"})] == ["m.pool.size"]
    reverse = ModelSchema.of(DMixed, "d")
    assert reverse.build({"d.pool.size": "4"}.get) == DMixed(pool=PPool(size=4))
    assert [p.key for p in problems_of(reverse, {"d.pool.size": "x", "d.name": "n"})] == ["d.pool.size"]
