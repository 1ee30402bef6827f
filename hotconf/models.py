"""Typed models over config keys (pure): the part of ``cfg.bind(Model, prefix="svc")`` that reads
a model's fields once and then turns a key lookup into a validated instance.

The mapping rules, and why they are what they are:

- A field reads ``prefix + key``, where ``key`` is the field's name, or its explicit key
  (dataclass ``field(metadata={"key": "db.url"})``, pydantic ``Field(alias="db.url")``). The
  explicit key is relative to the prefix like a name is, so one model can be bound under two
  prefixes (two pools, two tenants) without rewriting its keys. ``prefix="svc"`` and
  ``prefix="svc."`` are the same: people write both, and a doubled or missing dot would silently
  read nothing.
- A nested model (a field typed as a dataclass or pydantic model) reads dotted sub-keys,
  ``svc.pool.size``, to any depth: Apollo namespaces are flat and dots are how keys are already
  grouped. A nested model with a default is used whole while none of its keys is set (the
  default was chosen as a unit); once any of them is set the nested model is read from its keys
  as a whole, so a half-written group fails loudly instead of quietly mixing with the default.
- A missing key takes the field's default; an ``Optional`` field without a default takes None
  (for pydantic models too: a flat key cannot hold "None"). An empty string is a value, not a
  missing key, as in Apollo: ``""`` for an ``int`` field is an error.
- Lists, tuples and sets are JSON arrays when the text starts with ``[`` (so items may hold
  commas), otherwise comma-separated with items stripped and empty items dropped (what people
  type in a console). Dicts are JSON objects.
- Every bad key of the model is reported at once (``InvalidValuesError.problems``): a release
  is fixed in one round, not one key per round. Values in problems are masked, and messages
  never quote a value: they say what was wanted. A check of the whole model (a dataclass's
  ``__post_init__``, a pydantic model validator) is one problem naming every key of that model,
  its message scrubbed of the model's secret values.
- Restart fields (``metadata={"restart": True}``, pydantic ``json_schema_extra={"restart": True}``)
  are still validated on every release, but an instance built with ``pinned=`` keeps the pinned
  values: those settings only take effect when the process restarts. A restart field that is a
  nested model pins the whole model. A nested model that appears or disappears (an ``Optional``
  model) while it holds restart keys keeps its pinned value whole.
- pydantic models are validated by pydantic, with its own coercions and validators; this module
  only arranges the raw strings (by alias) and maps pydantic's error locations back to keys.
  pydantic is never imported here: a class is a pydantic model only if pydantic is already
  loaded.
- A model is read once (``ModelSchema.of``): type hints are resolved and converters chosen there,
  so a type that cannot be read from a string is a ``TypeError`` at bind time, and ``build`` is
  a plain loop.
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import datetime
import decimal
import enum
import inspect
import json
import sys
import types
import typing
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from . import typed
from .errors import InvalidValuesError, ValueProblem
from .masking import mask, mask_text, mask_values_in

Lookup = Callable[[str], Optional[str]]
Converter = Callable[[str], Any]
JsonConverter = Callable[[Any], Any]

REQUIRED = "missing (required)"

_DEFAULT = object()  # a field left to its default
_FAILED = object()  # a model that did not build (its problems are recorded)
_NOTHING = object()

_UNIONS: Tuple[Any, ...] = (typing.Union,) + ((types.UnionType,) if hasattr(types, "UnionType") else ())
_SEQUENCES: Dict[Any, type] = {
    list: list, tuple: tuple, set: set, frozenset: frozenset, abc.Sequence: list,
    abc.MutableSequence: list, abc.Set: frozenset, abc.MutableSet: set,
}
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)
# user:password@host; the password may itself hold '@' (as in masking)


class _Invalid(Exception):
    """A value that does not convert; the message says what was wanted, never the value."""


class _Field(NamedTuple):
    attr: str  # the attribute / constructor argument
    key: str  # the full key; for a nested model, its keys' prefix without the dot
    data_key: str  # what pydantic validates it under (alias or name)
    restart: bool
    has_default: bool
    optional: bool  # missing without a default means None
    convert: Optional[Converter]  # a leaf built here (dataclass)
    prepare: Optional[Converter]  # a leaf validated by pydantic: text -> list / dict
    nested: Optional[ModelSchema]


class ModelSchema:
    """One model bound under one prefix: its keys, and how to build it from them."""

    model: type
    name: str
    namespace: str
    prefix: str
    keys: Tuple[str, ...]
    restart_keys: Tuple[str, ...]

    def __init__(self, model: type, prefix: str, namespace: str, fields: Sequence[_Field]):
        self.model, self.name, self.namespace, self.prefix = model, model.__qualname__, namespace, prefix
        self._fields = tuple(fields)
        self._pydantic = _is_pydantic(model)
        self._by_data_key = {f.data_key: f for f in self._fields}
        self._pinned_fields = tuple(f for f in self._fields
                                    if f.restart or (f.nested is not None and f.nested.restart_keys))
        self.keys = tuple(k for f in self._fields for k in _field_keys(f))
        self.restart_keys = tuple(k for f in self._fields for k in _field_restart_keys(f))
        self._order = {key: i for i, key in enumerate(self.keys)}
        duplicated = sorted({k for k in self.keys if self.keys.count(k) > 1})
        if duplicated:
            raise TypeError(f"{self.name}: several fields read {', '.join(duplicated)}; give them "
                            f"distinct keys")

    @classmethod
    def of(cls, model: type, prefix: Optional[str] = None, namespace: str = "application") -> ModelSchema:
        """The schema of ``model`` (a dataclass or a pydantic model) under ``prefix``; cached.
        Raises TypeError for a model or a field type that cannot be read from config strings."""
        return _schema(model, _normalise(prefix), namespace, False, ())

    def build(self, lookup: Lookup, pinned: Optional[object] = None) -> Any:
        """A fresh, validated instance from ``lookup(full_key)`` (a string, None if missing).
        With ``pinned`` (an earlier instance), restart fields keep pinned's values once their
        looked-up values are validated. Raises InvalidValuesError naming every bad key."""
        problems: List[ValueProblem] = []
        instance = self._make(lookup, problems)
        if pinned is not None and not problems and self._pinned_fields:
            if not isinstance(pinned, self.model):
                raise TypeError(f"pinned is a {type(pinned).__qualname__}, not a {self.name}")
            instance = self._pin(instance, pinned, lookup, problems)
        if problems:
            raise InvalidValuesError(self.name, self._finish(problems, lookup))
        return instance

    def changed_restart_keys(self, old: object, new_lookup_instance: object) -> List[str]:
        """The restart keys whose values differ between two instances of the model (a pinned one
        and one built without ``pinned``: what a restart would change)."""
        before, after = self.values(old), self.values(new_lookup_instance)
        return [key for key in self.restart_keys if before.get(key) != after.get(key)]

    def values(self, instance: object) -> Dict[str, object]:
        """``{full_key: typed value}`` of an instance (None under a nested model that is None)."""
        out: Dict[str, object] = {}
        self._values_into(instance, out)
        return out

    def __repr__(self) -> str:
        return f"ModelSchema({self.name}, prefix={self.prefix!r}, namespace={self.namespace!r})"

    # building

    def _make(self, lookup: Lookup, problems: List[ValueProblem]) -> Any:
        if self._pydantic:
            return self._make_pydantic(lookup, problems)
        return self._make_dataclass(lookup, problems)

    def _make_dataclass(self, lookup: Lookup, problems: List[ValueProblem]) -> Any:
        before = len(problems)
        kwargs: Dict[str, Any] = {}
        for f in self._fields:
            if f.nested is not None:
                value = self._nested(f, lookup, problems)
                if value is not _DEFAULT:
                    kwargs[f.attr] = value
                continue
            raw = lookup(f.key)
            if raw is None:
                if not f.has_default:
                    if f.optional:
                        kwargs[f.attr] = None
                    else:
                        problems.append(ValueProblem(f.key, self.namespace, None, REQUIRED))
                continue
            try:
                kwargs[f.attr] = f.convert(raw)  # type: ignore[misc]  # a dataclass leaf has one
            except _Invalid as exc:
                problems.append(ValueProblem(f.key, self.namespace, mask(f.key, raw), str(exc)))
        if len(problems) > before:
            return _FAILED
        return self._construct(self.model, kwargs, lookup, problems)

    def _nested(self, f: _Field, lookup: Lookup, problems: List[ValueProblem]) -> Any:
        nested = f.nested
        assert nested is not None
        if (f.has_default or f.optional) and not nested._any_present(lookup):
            return _DEFAULT if f.has_default else None
        return nested._make(lookup, problems)

    def _construct(self, make: Callable[..., Any], kwargs: Dict[str, Any], lookup: Lookup,
                   problems: List[ValueProblem]) -> Any:
        try:
            return make(**kwargs)
        except Exception as exc:  # noqa: BLE001 - an assert or a KeyError in a check rejects too
            message = (str(exc) if isinstance(exc, (ValueError, TypeError)) else
                       f"{type(exc).__name__}: {exc}") or type(exc).__name__
        # recorded outside the except block: no chain carrying the model's values
        problems.append(self._model_problem(lookup, message))
        return _FAILED

    def _model_problem(self, lookup: Lookup, message: str) -> ValueProblem:
        """One problem naming every key of this model: a check of the model as a whole failed."""
        shown = [f"{key[len(self.prefix):]}={mask(key, raw)}" for key, raw in _present(self.keys, lookup)]
        return ValueProblem(", ".join(self.keys), self.namespace, ", ".join(shown) or None,
                            f"rejected by {self.name}: {mask_text(message)}")

    def _any_present(self, lookup: Lookup) -> bool:
        return any(lookup(key) is not None for key in self.keys)

    # pydantic

    def _make_pydantic(self, lookup: Lookup, problems: List[ValueProblem]) -> Any:
        before = len(problems)
        data = self._data(lookup, problems)
        prepared = {p.key for p in problems[before:]}  # reported better than pydantic would
        errors: Optional[List[Any]] = None
        try:
            instance = self.model.model_validate(data)  # type: ignore[attr-defined]
        except sys.modules["pydantic"].ValidationError as exc:
            errors = exc.errors()
        except Exception as exc:  # noqa: BLE001 - pydantic lets a validator's TypeError (and
            # anything but ValueError and AssertionError) through: a refusal all the same
            errors = [{"loc": (), "msg": str(exc) if isinstance(exc, TypeError) else
                       f"{type(exc).__name__}: {exc}", "type": "type_error"}]
        if errors is None:
            return instance if len(problems) == before else _FAILED
        problems.extend(self._problems_of(errors, lookup, prepared))
        return _FAILED

    def _data(self, lookup: Lookup, problems: List[ValueProblem]) -> Dict[str, Any]:
        """The raw strings of the keys that are set, nested by alias, for pydantic."""
        data: Dict[str, Any] = {}
        for f in self._fields:
            if f.nested is not None:
                if (f.has_default or f.optional) and not f.nested._any_present(lookup):
                    if not f.has_default:
                        data[f.data_key] = None
                    continue
                data[f.data_key] = f.nested._data(lookup, problems)
                continue
            raw = lookup(f.key)
            if raw is None:
                if f.optional and not f.has_default:
                    data[f.data_key] = None
                continue
            data[f.data_key] = raw
            if f.prepare is not None:
                try:
                    data[f.data_key] = f.prepare(raw)
                except _Invalid as exc:
                    problems.append(ValueProblem(f.key, self.namespace, mask(f.key, raw), str(exc)))
        return data

    def _problems_of(self, errors: Iterable[Any], lookup: Lookup, skip: Iterable[str]) -> List[ValueProblem]:
        """pydantic's errors as problems: one per key (messages joined), one per failing model."""
        messages: Dict[Tuple[str, Optional[ModelSchema]], List[str]] = {}
        missing = set()
        for error in errors:
            schema, f, rest = self._locate(tuple(error.get("loc", ())))
            kind = str(error.get("type", ""))
            text = str(error.get("msg") or kind)
            if f is None:
                messages.setdefault(("", schema), []).append(text)
                continue
            if kind == "missing" and not rest:
                missing.add(f.key)
                text = REQUIRED
            messages.setdefault((f.key, None), []).append(_at(rest) + text)
        out = []
        for (key, failed), texts in messages.items():
            if failed is not None:
                out.append(failed._model_problem(lookup, "; ".join(texts)))
            elif key not in skip:
                value = None if key in missing else mask(key, lookup(key))
                out.append(ValueProblem(key, self.namespace, value, "; ".join(texts)))
        return out

    def _locate(self, loc: Tuple[Any, ...]) -> Tuple[ModelSchema, Optional[_Field], Tuple[Any, ...]]:
        """The field an error location points at (and what is left of it: a list index...), or
        the model it stops at."""
        schema: ModelSchema = self
        for i, part in enumerate(loc):
            f = schema._by_data_key.get(part) if isinstance(part, str) else None
            if f is None:
                break
            if f.nested is None:
                return schema, f, loc[i + 1:]
            schema = f.nested
        return schema, None, ()

    # restart fields

    def _pin(self, instance: Any, pinned: Any, lookup: Lookup, problems: List[ValueProblem]) -> Any:
        changes: Dict[str, Any] = {}
        for f in self._pinned_fields:
            new, old = getattr(instance, f.attr), getattr(pinned, f.attr)
            if f.nested is None:
                if new != old:
                    changes[f.attr] = old
            elif f.restart or new is None or old is None:
                if f.nested.values(new) != f.nested.values(old):
                    changes[f.attr] = old
            else:
                kept = f.nested._pin(new, old, lookup, problems)
                if kept is _FAILED:
                    return _FAILED
                if kept is not new:
                    changes[f.attr] = kept
        if not changes:
            return instance
        if self._pydantic:
            return instance.model_copy(update=changes)
        return self._construct(lambda **kw: dataclasses.replace(instance, **kw), changes, lookup, problems)

    def _values_into(self, instance: Any, out: Dict[str, object]) -> None:
        for f in self._fields:
            value = None if instance is None else getattr(instance, f.attr)
            if f.nested is None:
                out[f.key] = value
            else:
                f.nested._values_into(value, out)

    def _finish(self, problems: List[ValueProblem], lookup: Lookup) -> List[ValueProblem]:
        """Problems in key order, their messages scrubbed of the model's secret values."""
        present = _present(self.keys, lookup)
        problems = [p._replace(message=mask_values_in(p.message, present)) for p in problems]
        return sorted(problems, key=lambda p: self._order.get(p.key, len(self._order)))


# reading a model


def _normalise(prefix: Optional[str]) -> str:
    prefix = (prefix or "").rstrip(".")
    return prefix + "." if prefix else ""


_CACHE: Dict[Tuple[type, str, str, bool], ModelSchema] = {}


def _schema(model: Any, prefix: str, namespace: str, in_pydantic: bool,
            enclosing: Tuple[type, ...]) -> ModelSchema:
    """``in_pydantic``: the model sits inside a pydantic model, which validates it."""
    if not isinstance(model, type):
        raise TypeError(f"{model!r} is not a dataclass or a pydantic model; bind one of them")
    pydantic_model = _is_pydantic(model)
    cache_key = (model, prefix, namespace, in_pydantic or pydantic_model)
    cached = _CACHE.get(cache_key)
    if cached is not None:
        return cached
    if model in enclosing:
        raise TypeError(f"{model.__qualname__} contains itself; a recursive model cannot be read from "
                        f"flat keys")
    enclosing += (model,)
    if pydantic_model:
        fields = _pydantic_fields(model, prefix, namespace, enclosing)
    elif dataclasses.is_dataclass(model):
        fields = _dataclass_fields(model, prefix, namespace, in_pydantic, enclosing)
    else:
        raise TypeError(f"{model!r} is not a dataclass or a pydantic model; bind one of them")
    schema = ModelSchema(model, prefix, namespace, fields)
    _CACHE[cache_key] = schema
    return schema


def _dataclass_fields(model: type, prefix: str, namespace: str, in_pydantic: bool,
                      enclosing: Tuple[type, ...]) -> List[_Field]:
    hints = _hints(model)
    fields = []
    for f in dataclasses.fields(model):
        if not f.init:
            continue
        where = f"{model.__qualname__}.{f.name}"
        name = f.metadata.get("key", f.name)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{where}: metadata key={name!r} is not a key")
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        fields.append(_field(where, f.name, name, f.name, hints.get(f.name, f.type), has_default,
                             bool(f.metadata.get("restart", False)), prefix, namespace, in_pydantic,
                             enclosing))
    return fields


def _pydantic_fields(model: Any, prefix: str, namespace: str, enclosing: Tuple[type, ...]) -> List[_Field]:
    if not getattr(model, "__pydantic_complete__", True):
        try:
            model.model_rebuild()
        except Exception as exc:  # pydantic's own error types: reported as a programming error
            problem = str(exc)
        else:
            problem = ""
        if problem:
            raise TypeError(f"{model.__qualname__} is not fully defined: {problem}")
    fields = []
    for attr, info in model.model_fields.items():
        where = f"{model.__qualname__}.{attr}"
        alias = info.validation_alias
        if alias is not None and not isinstance(alias, str):
            raise TypeError(f"{where}: validation_alias={alias!r} is not supported; use alias='the.key'")
        name = alias or info.alias or attr
        extra = info.json_schema_extra
        restart = isinstance(extra, dict) and bool(extra.get("restart", False))
        fields.append(_field(where, attr, name, name, info.annotation, not info.is_required(), restart,
                             prefix, namespace, True, enclosing))
    return fields


def _field(where: str, attr: str, name: str, data_key: str, hint: Any, has_default: bool, restart: bool,
           prefix: str, namespace: str, in_pydantic: bool, enclosing: Tuple[type, ...]) -> _Field:
    members, optional = _split_optional(hint)
    key = prefix + name
    if len(members) == 1 and _is_model(members[0]):
        nested = _schema(members[0], key + ".", namespace, in_pydantic, enclosing)
        return _Field(attr, key, data_key, restart, has_default, optional, None, None, nested)
    if len(members) > 1 and any(_is_model(m) for m in members):
        raise TypeError(f"{where}: a union of models ({_name(hint)}) cannot be read from keys")
    if in_pydantic:
        return _Field(attr, key, data_key, restart, has_default, optional, None, _preparer(members), None)
    return _Field(attr, key, data_key, restart, has_default, optional, _converter_of(members, where),
                  None, None)


def _hints(model: type) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(model)
    except Exception as exc:  # NameError, TypeError...: whatever the annotations raise
        problem = f"{type(exc).__name__}: {exc}"
    raise TypeError(f"cannot resolve the type hints of {model.__qualname__} ({problem}); the types "
                    f"it names must be importable from its module")


def _is_pydantic(tp: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and (dataclasses.is_dataclass(tp) or _is_pydantic(tp))


def _split_optional(hint: Any) -> Tuple[Tuple[Any, ...], bool]:
    """``Optional[X]`` -> ((X,), True); ``Union[A, B]`` -> ((A, B), False); ``X`` -> ((X,), False)."""
    if typing.get_origin(hint) not in _UNIONS:
        return (hint,), False
    args = typing.get_args(hint)
    members = tuple(a for a in args if a is not type(None))
    return members, len(members) < len(args)


def _name(tp: Any) -> str:
    return tp.__qualname__ if isinstance(tp, type) else repr(tp)


# converters: text -> value, raising _Invalid


def _text(text: str) -> str:
    return text


def _same(value: Any) -> Any:
    return value


def _checked(wanted: str, function: Callable[[str], Any]) -> Converter:
    message = f"not a valid {wanted}"

    def convert(text: str) -> Any:
        try:
            return function(text)
        except (ValueError, TypeError, ArithmeticError):  # Decimal raises InvalidOperation
            pass
        raise _Invalid(message)  # outside the except block: no chain quoting the value

    return convert


def _choice(table: Dict[str, Any], shown: Iterable[str]) -> Converter:
    message = f"not one of: {', '.join(shown)}"

    def convert(text: str) -> Any:
        value = table.get(text.strip(), _NOTHING)
        if value is _NOTHING:
            raise _Invalid(message)
        return value

    return convert


def _union(converters: Sequence[Converter]) -> Converter:
    """The first member type the text converts to, in the order the union names them."""

    def convert(text: str) -> Any:
        messages = []
        for converter in converters:
            try:
                return converter(text)
            except _Invalid as exc:
                messages.append(str(exc))
        raise _Invalid(" or ".join(messages))

    return convert


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:  # json's messages give a position, never the text
        problem = str(exc)
    raise _Invalid(f"not valid JSON ({problem})")


def _items(text: str) -> List[Any]:
    """A JSON array if the text starts with '[', else comma-separated items, stripped."""
    if text.lstrip().startswith("["):
        items = _json(text)
        if not isinstance(items, list):
            raise _Invalid("not a JSON array")
        return items
    return [item.strip() for item in text.split(",") if item.strip()]


def _object(text: str) -> Dict[str, Any]:
    data = _json(text)
    if not isinstance(data, dict):
        raise _Invalid("not a JSON object")
    return data


def _sequence(kind: type, args: Tuple[Any, ...], where: str) -> Converter:
    if kind is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        return _fixed_tuple([_item_converter(a, where) for a in args])
    item = _item_converter(args[0] if args else Any, where)

    def convert(text: str) -> Any:
        values = _items(text)
        out = _each(values, [item] * len(values))
        return out if kind is list else _collect(kind, out)

    return convert


def _each(values: List[Any], converters: Sequence[JsonConverter]) -> List[Any]:
    """Each value through its converter; the first that fails names its item (1-based)."""
    out = []
    for i, (convert, value) in enumerate(zip(converters, values), 1):
        try:
            out.append(convert(value))
        except _Invalid as exc:
            problem = f"item {i}: {exc}"
            break
    else:
        return out
    raise _Invalid(problem)


def _collect(kind: type, items: List[Any]) -> Any:
    try:
        return kind(items)
    except TypeError:  # unhashable items in a set
        pass
    raise _Invalid(f"not a valid {kind.__name__} (items must be hashable)")


def _fixed_tuple(items: Sequence[JsonConverter]) -> Converter:
    def convert(text: str) -> Any:
        values = _items(text)
        if len(values) != len(items):
            raise _Invalid(f"expected {len(items)} items, got {len(values)}")
        return tuple(_each(values, items))

    return convert


def _mapping(args: Tuple[Any, ...], where: str) -> Converter:
    key = _item_converter(args[0] if args else str, where)
    value = _item_converter(args[1] if len(args) > 1 else Any, where)

    def convert(text: str) -> Any:
        out = {}
        for name, item in _object(text).items():
            try:
                out[key(name)] = value(item)
            except _Invalid as exc:
                problem = f"entry {name!r}: {exc}"
                break
        else:
            return out
        raise _Invalid(problem)

    return convert


def _item_converter(hint: Any, where: str) -> JsonConverter:
    """Converts an item: a string (a comma-separated item, a JSON string) or another JSON value,
    which is read from its JSON text (``[1, 2]`` for ``List[int]``), or kept for ``Any``."""
    members, optional = _split_optional(hint)
    if members[0] in (Any, object) and len(members) == 1:
        return _same
    text = _converter_of(members, where)

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            return text(value)
        if value is None and optional:
            return None
        return text(json.dumps(value))

    return convert


def _converter_of(members: Tuple[Any, ...], where: str) -> Converter:
    if len(members) == 1:
        return _converter(members[0], where)
    return _union([_converter(m, where) for m in members])


_BOOLEAN = typed.BOOLEAN[0]
_SIMPLE: Dict[Any, Converter] = {
    str: _text,
    Any: _text,
    object: _text,
    bool: _checked(_BOOLEAN, typed.to_bool),
    int: _checked("integer", int),
    float: _checked("number", float),
    decimal.Decimal: _checked("decimal number", lambda text: decimal.Decimal(text.strip())),
    datetime.timedelta: _checked("duration in seconds",
                                 lambda text: datetime.timedelta(seconds=float(text))),
    datetime.datetime: _checked("ISO 8601 date and time",
                                lambda text: datetime.datetime.fromisoformat(text.strip())),
    datetime.date: _checked("ISO 8601 date", lambda t: datetime.date.fromisoformat(t.strip())),
    datetime.time: _checked("ISO 8601 time", lambda t: datetime.time.fromisoformat(t.strip())),
    bytes: lambda text: text.encode("utf-8"),
}


def _converter(hint: Any, where: str) -> Converter:
    """How a field of this type is read from its text; TypeError if it cannot be."""
    simple = _SIMPLE.get(hint) if _hashable(hint) else None
    if simple is not None:
        return simple
    supertype = getattr(hint, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _converter(supertype, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in _UNIONS:
        members, optional = _split_optional(hint)
        if optional:
            raise TypeError(f"{where}: None inside {hint!r} cannot be read from text")
        return _converter_of(members, where)
    if origin is typing.Literal:
        return _choice({str(_plain(v)): v for v in args}, [str(_plain(v)) for v in args])
    kind = origin if origin is not None else hint
    if _hashable(kind) and kind in _SEQUENCES:
        return _sequence(_SEQUENCES[kind], args, where)
    if kind in _MAPPINGS:
        return _mapping(args, where)
    if origin is None and isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return _enum(hint)
        if not _is_model(hint) and not inspect.isabstract(hint) and _takes_one_string(hint):
            return _checked(hint.__qualname__, hint)
    if _is_model(hint):
        raise TypeError(f"{where}: a model inside {hint!r} cannot be read from keys; nest it as a "
                        f"field of its own")
    raise TypeError(f"{where}: the type {_name(hint)} cannot be read from a config string; use str, "
                    f"int, float, bool, Decimal, timedelta, an Enum, a Literal, a list/tuple/set/dict "
                    f"of those, a nested model, or a class built from one string")


def _enum(cls: Any) -> Converter:
    table = dict(cls.__members__)  # by name, including aliases...
    table.update({str(member.value): member for member in cls})  # ...but by value first
    return _choice(table, [str(member.value) for member in cls])


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _takes_one_string(cls: type) -> bool:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # a builtin without a signature: tried when built
        return True
    try:
        signature.bind("text")
    except TypeError:
        return False
    return True


def _preparer(members: Tuple[Any, ...]) -> Optional[Converter]:
    """For pydantic: a list-typed field written comma-separated or as JSON becomes a list, a
    dict-typed field's JSON a dict; everything else goes to pydantic as the raw string."""
    if len(members) != 1:
        return None
    kind = typing.get_origin(members[0]) or members[0]
    if _hashable(kind) and kind in _SEQUENCES:
        return _items
    if kind in _MAPPINGS:
        return _object
    return None


# keys and secrets


def _field_keys(f: _Field) -> Tuple[str, ...]:
    return (f.key,) if f.nested is None else f.nested.keys


def _field_restart_keys(f: _Field) -> Tuple[str, ...]:
    if f.restart:
        return _field_keys(f)
    return () if f.nested is None else f.nested.restart_keys


def _at(location: Tuple[Any, ...]) -> str:
    """Where inside a value pydantic found the problem: 'item 2: ', "entry 'x': "."""
    parts = [f"item {p + 1}" if isinstance(p, int) else f"entry {p!r}" for p in location]
    return ", ".join(parts) + ": " if parts else ""


def _present(keys: Iterable[str], lookup: Lookup) -> List[Tuple[str, str]]:
    return [(key, raw) for key, raw in ((key, lookup(key)) for key in keys) if raw is not None]


__all__ = ["REQUIRED", "Lookup", "ModelSchema"]
