from hotconf.apollo.notifications import NotificationState
from hotconf.apollo.responses import Notification


def test_ids_start_at_minus_one_and_only_rise():
    state = NotificationState(["application", "db.yaml"])
    assert state.ids() == [("application", -1), ("db.yaml", -1)]
    state.advance("application", Notification("application", 100, {"a+default+application": 100}))
    assert state.id_of("application") == 100
    state.advance("application", Notification("application", 90))
    assert state.id_of("application") == 100


def test_properties_twin_and_case_are_matched():
    state = NotificationState(["application", "Other.properties", "db.yaml"])
    assert state.targets(Notification("application", 5)) == ["application"]
    assert state.targets(Notification("other", 5)) == ["Other.properties"]
    assert state.targets(Notification("DB.yaml", 5)) == ["db.yaml"]
    assert state.targets(Notification("unknown", 5)) == []


def test_both_spellings_configured_are_both_targets():
    state = NotificationState(["application", "application.properties"])
    assert state.targets(Notification("application", 5)) == ["application", "application.properties"]


def test_messages_merge_keeps_larger_ids():
    state = NotificationState(["application"])
    state.advance("application", Notification("application", 10, {"a+default+application": 10,
                                                                   "a+dc+application": 3}))
    merged = state.pending_messages("application",
                                    Notification("application", 12, {"a+dc+application": 12,
                                                                     "a+default+application": 2}))
    assert merged == {"a+default+application": 10, "a+dc+application": 12}


def test_reset_goes_back_to_placeholder():
    state = NotificationState(["application"])
    state.advance("application", Notification("application", 10, {"k": 10}))
    state.reset()
    assert state.ids() == [("application", -1)] and state.messages_of("application") == {}
