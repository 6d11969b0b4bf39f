"""Issue 10's NACK scenario: are the NACKs the leecher sends true?

Three real seeders (``-m sequential --rate 64 --delay 20``) on
127.0.0.1..3, the terminal leecher, and between them a relay in this
process (one per seeder, on 127.0.0.11..13) that drops a share of the
CHUNK datagrams (``--drop``, default 5 %) on their way to the leecher and
forwards everything else untouched.  The relay sees every chunk each
seeder sent, so for every NACK entry that passes it knows whether the
chunk named was ever sent by that seeder:

* chunks lost        = CHUNK datagrams the relay dropped;
* NACK entries       = chunk indices named in the NACKs that passed;
* NACKs for unsent   = entries naming a chunk its seeder had not sent
  (yet) when the NACK passed the relay.  Target: 0.
* entries / lost     target <= 1.5; and the file byte-exact.

Songs are made by ``sample_song.py`` (``--songs 30,60`` seconds).
Loopback only; the relay stops with the leecher or at ``--timeout``.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time

import common as c
import protocol as p

RELAY_IPS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
SEEDER_IPS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
SEEDER_LINK = ("-m", "sequential", "--rate", "64", "--delay", "20")
RECV_SIZE = 2048  # > MAX_DATAGRAM: a longer datagram shows up as such
POLL_S = 0.05     # how often the relay looks at its stop flag
MAX_DATAGRAMS = 2_000_000  # bound on what one relay run forwards


class Relay:
    """Forwards datagrams between one leecher and K seeders, drops a
    seeded share of CHUNKs, and checks every NACK against the chunks the
    seeder sent."""

    def __init__(self, seeders: list[tuple[str, int]], port: int,
                 drop: float, seed: int):
        self.rng = random.Random(seed)
        self.drop = drop
        self.front: list[socket.socket] = []  # leecher side, one per seeder
        self.back: list[socket.socket] = []   # seeder side
        self.seeders = seeders
        for ip in RELAY_IPS[:len(seeders)]:
            front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            front.bind((c.check_loopback(ip), port))
            back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            back.bind((ip, 0))
            self.front.append(front)
            self.back.append(back)
        self.addresses = [f"{ip}:{port}"
                          for ip in RELAY_IPS[:len(seeders)]]
        self.leecher: list = [None] * len(seeders)
        self.sent: list[set[int]] = [set() for _ in seeders]
        self.chunks_sent = 0
        self.lost = 0
        self.nack_entries = 0
        self.nacks = 0
        self.unsent = 0
        self.unsent_examples: list[tuple[int, int]] = []
        self.forwarded = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(timeout=5)
        for sock in self.front + self.back:
            sock.close()

    def _run(self) -> None:
        sockets = self.front + self.back
        while not self.stop_flag.is_set() and self.forwarded < MAX_DATAGRAMS:
            ready, _, _ = select.select(sockets, [], [], POLL_S)
            for sock in ready:
                data, addr = sock.recvfrom(RECV_SIZE)
                self.forwarded += 1
                if sock in self.front:
                    k = self.front.index(sock)
                    self.leecher[k] = addr
                    self._to_seeder(k, data)
                else:
                    self._to_leecher(self.back.index(sock), data)

    def _to_seeder(self, k: int, data: bytes) -> None:
        try:
            message = p.decode(data).message
        except p.ProtocolError:
            message = None
        if isinstance(message, p.Nack):
            self.nacks += 1
            for start, end in message.ranges:
                for index in range(start, end):
                    self.nack_entries += 1
                    if index not in self.sent[k]:
                        self.unsent += 1
                        if len(self.unsent_examples) < 5:
                            self.unsent_examples.append((k, index))
        self.back[k].sendto(data, self.seeders[k])

    def _to_leecher(self, k: int, data: bytes) -> None:
        fields = p.chunk_fields(data)
        if fields is not None:
            self.chunks_sent += 1
            self.sent[k].add(fields[3])
            if self.rng.random() < self.drop:
                self.lost += 1
                return
        if self.leecher[k] is not None:
            self.front[k].sendto(data, self.leecher[k])


def make_song(folder: str, seconds: float) -> str:
    path = os.path.join(folder, f"nack-{seconds:g}s.mp3")
    subprocess.run([c.PYTHON, os.path.join(c.ROOT, "sample_song.py"),
                    "--seconds", str(seconds), "-o", path], check=True,
                   stdout=subprocess.DEVNULL, timeout=300)
    return path


def scenario(tmp: str, share: str, song: str, drop: float, seed: int,
             timeout: float) -> dict:
    name = os.path.basename(song)
    port = c.free_port(SEEDER_IPS + RELAY_IPS)
    with c.Procs() as procs:
        seeders = [c.Seeder(procs, ip, port, share, *SEEDER_LINK,
                            "--rng-seed", str(seed + k))
                   for k, ip in enumerate(SEEDER_IPS)]
        relay = Relay([(ip, port) for ip in SEEDER_IPS], port, drop, seed)
        relay.start()
        out_dir = os.path.join(tmp, f"out-{name}")
        os.makedirs(out_dir, exist_ok=True)
        stats_path = os.path.join(tmp, f"{name}.json")
        try:
            run = c.Measured(c.leecher_cmd(name, out_dir, relay.addresses,
                                           stats_path, "--method",
                                           "sequential"),
                             timeout=timeout,
                             stdout_path=stats_path + ".log")
        finally:
            relay.stop()
            for seeder in seeders:
                seeder.stop()
    got = os.path.join(out_dir, name)
    exact = (run.returncode == 0 and os.path.exists(got)
             and c.sha256_file(got) == c.sha256_file(song))
    stats = c.load_stats(stats_path) if os.path.exists(stats_path) else {}
    return {"name": name, "exact": exact, "returncode": run.returncode,
            "lost": relay.lost, "chunks_sent": relay.chunks_sent,
            "entries": relay.nack_entries, "nacks": relay.nacks,
            "unsent": relay.unsent, "examples": relay.unsent_examples,
            "elapsed": stats.get("elapsed_s"),
            "retransmitted": stats.get("chunks_retransmitted"),
            "leecher_entries": stats.get("nack_entries"),
            "chunks": stats.get("chunks"),
            "tail": run.output()[-300:] if run.returncode else ""}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", default="30,60",
                        help="song lengths in seconds (default 30,60)")
    parser.add_argument("--drop", type=float, default=0.05,
                        help="share of CHUNK datagrams the relay drops")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="longest a download may take (s)")
    args = parser.parse_args(argv)
    c.header("NACK scenario: 3 seeders --rate 64 --delay 20 sequential, a "
             "relay dropping CHUNKs", __file__,
             sys.argv[1:] if argv is None else argv)
    lengths = [float(x) for x in args.songs.split(",") if x.strip()]
    rows = []
    with c.temp_dir("nack") as tmp:
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        songs = [make_song(share, s) for s in lengths]
        for song in songs:
            started = time.monotonic()
            row = scenario(tmp, share, song, args.drop, args.seed,
                           args.timeout)
            row["wall"] = time.monotonic() - started
            rows.append(row)
            print(f"{row['name']}: {row['chunks']} chunks, relay saw "
                  f"{row['chunks_sent']} sent, dropped {row['lost']}; "
                  f"{row['nacks']} NACKs naming {row['entries']} entries, "
                  f"{row['unsent']} for chunks not sent yet; "
                  f"byte-exact {row['exact']} ({row['wall']:.1f} s); the "
                  f"leecher counted {row['retransmitted']} retransmitted"
                  + ("" if row["leecher_entries"] is None else
                     f" and {row['leecher_entries']} NACK entries"),
                  flush=True)
            if row["examples"]:
                print(f"  first unsent entries (seeder, chunk): "
                      f"{row['examples']}")
            if row["tail"]:
                print(f"  leecher exit {row['returncode']}: {row['tail']}")
    print()
    print(f"{'song':<16} {'lost':>5} {'entries':>8} {'unsent':>7} "
          f"{'entries/lost':>12} {'exact':>6}")
    for row in rows:
        ratio = row["entries"] / row["lost"] if row["lost"] else None
        print(f"{row['name']:<16} {row['lost']:5d} {row['entries']:8d} "
              f"{row['unsent']:7d} {c.fmt(ratio):>12} "
              f"{'yes' if row['exact'] else 'NO':>6}")
    print()
    for row in rows:
        ratio = row["entries"] / row["lost"] if row["lost"] else 0.0
        print(f"{row['name']}: NACKs for unsent chunks = {row['unsent']} "
              f"(target 0: {'met' if row['unsent'] == 0 else 'MISSED'}); "
              f"entries/lost = {ratio:.2f} (target <= 1.5: "
              f"{'met' if ratio <= 1.5 else 'MISSED'}); byte-exact "
              f"{'met' if row['exact'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
