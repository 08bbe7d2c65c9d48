"""Envelope validation and subject extraction for each event the service acts on."""

import pytest

from service.intake.errors import InvalidDeliveryError
from service.intake.schemas import SUBJECT_SCHEMAS, interpret
from service.policy.conditions import TREE_EVENTS
from service.store.subjects import DEPARTMENT, GROUP
from service.store.subjects import USER as USER_KIND


def ids(subjects, kind=USER_KIND):
    """The ids of the subjects of one kind, in order."""
    return tuple(subject.id for subject in subjects if subject.kind == kind)


USER = {"id": "65a1f0c2e4b0a1b2c3d4e5f6", "userPoolId": "659f1e2d3c4b5a6978012345", "password": "hash", "salt": "s"}


@pytest.mark.parametrize("event", ["login", "register", "user:created"])
def test_user_object_events_name_the_user_in_data(event):
    """login, register and user:created carry the user as data."""
    result = interpret({"eventName": event, "data": USER})
    assert (result.event_name, ids(result.subjects), result.outcome) == (event, (USER["id"],), "queued")
    assert result.userpool_ids == (USER["userPoolId"],)


@pytest.mark.parametrize("event", ["user:updated", "organization:member-added", "organization:member-removed"])
def test_wrapped_user_events_name_data_user(event):
    """user:updated and organization:member-* carry the user as data.user."""
    result = interpret({"eventName": event, "data": {"user": USER, "node": {"code": "finance"}}})
    assert ids(result.subjects) == (USER["id"],)


def test_bare_user_object_is_a_login():
    """The guide's login example has no envelope; it is read as login."""
    result = interpret(USER)
    assert (result.event_name, ids(result.subjects)) == ("login", (USER["id"],))


@pytest.mark.parametrize(
    "body",
    [
        {"eventName": "test", "data": {"description": "A test from GenAuth Webhook"}},
        {"description": "A test from Authing Webhook"},
    ],
)
def test_console_test_events_are_recognised(body):
    """Both documented shapes of the console's test delivery are test events with no subjects."""
    result = interpret(body)
    assert (result.event_name, ids(result.subjects), result.outcome) == ("test", (), "test")


def test_events_not_acted_on_are_ignored_without_validating_data():
    """An event name the service does not act on is accepted as ignored."""
    result = interpret({"eventName": "user:password-changed", "data": "anything"})
    assert (result.event_name, ids(result.subjects), result.outcome) == ("user:password-changed", (), "ignored")


def test_user_id_aliases_are_accepted():
    """userId and _id stand in for id."""
    assert ids(interpret({"eventName": "login", "data": {"userId": "u-1"}}).subjects) == ("u-1",)
    assert ids(interpret({"eventName": "login", "data": {"_id": "u-2"}}).subjects) == ("u-2",)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"eventName": "login"}, {"data": ["Missing data for required field."]}),
        ({"eventName": "login", "data": {"email": "x@y"}}, {"data": {"id": ["Missing data for required field."]}}),
        ({"eventName": "login", "data": {"id": 42}}, {"data": {"id": ["Not a valid string."]}}),
        ({"eventName": "login", "data": {"id": "has space"}}, {"data": {"id": ["Not a valid user id."]}}),
        (
            {"eventName": "user:updated", "data": {"updates": {}}},
            {"data": {"user": ["Missing data for required field."]}},
        ),
        ({"eventName": 7, "data": {}}, {"eventName": ["Not a valid string."]}),
        ({"data": {}}, {"eventName": ["Missing data for required field."]}),
    ],
    ids=["no-data", "no-id", "numeric-id", "bad-id", "no-user", "numeric-event", "no-event"],
)
def test_invalid_deliveries_name_the_field(body, errors):
    """Each invalid shape is refused with marshmallow's field errors."""
    with pytest.raises(InvalidDeliveryError) as caught:
        interpret(body)
    assert caught.value.errors == errors


@pytest.mark.parametrize("body", [[], "login", 42, None])
def test_a_body_that_is_not_an_object_is_invalid(body):
    """Lists, strings, numbers and null are not deliveries."""
    with pytest.raises(InvalidDeliveryError):
        interpret(body)


def test_group_membership_events_name_every_user_object_or_id():
    """group:member-* carry data.users as objects or, in custom-database pools, as bare ids."""
    body = {"eventName": "group:member-added", "data": {"group": {"code": "g"}, "users": [USER, "u-2", USER]}}
    result = interpret(body)
    assert ids(result.subjects) == (USER["id"], "u-2")
    assert result.userpool_ids == (USER["userPoolId"],)


def test_role_events_name_users_and_groups_and_departments_to_expand():
    """role:assigned lists user ids directly; group and department ids are expanded later by the worker."""
    body = {"eventName": "role:assigned", "data": {"userIds": ["u1", "u1"], "groupIds": ["g1"], "nodeIds": ["d1"]}}
    subjects = interpret(body).subjects
    assert (ids(subjects), ids(subjects, GROUP), ids(subjects, DEPARTMENT)) == (("u1",), ("g1",), ("d1",))


def test_node_moved_names_the_department_to_expand():
    """organization:node-moved carries no members; the moved department is expanded by the worker."""
    body = {"eventName": "organization:node-moved", "data": {"node": {"id": "d1"}, "parentNode": {"id": "p"}}}
    subjects = interpret(body).subjects
    assert (ids(subjects), ids(subjects, DEPARTMENT)) == ((), ("d1",))


@pytest.mark.parametrize(
    "body",
    [
        {"eventName": "user:deleted", "data": {"users": [USER]}},
        {"eventName": "user:deleted", "data": {"users": [USER["id"]]}},
        {"eventName": "user:archived", "data": {"user": USER}},
    ],
    ids=["deleted", "deleted-custom-db", "archived"],
)
def test_deleted_and_archived_users_are_reconciled_like_any_user(body):
    """user:deleted and user:archived are hints like every event: they queue the user, whose removal the worker
    confirms with GenAuth (a forged one must not cancel enforcement)."""
    subjects = interpret(body).subjects
    assert ids(subjects) == (USER["id"],)
    assert not hasattr(subjects, "removed")


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"eventName": "group:member-added", "data": {"users": [42]}},
            {"data": {"users": {0: ["Not a user object or id."]}}},
        ),
        ({"eventName": "role:assigned", "data": {"userIds": "u1"}}, {"data": {"userIds": ["Not a valid list."]}}),
        (
            {"eventName": "organization:node-moved", "data": {}},
            {"data": {"node": ["Missing data for required field."]}},
        ),
        (
            {"eventName": "user:deleted", "data": {"users": ["has space"]}},
            {"data": {"users": {0: ["Not a valid user id."]}}},
        ),
    ],
    ids=["group-number", "role-not-list", "node-missing", "deleted-bad-id"],
)
def test_invalid_expansion_events_name_the_field(body, errors):
    """Malformed group, role, node and deletion events are refused with field errors."""
    with pytest.raises(InvalidDeliveryError) as caught:
        interpret(body)
    assert caught.value.errors == errors


@pytest.mark.parametrize(
    "body",
    [
        {"eventName": "login", "data": {**USER, "id": "65a1f0c2e4b0a1b2c3d4e5f6\n"}},
        {"eventName": "user:updated", "data": {"user": "65a1f0c2e4b0a1b2c3d4e5f6\n"}},
        {"eventName": "login\n", "data": USER},
    ],
)
def test_a_trailing_newline_does_not_pass_as_part_of_an_id_or_event_name(body):
    """A pattern anchored with `$` lets one trailing newline through; ids and event names end where they end,
    so none can carry a line break into the store or a log line."""
    with pytest.raises(InvalidDeliveryError):
        interpret(body)


def test_a_lone_surrogate_is_not_a_user_id():
    """JSON can spell "\\ud800", which no database or log can encode."""
    with pytest.raises(InvalidDeliveryError):
        interpret({"eventName": "login", "data": {**USER, "id": "\ud800x"}})


@pytest.mark.parametrize(
    "user_id",
    ["a\x85b", "a\x9fb", "a\u200bb", "a\u200db", "a\ufeffb", "a\u202eb", "a\u2066b", "a\u2069b", "a\u2028b", "a\x7fb"],
    ids=["C1-NEL", "C1-APC", "zero-width-space", "zero-width-joiner", "bom", "rlo", "lri", "pdi", "line-sep", "del"],
)
def test_ids_with_hidden_or_reordering_characters_are_refused(user_id):
    """C1 controls, zero-width and bidirectional characters cannot be part of a user, group or pool id."""
    for body in (
        {"eventName": "login", "data": {**USER, "id": user_id}},
        {"eventName": "role:assigned", "data": {"userIds": ["ok"], "groupIds": [user_id]}},
        {"eventName": "login", "data": {**USER, "userPoolId": user_id}},
    ):
        with pytest.raises(InvalidDeliveryError):
            interpret(body)


def test_ids_in_other_scripts_are_still_ids():
    """Letters of any script (custom-database pools) remain valid."""
    assert ids(interpret({"eventName": "login", "data": {**USER, "id": "用户-42"}}).subjects) == ("用户-42",)


TREE_CHANGES = [event for event in TREE_EVENTS if event not in ("organization:node-moved", "organization:node-updated")]


@pytest.mark.parametrize("event", TREE_CHANGES)
@pytest.mark.parametrize(
    "data",
    [None, {}, [], "x", {"node": {"id": "d1"}}, {"nodes": [{"id": "d1"}]}, {"organization": {"id": "o1"}}],
    ids=["none", "empty", "list", "text", "node", "nodes", "organization"],
)
def test_tree_events_are_accepted_whatever_they_carry_and_name_nobody(event, data):
    """organization:node-added, -deleted, created, deleted, imported, tree-updated: their payloads have no
    example, so any object is accepted; a new or deleted department has no members to reconcile, so no subject,
    but the delivery says the tree changed."""
    body = {"eventName": event} if data is None else {"eventName": event, "data": data}
    result = interpret(body)
    assert (result.outcome, result.subjects, result.changes_tree) == ("queued", (), True)


def test_node_updated_names_the_department_to_expand():
    """organization:node-updated (a rename): the department's members may match other rules, so it is expanded."""
    body = {"eventName": "organization:node-updated", "data": {"node": {"id": "d1"}, "updates": {"name": "Ops"}}}
    result = interpret(body)
    assert (ids(result.subjects), ids(result.subjects, DEPARTMENT), result.changes_tree) == ((), ("d1",), True)


@pytest.mark.parametrize(
    "data", [None, {}, {"node": "d1"}, {"node": {"id": 42}}, {"node": {"id": "has space"}}, {"node": {}}]
)
def test_node_updated_without_a_usable_node_id_still_changes_the_tree(data):
    """A node-updated whose node id is missing or not an id is accepted; it names no department."""
    body = {"eventName": "organization:node-updated", "data": data}
    result = interpret(body)
    assert (result.outcome, result.subjects, result.changes_tree) == ("queued", (), True)


def test_tree_events_name_the_pools_their_node_or_organisation_carry():
    """The pool check sees a tree event's pools: the envelope's, data's, the node's and the organisation's."""
    body = {
        "eventName": "organization:node-added",
        "data": {"node": {"id": "d1", "userPoolId": "p1"}, "organization": {"userPoolId": "p2"}, "userPoolId": "p3"},
    }
    assert sorted(interpret(body).userpool_ids) == ["p1", "p2", "p3"]


def test_only_tree_events_say_the_tree_changed():
    """Membership, user and unknown events leave every process's tree as it is; every tree event has a schema."""
    assert not interpret({"eventName": "organization:member-added", "data": {"user": USER}}).changes_tree
    assert not interpret({"eventName": "login", "data": USER}).changes_tree
    assert not interpret({"eventName": "organization:udv-changed", "data": {}}).changes_tree
    assert interpret({"eventName": "organization:node-moved", "data": {"node": {"id": "d1"}}}).changes_tree
    assert set(TREE_EVENTS) <= set(SUBJECT_SCHEMAS)
