"""The download engine's receive path, without I/O (see ENGINES.md).

``Receiver`` takes one turn's datagrams: chunks on the fast path, grouped
into runs (same peer, session and flags, next index and ``tx_seq``), the
rest decoded and handed to their owner (PONG: ``Failover``; a hash page:
``PieceCheck``; DONE, RETRY, ERROR: the transfer's).  ``Arrivals`` does
what a run changes.  Both work on their ``DownloadEngine``'s state;
hostile bytes are counted and dropped, never raised.
"""

from __future__ import annotations

from array import array

import events as ev
import protocol as p
from scheduler import Transfer, peer_name

MAX_RETRIES = 3  # RETRYs followed per transfer: a peer cannot loop us


class Receiver:
    """One turn's datagrams into runs of chunks (``Arrivals.take``) and
    decoded messages; loss detection once per batch."""

    def __init__(self, engine):
        self.engine = engine
        self.arrivals = Arrivals(engine)

    def receive_batch(self, batch, now: float) -> None:
        """One turn's datagrams: chunks on the fast path, the rest decoded.

        The hottest code of the leecher.  Per datagram it only parses and
        checks the chunk (``chunk_fields``: its CRC once) and, when the
        chunk follows the one before it (same seeder and session, next
        index, next ``tx_seq``, same flags: what a seeder's run of
        consecutive chunks looks like, coalesced by GRO or not), adds it
        to the open run.  Everything else is done once per run
        (``Arrivals.take``); loss detection once per batch."""
        engine = self.engine
        heard: dict = {}  # transfer -> [count, resent, late] (ordered)
        chunk_fields, data_at = p.chunk_fields, p.CHUNK_DATA_AT
        info = engine.info
        file_id, total, last = info.file_id, info.chunks, info.chunks - 1
        full = info.chunk_size
        # The datagram sizes of every chunk but the last, and of the last.
        full_size = data_at + full
        last_size = data_at + (info.size - last * full if total else 0)
        transfers, counters = engine.transfers, engine.counters
        banned = engine.failover.banned
        take_run, new = self.arrivals.take, 0
        run = None  # the open run: (transfer, addr, session, flags)
        run_addr = run_session = run_flags = None
        start = end = tx = 0
        payloads: list = []
        sends: list = []
        for data, addr in batch:
            fields = chunk_fields(data)
            if fields is not None:
                session, flags, chunk_file, index, tx_seq, send_ms = fields
                if index == end and tx_seq == tx + 1 and addr == run_addr \
                        and session == run_session and flags == run_flags \
                        and chunk_file == file_id and index < total \
                        and len(data) == (full_size if index != last
                                          else last_size):
                    payloads.append(data[data_at:])
                    sends.append(send_ms)
                    end, tx = end + 1, tx_seq
                    continue
            if run is not None:
                new += take_run(run, start, payloads, sends, tx, heard, now)
                run = run_addr = None
            if fields is None:
                self._on_message(data, addr, now)
                continue
            transfer = transfers.get((addr, session))
            if transfer is None or addr in banned:
                # Not an address and session we asked, or a peer that
                # lied: what its sessions still send is not taken.
                counters.forged += 1
                continue
            if chunk_file != file_id or index >= total or len(data) != (
                    full_size if index != last else last_size):
                counters.bad += 1
                continue
            run = (transfer, addr, session, flags)
            run_addr, run_session, run_flags = addr, session, flags
            start, end, tx = index, index + 1, tx_seq
            payloads, sends = [data[data_at:]], [send_ms]
        if run is not None:
            new += take_run(run, start, payloads, sends, tx, heard, now)
        if new:
            engine.last_progress = now
        self._after_batch(heard, now)
        if new and engine.state.complete:
            engine.maybe_complete(now)

    def _after_batch(self, heard: dict, now: float) -> None:
        """What loss detection and the scheduler learn from the transfers
        ``heard`` in the batch."""
        engine = self.engine
        delivered = engine.scheduler.backoff.delivered
        for transfer, (count, resent, late) in heard.items():
            delivered(transfer.peer.addr)
            if not transfer.dead:
                transfer.recovery.on_arrivals(
                    now, transfer.highest_place, resent, late, count,
                    transfer.pacing())
                engine.detect_losses(transfer, now)
        if heard and engine.scheduler.piecewise:
            engine.scheduler.after_arrivals(list(heard), now)

    def _on_message(self, data, addr, now: float) -> None:
        engine = self.engine
        try:
            datagram = p.decode(data)
        except p.ProtocolError:
            engine.counters.bad += 1
            return
        msg = datagram.message
        if isinstance(msg, p.Pong):
            engine.failover.on_pong(msg, addr, now)
            return
        if not datagram.session and engine.pieces:  # the hash list's
            engine.pieces.on_message(msg, addr, now)
            return
        transfer = engine.transfers.get((addr, datagram.session))
        if transfer is None or transfer.dead:
            return  # a reply to an old or unknown session
        if isinstance(msg, p.Done):
            transfer.done = True
            transfer.seeder_counters = msg
            transfer.recovery.on_done(now, msg.resent)
            engine.detect_losses(transfer, now)
            engine.scheduler.on_done(transfer, now)
        elif isinstance(msg, p.Retry):
            if transfer.retries < MAX_RETRIES:
                transfer.retries += 1
                transfer.peer.token = msg.token
                engine.send(transfer.request(engine.info.file_id), addr,
                            transfer.sid)
        elif isinstance(msg, p.Error):
            self._on_error(transfer, msg, now)

    def _on_error(self, transfer: Transfer, msg: p.Error, now: float):
        """A source refused: BUSY backs off (told at the first BUSY in
        a row only), any other ERROR makes it gone."""
        engine = self.engine
        busy = msg.code == p.ErrorCode.BUSY
        addr = transfer.peer.addr
        if not busy or engine.scheduler.backoff.hit(addr, now):
            engine.emit(ev.Refused(peer_name(addr), msg.code,
                                   msg.text[:200], engine.since_start(now)))
        if busy:
            engine.failover.busy(transfer, now)
        else:
            engine.failover.give_up_on(transfer, now)


class Arrivals:
    """What a run of consecutive chunks that came together from one
    transfer changes: ACK credit, the furthest first-pass place, which
    chunks are here (one update), the timeline (by slices), the counters,
    and the data for the driver (one run).  ``Receiver.receive_batch``
    forms the runs."""

    def __init__(self, engine):
        self.engine = engine

    def take(self, run: tuple, start: int, payloads: list, sends: list,
             last_tx: int, heard: dict, now: float) -> int:
        """Chunks ``start``, ``start + 1``... (``payloads``, sent at
        ``sends`` by the seeder's clock, the last one as ``last_tx``) of
        ``run`` (transfer, address, session, flags); ``heard`` gathers
        what loss detection learns per transfer.  How many were new.
        Chunks outside what the transfer asked for are counted and
        dropped: a seeder may not fill another's share (one look at the
        transfer's ranges per run, not per chunk)."""
        transfer = run[0]
        end = start + len(payloads)
        inside = list(transfer.ranges.intersection(
            p.RangeSet(((start, end),))))
        if inside == [(start, end)]:
            return self._take_inside(run, start, payloads, sends, last_tx,
                                     heard, now)
        self.engine.counters.out_of_share += len(payloads) - sum(
            stop - first for first, stop in inside)
        new = 0
        for first, stop in inside:
            cut = slice(first - start, stop - start)
            new += self._take_inside(run, first, payloads[cut], sends[cut],
                                     last_tx - (end - stop), heard, now)
        return new

    def _take_inside(self, run: tuple, start: int, payloads: list,
                     sends: list, last_tx: int, heard: dict,
                     now: float) -> int:
        """``take`` for chunks all in the transfer's share."""
        transfer, addr, session, flags = run
        engine, count = self.engine, len(payloads)
        seen = heard.get(transfer)
        if seen is None:
            seen = heard[transfer] = [0, [], []]
        seen[0] += count
        transfer.received += count  # its rate: the next batch's size
        transfer.last_at = now
        if last_tx > transfer.highest_seq:
            transfer.highest_seq = last_tx
            transfer.highest_send_ms = sends[-1]
        transfer.unacked += count
        if transfer.unacked >= transfer.ack_every and not transfer.dead:
            engine.send(p.Ack(transfer.grant()), addr, session)
        retransmit = flags & p.FLAG_RETRANSMIT
        if not retransmit:
            self._advance_place(transfer, start, start + count)
        new = 0
        for first, stop in engine.state.add_run(start, start + count):
            new += stop - first
            self._store_run(transfer, addr, retransmit, first,
                            payloads[first - start:stop - start],
                            sends[first - start:stop - start], seen, now)
        return new

    def _advance_place(self, transfer: Transfer, start: int, end: int):
        """The furthest first-pass place of ``transfer`` that arrived.
        A run of first sends with consecutive ``tx_seq`` holds consecutive
        places: its last chunk is the furthest; when that one is not this
        transfer's (moved here from another), each is looked at."""
        places, first_pass = self.engine.place, transfer.first_pass
        place = places[end - 1]
        if 0 <= place < len(first_pass) and first_pass[place] == end - 1:
            if place > transfer.highest_place:
                transfer.highest_place = place
            return
        for index in range(start, end - 1):
            place = places[index]
            if transfer.highest_place < place < len(first_pass) \
                    and first_pass[place] == index:
                transfer.highest_place = place

    def _store_run(self, transfer: Transfer, addr, retransmit: int,
                   start: int, payloads: list, sends: list, seen: list,
                   now: float) -> None:
        """New chunks ``start``... : their times, counters and data."""
        engine = self.engine
        count, since = len(payloads), now - engine.started
        end = start + count
        engine.fresh_runs.append((start, payloads))
        engine.sender[start:end] = bytes((transfer.slot,)) * count  # blame,
        # if its piece turns out bad
        timeline, counters = engine.timeline, engine.counters
        timeline.received[start:end] = array("d", [since]) * count
        offset = transfer.clock_offset
        timeline.sent[start:end] = array("d", [offset + ms / 1000
                                               for ms in sends])
        stored = counters.stored_from
        stored[addr] = stored.get(addr, 0) + count
        outstanding = transfer.recovery.outstanding
        if outstanding:
            seen[1 if retransmit else 2].extend(
                i for i in range(start, end) if i in outstanding)
        if retransmit:
            counters.retransmitted += count
            timeline.retransmitted[start:end] = b"\x01" * count
        if engine.chunk_events:
            sent_at, name = timeline.sent, peer_name(addr)
            for index in range(start, end):
                engine.emit(ev.ChunkReceived(index, sent_at[index], since,
                                             bool(retransmit), name))
