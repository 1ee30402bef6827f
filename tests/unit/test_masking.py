"""Masking (pure): secrets never reach a message, including inside a driver's own text."""

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from hotconf.masking import MASK, mask, mask_text, mask_values_in


def test_secret_keys_and_url_passwords_are_masked():
    assert mask("db.password", "hunter2") == MASK
    assert mask("db.url", "mysql://app:pw@db/app") == f"mysql://app:{MASK}@db/app"
    assert mask("greeting", "hello") == "hello"


def test_a_drivers_message_loses_the_secrets_among_the_values():
    values = [("db.url", "mysql://app:s3cret@db/app"), ("db.password", "hunter22"),
              ("db.host", "db")]
    text = ("cannot connect to mysql://app:s3cret@db/app: access denied for 'app' using "
            f"password hunter22 (tried s3cret, {quote('s3cret')}); host db")
    masked = mask_values_in(text, values)
    assert "s3cret" not in masked and "hunter22" not in masked
    assert masked.endswith("host db")  # values of other keys stay readable


def test_a_short_secret_is_masked_as_a_word_only():
    assert mask_values_in("a pw of x, x failed", [("token", "x")]) == \
        f"a pw of {MASK}, {MASK} failed"


@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789!#%&*+-=~", min_size=3,
                      max_size=30),
       before=st.text(max_size=20), after=st.text(max_size=20))
def test_a_secret_keys_value_never_survives(secret, before, after):
    text = f"{before}{secret}{after}{quote(secret, safe='')}"
    assert secret not in mask_values_in(text, [("api.token", secret)]).replace(MASK, "\0")


def test_keyword_passwords_in_a_dsn_are_masked():
    assert mask_text("host=db password=s3cret user=app") == f"host=db password={MASK} user=app"
    assert mask_text("PWD='a b'; x") == f"PWD={MASK}; x"
