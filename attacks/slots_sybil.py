"""Open: upload slots against several hosts.  ``upload_slots=4``; four
attacker IPs (127.0.0.66..69) open one session each of 1,000 chunks
and ACK one chunk a second (never idle, never done: ~1,000 s each).
Each host holds its fair share (one slot), so none is evicted, and an
honest leecher on another host gets BUSY until it fails (no progress
for 30 s).  Simulated time only; the harness is tests/test_attacks.py's.
A fix would rotate slots (a session holding one for long, while others
wait, gives it up), BitTorrent's optimistic unchoke."""
import sys

sys.path[:0] = [".", "tests"]
import protocol as p  # noqa: E402
import test_attacks as t  # noqa: E402

SLOTS = 4


def main() -> None:
    seeder = t.new_seeder(upload_slots=SLOTS)
    huge = t.SOURCE.by_name("huge.mp3")
    hosts = [(f"127.0.0.{66 + k}", 5000) for k in range(SLOTS)]
    for host in hosts:
        t.open_session(seeder, huge, ((0, 1000),), 1, addr=host)
    world = t.World({t.SEEDER: seeder})
    acked = dict.fromkeys(hosts, 0)

    def keep_alive(w):
        for host in hosts:
            acked[host] += 1
            t.send(seeder, p.Ack(acked[host]), addr=host, now=w.now)

    world.start()
    world.run(until=world.now + 60, attack=keep_alive, every=1.0)
    print(f"{SLOTS} attacker hosts: honest download complete="
          f"{world.download.complete}, failed: {world.failed}")


if __name__ == "__main__":
    main()
