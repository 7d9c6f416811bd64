"""pipeline.reporting.spread: means over seeds, their spread, and when two differ."""

import math

from pipeline.reporting.spread import (
    apart,
    difference_noise,
    mean_std,
    over_seeds,
    rule_words,
    seed_count,
    seed_words,
    seeds_listed,
    spread_number,
    with_spread,
)


def test_mean_and_spread_over_the_finite_values():
    mean, std = mean_std([0.9, 0.95, 1.0])
    assert math.isclose(mean, 0.95) and math.isclose(std, 0.05)
    assert mean_std([0.9, None or float("nan")]) == (0.9, 0.0)
    assert all(math.isnan(x) for x in mean_std([]))


def test_text_names_mean_and_spread():
    assert with_spread([0.98, 0.99, 1.0]) == "99.00% ± 1.00"
    assert with_spread([float("nan")]) == "n/a"


def test_over_seeds_follows_the_seeds_order():
    results = {"by_seed": [{"a": 0.5}, {"a": None}, {"a": 0.7}]}
    values = over_seeds(results, lambda run: run["a"])
    assert values[0] == 0.5 and math.isnan(values[1]) and values[2] == 0.7


def test_apart_only_beyond_the_spread():
    tight_a, tight_b = [0.980, 0.981, 0.982], [0.990, 0.991, 0.992]
    assert apart(tight_a, tight_b)
    wide_a, wide_b = [0.97, 0.98, 0.99], [0.975, 0.985, 0.995]
    assert not apart(wide_a, wide_b)
    assert difference_noise(wide_a, wide_b) > abs(0.98 - 0.985)
    assert not apart([float("nan")], [0.9])


def test_one_seed_has_no_spread_to_judge_by():
    assert with_spread([0.98]) == "98.00% (one seed)"
    assert with_spread([0.98, None]) == "98.00% (one seed)"
    assert not apart([0.5], [0.9, 0.91])
    assert not apart([0.5, float("nan")], [0.9, 0.91])


def test_seeds_in_words():
    assert seed_count([4]) == "1 seed"
    assert seeds_listed([0, 1, 2]) == "3 seeds (0, 1, 2)"
    assert seed_words([5, 6]) == "mean ± standard deviation over 2 seeds (5, 6)"


def test_the_rule_in_words_quotes_beyond():
    assert rule_words() == (
        "a difference counts when the means are more than 2 standard errors of "
        "their difference apart"
    )


def test_shares_over_seeds_as_percentages():
    assert spread_number([0.8, 0.85, 0.9], 0, 100, "%") == "85% ± 5"
