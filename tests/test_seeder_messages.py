"""What the seeder tells its user: how sessions end, odd files, bad -d."""

import os
import shutil
import socket
import subprocess

import protocol as p
from conftest import PYTHON, ROOT, SAMPLE, run_leecher


def output_to_the_end(seeder) -> str:
    """Stop the seeder and return all it printed.  Not SeederProcess.stop:
    its communicate() reads the pipe itself and misses the lines that the
    first readline() buffered along with the "sharing" line."""
    seeder.proc.terminate()
    seeder.proc.wait(timeout=10)  # its few lines fit in the pipe
    return seeder.output[0] + seeder.proc.stdout.read()


# ------------------------------------------------------------ how sessions end
class Client:
    """A hand-made leecher: one socket, the token from a PONG."""

    def __init__(self, address: str):
        ip, port = address.split(":")
        self.seeder = (ip, int(port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)  # a bound on a hang, not a measurement
        self.token = self.sync().token

    def send(self, msg, session: int = 0) -> None:
        self.sock.sendto(p.encode(msg, session), self.seeder)

    def next_of(self, kind):
        """The next message of type ``kind``; others are passed over."""
        while not isinstance(msg := p.decode(self.sock.recv(2048)).message,
                             kind):
            pass
        return msg

    def sync(self) -> p.Pong:
        """PING and wait for the PONG: the seeder handles datagrams in
        order, so everything sent before has been handled."""
        self.send(p.Ping(7))
        return self.next_of(p.Pong)

    def close(self) -> None:
        self.sock.close()


def sample_id() -> bytes:
    import pieces
    with open(SAMPLE, "rb") as handle:
        _, hashes = pieces.hash_bytes(handle.read())
    return pieces.file_id_from(hashes)  # the id made from the piece list


def session_end(seeders, folder, chunks: int, window: int) -> str:
    """Ask for ``chunks`` chunks with ``window`` credit, take what the
    credit allows, CANCEL, and return the seeder's line for the end."""
    (seeder,) = seeders(("127.0.0.1", "-d", str(folder)))
    client = Client(seeder.address)
    client.send(p.Request(sample_id(), p.Order.SEQUENTIAL, ((0, chunks),),
                          window, client.token), session=0x51)
    for _ in range(min(chunks, window)):
        client.next_of(p.Chunk)
    client.send(p.Cancel(), session=0x51)
    client.sync()
    client.close()
    output = output_to_the_end(seeder)
    return next(line for line in output.splitlines()
                if line.startswith("session 00000051 ") and "from" not in line)


def test_cancel_after_every_chunk_was_sent_is_logged_as_done(seeders,
                                                             song_dir):
    assert session_end(seeders, song_dir, chunks=3, window=8) == \
        "session 00000051 done: 3 sent, 0 resent"


def test_cancel_before_the_end_is_logged_as_cancelled(seeders, song_dir):
    assert session_end(seeders, song_dir, chunks=50, window=2) == \
        "session 00000051 cancelled: 2 sent, 0 resent"


def test_a_complete_download_is_done_not_cancelled(seeders, song_dir,
                                                   tmp_path):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir)))
    result = run_leecher("get", "short-tune", "-o", str(tmp_path),
                         "--seeders", seeder.address)
    assert result.returncode == 0, result.stdout + result.stderr
    Client(seeder.address).close()  # its PING: the CANCEL was handled
    ends = [line for line in output_to_the_end(seeder).splitlines()
            if line.startswith("session ") and "from" not in line]
    assert len(ends) == 1 and " done: " in ends[0], ends


# ------------------------------------------------------------------ odd files
def notices(output: str) -> list[str]:
    return [line for line in output.splitlines()
            if line.startswith("seeder: ")]


def test_duplicates_empty_and_non_mp3_files_are_told_once(seeders,
                                                           tmp_path,
                                                           song_dir):
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(SAMPLE, shared / "good.mp3")
    shutil.copy(SAMPLE, shared / "other.mp3")
    (shared / "empty.mp3").write_bytes(b"")
    (shared / "noise.mp3").write_bytes(bytes(range(256)) * 40)
    # -q: it silences sessions, never what is wrong with the files.
    (seeder,) = seeders(("127.0.0.1", "-d", str(shared), "-q"))
    assert "sharing 2 file(s)" in seeder.output[0]
    for _ in range(2):  # each search rescans the folder
        found = run_leecher("search", "", "--seeders", seeder.address)
    assert "good.mp3" in found.stdout and "noise.mp3" in found.stdout
    assert "other.mp3" not in found.stdout and "empty" not in found.stdout
    shutil.copy(SAMPLE, shared / "third.mp3")  # a new duplicate
    # A new song too: once a search lists it, the folder was rescanned
    # (a search within 0.25 s of the last scan does not rescan).
    shutil.copy(song_dir / "short-tune.mp3", shared / "fresh.mp3")
    for _ in range(20):
        found = run_leecher("search", "", "--seeders", seeder.address)
        if "fresh.mp3" in found.stdout:
            break
    assert "fresh.mp3" in found.stdout
    assert notices(output_to_the_end(seeder)) == [
        "seeder: empty.mp3 is empty: not shared (nothing to stream)",
        ("seeder: noise.mp3: no MP3 frame found (duration unknown), "
         "shared anyway"),
        ("seeder: other.mp3 has the same content as good.mp3: shared once, "
         "as good.mp3"),
        ("seeder: third.mp3 has the same content as good.mp3: shared once, "
         "as good.mp3")]

def test_a_folder_of_good_songs_gets_no_notice(seeders, song_dir):
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "-q"))
    run_leecher("search", "", "--seeders", seeder.address)
    assert notices(output_to_the_end(seeder)) == []


def test_a_file_given_as_the_folder_is_one_clear_line():
    result = subprocess.run(
        [PYTHON, os.path.join(ROOT, "seeder.py"), "-i", "127.0.0.1", "-d",
         os.path.join(ROOT, "README.md")], capture_output=True, text=True,
        timeout=30, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "not a folder" in result.stderr and "README.md" in result.stderr
    assert "not found" not in result.stderr


def test_names_with_escape_codes_and_newlines_are_printed_escaped(
        seeders, song_dir, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    tune = (song_dir / "short-tune.mp3").read_bytes()
    (shared / "clear\x1b[2Jscreen.mp3").write_bytes(tune)
    (shared / "new\nline.mp3").write_bytes(tune)
    (shared / ("x" * 251 + ".mp3")).write_bytes(b"\0" * 3000)  # 255 bytes
    (seeder,) = seeders(("127.0.0.1", "-d", str(shared)))
    found = run_leecher("search", "", "--seeders", seeder.address)
    assert found.returncode == 0, found.stderr
    assert found.stdout.count("x" * 30) == 1  # the long name was announced
    client = Client(seeder.address)
    (info,) = [f for f in search_all(client, "clear")]
    client.send(p.Request(info.file_id, p.Order.SEQUENTIAL, ((0, 2),), 4,
                          client.token), session=0x77)
    client.next_of(p.Chunk)
    client.close()
    output = output_to_the_end(seeder)
    assert "\x1b" not in output
    assert "clear\\x1b[2Jscreen.mp3" in output  # the session line
    assert "new\\nline.mp3" in output  # its notice: the content is the same
    assert all(line.startswith(("seeder", "session")) for line in
               output.splitlines())


def search_all(client, query: str) -> list:
    """Every page of a SEARCH, asked one page at a time."""
    files, page = [], 0
    while True:
        client.send(p.Search(query, client.token, page))
        while not isinstance((got := p.decode(client.sock.recv(2048))
                              ).message, p.SearchResult):
            pass
        files += got.message.files
        if got.flags & p.FLAG_LAST:
            return files
        page += 1


def test_upload_slots_must_be_a_whole_number_of_at_least_one():
    for bad in ("0", "x", "-3"):
        result = subprocess.run(
            [PYTHON, os.path.join(ROOT, "seeder.py"), "-i", "127.0.0.1",
             "-p", "9555", "--slots", bad], capture_output=True, text=True,
            timeout=30)
        assert result.returncode == 2, bad
        assert result.stderr.count("\n") == 1 and "--slots" in result.stderr
        assert "Traceback" not in result.stderr


def test_the_summary_counts_the_requests_turned_away_by_full_slots(
        seeders, song_dir):
    """--slots 1: a session is open (its credit used up, so it stays),
    a second REQUEST is told BUSY, and the summary counts it."""
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir), "--slots", "1"))
    first, second = Client(seeder.address), Client(seeder.address)
    first.send(p.Request(sample_id(), p.Order.SEQUENTIAL, ((0, 50),), 1,
                         first.token), session=0x61)
    first.next_of(p.Chunk)
    second.send(p.Request(sample_id(), p.Order.SEQUENTIAL, ((0, 50),), 1,
                          second.token), session=0x62)
    refused = second.next_of(p.Error)
    assert refused.code == p.ErrorCode.BUSY
    for client in (first, second):
        client.close()
    summary = [line for line in output_to_the_end(seeder).splitlines()
               if " stopped: " in line]
    assert len(summary) == 1, summary
    assert summary[0].endswith(", 1 requests told to ask again later "
                               "(every upload slot taken)"), summary


def test_no_slots_no_count_and_the_count_in_portuguese(seeders, song_dir):
    import i18n
    (seeder,) = seeders(("127.0.0.1", "-d", str(song_dir)))
    Client(seeder.address).close()
    assert "upload slot" not in output_to_the_end(seeder)
    try:
        i18n.use("pt")
        assert i18n.text(", {n} requests told to ask again later (every "
                         "upload slot taken)", n=2) == \
            ", 2 pedidos avisados para pedir de novo mais tarde (todas " \
            "as vagas de envio ocupadas)"
    finally:
        i18n.use("en")
