import pytest

from hotconf.errors import FormatError
from hotconf.formats import Format, flatten, format_of, parse_content, resolve_path


@pytest.mark.parametrize("name,fmt", [
    ("application", Format.PROPERTIES), ("app.properties", Format.PROPERTIES),
    ("db.yaml", Format.YAML), ("DB.YML", Format.YML), ("x.json", Format.JSON),
    ("x.xml", Format.XML), ("notes.txt", Format.TXT), ("team.shared", Format.PROPERTIES),
])
def test_format_by_suffix(name, fmt):
    assert format_of(name) is fmt


def test_yaml_is_parsed_and_flattened():
    content, parsed, values = parse_content(
        Format.YAML, {"content": "db:\n  url: pg://x\n  pool: 5\n  ssl: true\nhosts: [a, b]\n"})
    assert parsed["db"]["pool"] == 5
    assert values == {"db.url": "pg://x", "db.pool": "5", "db.ssl": "true",
                      "hosts[0]": "a", "hosts[1]": "b"}


def test_json_is_parsed_and_flattened():
    _, parsed, values = parse_content(Format.JSON, {"content": '{"a": {"b": [1, 2.5, null]}}'})
    assert values == {"a.b[0]": "1", "a.b[1]": "2.5", "a.b[2]": ""}
    assert resolve_path(parsed, "a.b[1]") == 2.5
    assert resolve_path(parsed, "a") == {"b": [1, 2.5, None]}
    with pytest.raises(KeyError):
        resolve_path(parsed, "a.c")
    with pytest.raises(KeyError):
        resolve_path(parsed, "a.b[9]")


def test_xml_and_txt_are_text():
    assert parse_content(Format.XML, {"content": "<a/>"}) == ("<a/>", None, {"content": "<a/>"})


def test_properties_are_flat_already():
    assert parse_content(Format.PROPERTIES, {"k": "v"}) == (None, None, {"k": "v"})


@pytest.mark.parametrize("fmt,content", [(Format.JSON, "{nope"), (Format.YAML, "a: [1, 2"),
                                         (Format.YAML, "!!python/object:os.system {}")])
def test_broken_content_is_a_format_error(fmt, content):
    with pytest.raises(FormatError):
        parse_content(fmt, {"content": content})


def test_empty_structured_content_is_empty():
    assert parse_content(Format.YAML, {"content": ""}) == ("", None, {})


def test_flatten_scalar_document_and_empty_containers():
    assert flatten(5) == {"content": "5"}
    assert flatten({"a": {}, "b": []}) == {"a": "", "b": ""}
