from hypothesis import given
from hypothesis import strategies as st

from hotconf.apollo import signing

# The vector from apollo-java's HmacSha1UtilsTest.
JAVA_STRING_TO_SIGN = "1576478257344\n/configs/100004458/default/application?ip=10.0.0.1"
JAVA_SECRET = "df23df3f59884980844ff3dada30fa97"
JAVA_SIGNATURE = "EoKyziXvKqzHgwx+ijDJwgVTDgE="


def test_java_reference_vector():
    assert signing.string_to_sign(1576478257344, "/configs/100004458/default/application?ip=10.0.0.1"
                                  ) == JAVA_STRING_TO_SIGN
    assert signing.signature(JAVA_SECRET, 1576478257344,
                             "/configs/100004458/default/application?ip=10.0.0.1") == JAVA_SIGNATURE


def test_headers_carry_app_id_signature_and_timestamp():
    headers = signing.auth_headers("100004458", JAVA_SECRET,
                                   "/configs/100004458/default/application?ip=10.0.0.1",
                                   timestamp_ms=1576478257344)
    assert headers == {"Authorization": f"Apollo 100004458:{JAVA_SIGNATURE}",
                       "Timestamp": "1576478257344"}


def test_signature_is_padded_standard_base64_not_hex():
    sig = signing.signature("s", 1, "/x")
    assert len(sig) == 28 and sig.endswith("=")


def test_verify_accepts_own_and_rejects_other():
    sig = signing.signature("secret", 5, "/configs/a/default/application")
    assert signing.verify("secret", 5, "/configs/a/default/application", sig)
    assert not signing.verify("secret", 6, "/configs/a/default/application", sig)
    assert not signing.verify("other", 5, "/configs/a/default/application", sig)
    assert not signing.verify("secret", 5, "/configs/a/default/application", "ünicode")


@given(st.text(min_size=1, max_size=60), st.integers(0, 2**45), st.integers(0, 59),
       st.characters(min_codepoint=33, max_codepoint=126))
def test_any_changed_byte_of_path_changes_signature(path, ts, pos, replacement):
    path = "/" + path
    pos = pos % len(path)
    if path[pos] == replacement:
        return
    changed = path[:pos] + replacement + path[pos + 1:]
    assert signing.signature("k", ts, path) != signing.signature("k", ts, changed)
