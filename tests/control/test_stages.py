import pytest

from rtserve.server.control.stages import (
    RegisteredVersion,
    canonical_stage,
    choose_routes,
    route_candidates,
    served_versions,
    stage_labels,
)

pytestmark = pytest.mark.unit


def v(version: str, stage: str = "None", *aliases: str) -> RegisteredVersion:
    return RegisteredVersion(version, stage, tuple(aliases))


def test_stage_names_match_case_insensitively_like_mlflow():
    assert canonical_stage("production") == "Production"
    assert canonical_stage("STAGING") == "Staging"
    assert canonical_stage("none") == "None"
    assert canonical_stage("Prod") is None


def test_candidates_list_newest_first_per_stage_and_alias():
    versions = [v("1", "Staging"), v("10", "Staging", "champion"), v("2", "Production"), v("3", "Archived")]
    assert route_candidates(versions) == {"Staging": ["10", "1"], "Production": ["2"], "champion": ["10"]}


def test_route_points_to_newest_ready_version_of_the_stage():
    assert choose_routes({"Staging": ["3", "2"]}, {}, ready={"2", "3"}) == {"Staging": "3"}
    assert choose_routes({"Staging": ["3", "2"]}, {}, ready={"2"}) == {"Staging": "2"}


def test_route_stays_on_the_old_version_until_the_new_one_is_ready():
    # Version 2 replaced version 1 in Staging (1 archived) but is still loading.
    assert choose_routes({"Staging": ["2"]}, {"Staging": "1"}, ready={"1"}) == {"Staging": "1"}
    assert choose_routes({"Staging": ["2"]}, {"Staging": "1"}, ready={"1", "2"}) == {"Staging": "2"}


def test_route_goes_to_the_pending_version_when_nothing_old_still_answers():
    assert choose_routes({"Production": ["4"]}, {"Production": "3"}, ready=set()) == {"Production": "4"}
    assert choose_routes({"Production": ["4"]}, {}, ready=set()) == {"Production": "4"}


def test_a_version_that_left_its_stage_keeps_running_while_it_holds_the_route():
    versions = [v("1", "Archived"), v("2", "Staging")]
    assert served_versions(versions, {"Staging": "1"}) == {"1": "Staging", "2": "Staging"}
    assert served_versions(versions, {"Staging": "2"}) == {"2": "Staging"}


def test_aliased_versions_are_served_with_the_default_compute():
    assert served_versions([v("5", "None", "champion")], {"champion": "5"}) == {"5": None}


def test_archived_and_unstaged_versions_are_not_served():
    assert served_versions([v("1", "Archived"), v("2", "None")], {}) == {}


def test_stage_labels_name_the_stages_a_version_answers_for():
    assert stage_labels({"Staging": "2", "Production": "1", "champion": "2"}, "2") == ["Staging"]
