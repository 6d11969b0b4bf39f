"""piece_picker.py: the piece policies, pure functions of their inputs
and a seeded generator."""

import random

import pytest
from hypothesis import given, settings, strategies as st

import piece_picker as pp


def pick(policy, candidates, count, holders, play_piece=0, seed=1):
    return pp.pick(policy, candidates, count, holders, play_piece,
                   random.Random(seed))


def test_sequential_is_the_lowest_index_first():
    holders = [9, 1, 1, 0, 5, 0]
    assert pick("sequential", [1, 2, 4, 5], 3, holders) == [1, 2, 4]


def test_rarest_is_the_fewest_holders_first():
    holders = [3, 1, 2, 0, 2, 5]
    assert pick("rarest", [0, 1, 2, 3, 4, 5], 6, holders)[:2] == [3, 1]
    assert pick("rarest", [0, 1, 2, 3, 4, 5], 6, holders)[-2:] == [0, 5]
    assert set(pick("rarest", [0, 1, 2, 3, 4, 5], 4, holders)[2:]) == {2, 4}


def test_rarest_breaks_ties_at_random_the_same_way_for_the_same_seed():
    holders = [1] * 40
    candidates = list(range(40))
    firsts = {tuple(pick("rarest", candidates, 5, holders, seed=s))
              for s in range(20)}
    assert len(firsts) > 10  # ties: random, not the lowest index
    assert pick("rarest", candidates, 5, holders, seed=3) == \
        pick("rarest", candidates, 5, holders, seed=3)


def test_deadline_takes_the_urgent_window_in_order_then_the_rarest():
    holders = [0] * 20
    holders[15] = holders[16] = 3
    candidates = [2, 5, 6, 7, 8, 9, 15, 16, 19]
    # play point at piece 5: 5..8 urgent, in order; then the rarest
    got = pick("deadline", candidates, 7, holders, play_piece=5)
    assert got[:pp.URGENT_PIECES] == [5, 6, 7, 8]
    assert set(got[4:]) <= {2, 9, 19}  # holders 0: before 15 and 16
    # fewer wanted than urgent: only the earliest
    assert pick("deadline", candidates, 2, holders, play_piece=5) == [5, 6]
    # nothing urgent missing: rarest first
    assert pick("deadline", [15, 16, 19], 1, holders, play_piece=0) == [19]


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError):
        pick("newest", [1], 1, [0, 0])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(pp.POLICIES),
       st.lists(st.integers(0, 63), unique=True).map(sorted),
       st.integers(0, 70), st.lists(st.integers(0, 9), min_size=64,
                                    max_size=64), st.integers(0, 70))
def test_every_policy_picks_distinct_candidates_and_as_many_as_it_may(
        policy, candidates, count, holders, play_piece):
    got = pick(policy, candidates, count, holders, play_piece)
    assert len(got) == len(set(got)) == min(count, len(candidates))
    assert set(got) <= set(candidates)
