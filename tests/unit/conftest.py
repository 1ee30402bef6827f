import pytest

from tests.fakes import FakeApollo


@pytest.fixture
def apollo():
    """A fake config service (no sockets) with application published: k=v1."""
    fake = FakeApollo()
    fake.publish("application", {"k": "v1"})
    return fake
