"""Objective ids of the offline model's scripts: one per objective, whatever the titles."""

from __future__ import annotations

import re
import string
from random import Random

import pytest

from agents.checks import check_scripts
from agents.offline_lesson import lesson_content, objectives_for
from agents.offline_scripts import ID_MAX, objective_ids, script_bundle
from agents.offline_world import slug
from agents.schemas import BloomLevel, EnvironmentRequest

REQUEST = EnvironmentRequest(subject="Science", grade_level=6, topic="Volcanoes")
LONG = "Explain how the pressure of trapped gases in magma chambers"
_CONFIG_ID = re.compile(r'\{id = "([^"]*)", title = ')


def config_ids(titles: list[str], bloom: BloomLevel = "remember") -> list[str]:
    """The ids the generated ``LessonConfig`` gives the objectives, in order."""
    bundle = script_bundle(REQUEST, [(title, bloom) for title in titles])
    assert check_scripts(bundle.scripts) == []
    config = next(s for s in bundle.scripts if s.name == "LessonConfig").content
    return _CONFIG_ID.findall(config)


def test_a_suffixed_id_is_checked_again() -> None:
    titles = ["Name the volcanoes", "Name the volcanoes 3", "Name the volcanoes"]
    expected = ["name_the_volcanoes", "name_the_volcanoes_3", "name_the_volcanoes_4"]
    assert objective_ids(titles) == expected
    assert config_ids(titles) == expected
    bundle = script_bundle(REQUEST, [(title, "remember") for title in titles])
    tracker = next(s for s in bundle.scripts if s.name == "ObjectiveTracker")
    assert tracker.description == (
        "Checkpoints named after the objectives (CollectClues_name_the_volcanoes, "
        "CollectClues_name_the_volcanoes_3, CollectClues_name_the_volcanoes_4)."
    )


def test_an_objective_that_does_not_clash_keeps_its_id() -> None:
    titles = ["Name the volcanoes", "Name the volcanoes", "Name the volcanoes 2"]
    assert objective_ids(titles) == [
        "name_the_volcanoes",
        "name_the_volcanoes_3",  # _2 is the third objective's own id
        "name_the_volcanoes_2",
    ]
    distinct = ["Compare lava types", "Name the volcanoes", "Объясните извержения"]
    assert objective_ids(distinct) == [
        slug(t, f"objective_{i + 1}") for i, t in enumerate(distinct)
    ]


def test_long_objectives_cut_to_one_id_stay_within_the_length() -> None:
    titles = [f"{LONG} {ending}" for ending in ("builds", "erupts", "cools")]
    ids = config_ids(titles)
    assert len(set(ids)) == 3 and all(len(ident) <= ID_MAX for ident in ids)
    assert ids[0] == slug(titles[0], "x") == "explain_how_the_pressure_of_trapped_gase"
    assert ids[1:] == [
        "explain_how_the_pressure_of_trapped_ga_2",
        "explain_how_the_pressure_of_trapped_ga_3",
    ]


@pytest.mark.parametrize(
    "titles",
    [
        ["Объясните извержения", "Назовите вулканы", "Objective 1", "Objective 2"],
        ["火山の名前", "!!!", "123 go", "objective_3"],
        ["Objective 2", "火山の名前", "火山の名前"],
    ],
)
def test_titles_without_a_latin_slug_get_distinct_ids(titles: list[str]) -> None:
    ids = config_ids(titles)
    assert len(set(ids)) == len(titles)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", ident) for ident in ids)


def test_ids_are_unique_for_any_titles() -> None:
    rng = Random(7)
    words = ["Name", "the", "volcanoes", "3", "2", "_", "лава", "x" * 45, "!"]
    for _ in range(300):
        titles = [" ".join(rng.choices(words, k=rng.randint(1, 4))) for _ in range(10)]
        ids = objective_ids(titles)
        assert len(set(ids)) == len(ids) and all(len(ident) <= ID_MAX for ident in ids)
        naturals = [slug(t, f"objective_{i + 1}") for i, t in enumerate(titles)]
        for index, natural in enumerate(naturals):
            if natural not in naturals[:index]:
                assert ids[index] == natural


def test_objective_ids_never_hold_anything_but_identifier_characters() -> None:
    titles = ["".join(Random(seed).choices(string.printable, k=60)) for seed in range(10)]
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", ident) for ident in config_ids(titles))


def test_the_lesson_names_its_checkpoints_as_the_scripts_do() -> None:
    """The lesson's ``game_mechanics`` named checkpoints by the plain slug: with objectives
    that clash, two shared a name the scripts had made unique."""
    titles = ["Name the volcanoes", "Name the volcanoes 3", "Name the volcanoes"]
    request = REQUEST.model_copy(update={"learning_objectives": titles})
    lesson = lesson_content(request, Random(1))
    names = [point["name"] for point in lesson.game_mechanics["checkpoints"]]
    objectives = [(o.title, o.bloom_level) for o in objectives_for(request)]
    tracker = next(
        s for s in script_bundle(request, objectives).scripts if s.name == "ObjectiveTracker"
    )
    assert len(set(names)) == 3
    assert tracker.description == f"Checkpoints named after the objectives ({', '.join(names)})."
