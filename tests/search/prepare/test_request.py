"""The space a search was asked for: the file with every --set and the smoke test; a --set
of a searched key fixes it and says so."""

from __future__ import annotations

from augkd.search.prepare.request import SearchOptions, requested_space


def test_set_routes_space_and_config_keys():
    space = requested_space(
        SearchOptions(space="digits", overrides=["sampler.name=random", "module3.epochs=7"])
    )
    assert space.sampler.name == "random"
    assert space.base_resolved["module3"]["epochs"] == 7
    assert space.max_steps(train_images=720) == 7 * 6  # 6 optimizer steps an epoch


def test_set_of_a_searched_key_fixes_it_and_says_so_in_one_line():
    """It used to be ignored: the sampled value replaced the --set one in every trial."""
    said: list[str] = []
    space = requested_space(
        SearchOptions(space="digits", overrides=["module3.teacher_term=both"]), said.append
    )
    assert "module3.teacher_term" not in space.params
    assert "module3.teacher_fade" not in space.params  # searched only when the term is mixed
    assert space.base_resolved["module3"]["teacher_term"] == "both"
    assert said == [
        "[search] note: --set module3.teacher_term='both' fixes a key the space searches; "
        "every trial uses it and 'module3.teacher_term' is no longer searched.",
        "[search] note: 'module3.teacher_fade' is searched only when module3.teacher_term = "
        "'mixed', and module3.teacher_term is fixed at 'both', so 'module3.teacher_fade' is no "
        "longer searched either.",
    ]


def test_set_of_a_searched_key_to_its_condition_keeps_the_conditional_key_searched():
    said: list[str] = []
    space = requested_space(
        SearchOptions(space="digits", overrides=["module3.teacher_term=mixed"]), said.append
    )
    assert space.params["module3.teacher_fade"].when is None
    assert len(said) == 1
