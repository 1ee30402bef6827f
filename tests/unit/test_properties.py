from hypothesis import given
from hypothesis import strategies as st

from hotconf.devserver.properties import format_properties, parse_properties


def test_java_properties_basics():
    text = ("# comment\n! also\n\nkey=value\nspaced : v2\nnosep\nmulti = a\\\n    b\n"
            "esc=tab\\there\\u00e9\n")
    assert parse_properties(text) == {"key": "value", "spaced": "v2", "nosep": "",
                                      "multi": "ab", "esc": "tab\there\u00e9"}


@given(st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda s: s.strip(" \t\f") == s),
                       st.text(max_size=20), max_size=8))
def test_round_trip(values):
    assert parse_properties(format_properties(values)) == values
