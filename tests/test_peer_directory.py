"""PeerDirectory: who shares which song, bounded, in simulated time."""

import pytest

import peer_directory as pd
import protocol as p

SONG, OTHER = b"song0001", b"song0002"


def addr(n: int) -> tuple[str, int]:
    return (f"127.0.{n // 250}.{n % 250 + 1}", 5000 + n)


def test_most_recent_first_the_asker_left_out_and_a_have_refreshes():
    d = pd.PeerDirectory()
    for n in range(3):
        d.record(SONG, addr(n), 10.0 + n)
    assert d.listing(SONG, addr(9), 13.0) == (addr(2), addr(1), addr(0))
    assert d.listing(SONG, addr(1), 13.0) == (addr(2), addr(0))
    d.record(SONG, addr(0), 14.0)  # heard again: first now, listed once
    assert d.listing(SONG, None, 14.0) == (addr(0), addr(2), addr(1))
    assert d.listing(OTHER, None, 14.0) == ()


def test_a_listing_holds_at_most_what_a_peers_may_carry():
    d = pd.PeerDirectory()
    for n in range(p.MAX_PEERS_LISTED + 10):
        d.record(SONG, addr(n), 1.0)
    listed = d.listing(SONG, None, 1.0)
    assert len(listed) == p.MAX_PEERS_LISTED
    assert listed[0] == addr(p.MAX_PEERS_LISTED + 9)
    assert len(d.listing(SONG, None, 1.0, most=3)) == 3


def test_a_long_listing_is_the_newest_then_a_sample_of_the_rest():
    """More sharers than a PEERS carries: the newest few first, then a
    sample of the older ones (not always the same next-newest: a flash
    crowd would split into one clique everyone knows and the rest)."""
    d = pd.PeerDirectory(seed=5)
    total = 100
    for n in range(total):
        d.record(SONG, addr(n), 1.0 + n / 1000)
    newest = [addr(n) for n in range(total - 1, total - 1 - pd.NEWEST_LISTED,
                                     -1)]
    samples = [d.listing(SONG, None, 2.0) for _ in range(5)]
    for listed in samples:
        assert len(listed) == p.MAX_PEERS_LISTED == len(set(listed))
        assert list(listed[:pd.NEWEST_LISTED]) == newest
    older = set().union(*(set(listed[pd.NEWEST_LISTED:]) for listed in
                          samples))
    next_newest = {addr(n) for n in range(
        total - 1 - pd.NEWEST_LISTED,
        total - 1 - p.MAX_PEERS_LISTED, -1)}
    assert older - next_newest  # some older sharers are listed too
    assert len(older) > p.MAX_PEERS_LISTED - pd.NEWEST_LISTED


def test_entries_expire_after_the_ttl_unless_refreshed():
    d = pd.PeerDirectory()
    d.record(SONG, addr(0), 0.0)
    d.record(SONG, addr(1), 30.0)
    assert d.listing(SONG, None, pd.PEER_TTL_S) == (addr(1), addr(0))
    assert d.listing(SONG, None, pd.PEER_TTL_S + 1) == (addr(1),)
    d.record(SONG, addr(1), 80.0)
    assert d.listing(SONG, None, 80.0 + pd.PEER_TTL_S) == (addr(1),)
    assert d.listing(SONG, None, 81.0 + pd.PEER_TTL_S) == ()
    assert len(d) == 0 and d.songs() == 0


def test_bounded_per_song_the_oldest_forgotten():
    d = pd.PeerDirectory()
    for n in range(pd.MAX_PEERS_PER_SONG + 5):
        d.record(SONG, addr(n), float(n) / 1000)
    assert len(d) == pd.MAX_PEERS_PER_SONG
    listed = d.listing(SONG, None, 1.0, most=10 ** 6)
    assert addr(0) not in listed and addr(pd.MAX_PEERS_PER_SONG + 4) in listed


def test_bounded_in_songs_and_in_total():
    d = pd.PeerDirectory()
    for song in range(pd.MAX_SONGS + 20):
        for n in range(pd.MAX_PEERS_PER_SONG):
            d.record(song.to_bytes(8, "big"), addr(n), 1.0)
            assert len(d) <= pd.MAX_ENTRIES
    assert d.songs() <= pd.MAX_SONGS
    assert len(d) == pd.MAX_ENTRIES
    # the newest song is whole, the first ones are gone
    last = (pd.MAX_SONGS + 19).to_bytes(8, "big")
    assert len(d.listing(last, None, 1.0, most=10 ** 6)) \
        == pd.MAX_PEERS_PER_SONG
    assert d.listing((0).to_bytes(8, "big"), None, 1.0) == ()


@pytest.mark.parametrize("bad", [("::1", 5000), ("127.0.0.1", 0),
                                 ("127.0.0.1", 70000), ("host", 1), None,
                                 ("127.0.0.1",), ("127.0.0.1", "80")])
def test_only_ipv4_addresses_a_peers_can_carry_are_recorded(bad):
    d = pd.PeerDirectory()
    d.record(SONG, bad, 1.0)
    assert len(d) == 0
    d.record(SONG, ("127.0.0.1", 80), 1.0)
    assert d.listing(SONG, None, 1.0) == (("127.0.0.1", 80),)
