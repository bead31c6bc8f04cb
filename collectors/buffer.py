"""A bounded outbox for records while Redis is unreachable.

Records go to memory first; when memory is full the oldest spill to a JSONL file; when the file is
full too, records leaving memory are dropped and counted (`agent_dropped_records_total`). Flushing yields the
spilled records first, then memory, so order is kept: after a long outage what survives is its
start (on disk) and its most recent stretch (in memory).
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from collectors.recording import dumps


class OutboxBuffer:
    def __init__(self, memory_records: int = 10_000, spill_path: Path | None = None,
                 spill_records: int = 200_000):
        self.memory: deque[dict[str, Any]] = deque()
        self.memory_records = memory_records
        self.spill_path = spill_path
        self.spill_records = spill_records
        self.spilled = 0
        self.dropped = 0
        if spill_path and spill_path.exists():
            try:
                with spill_path.open("r", encoding="utf-8") as fh:
                    self.spilled = sum(1 for _ in fh)
            except OSError:
                self.spilled = 0

    def __len__(self) -> int:
        return len(self.memory) + self.spilled

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.memory.append(record)
            if len(self.memory) > self.memory_records:
                self._spill(self.memory.popleft())

    def _spill(self, record: dict[str, Any]) -> None:
        if self.spill_path is None or self.spilled >= self.spill_records:
            self.dropped += 1
            return
        try:
            self.spill_path.parent.mkdir(parents=True, exist_ok=True)
            with self.spill_path.open("a", encoding="utf-8") as fh:
                fh.write(dumps(record) + "\n")
            self.spilled += 1
        except OSError:  # full disk, read-only: count it, never crash
            self.dropped += 1

    def flush(self, send: Callable[[list[dict[str, Any]]], Any], batch: int = 500) -> int:
        """Send everything buffered, oldest first; stops (keeping the rest) if `send` raises.

        The spill file is streamed in batches, so a large backlog never sits in memory at once; a
        failure before anything was sent leaves the file untouched (cheap to retry)."""
        sent = 0
        if self.spilled and self.spill_path is not None:
            with self.spill_path.open("r", encoding="utf-8") as fh:
                chunk: list[dict[str, Any]] = []
                for line in fh:
                    try:
                        chunk.append(json.loads(line))
                    except ValueError:
                        self.dropped += 1
                        continue
                    if len(chunk) >= batch:
                        sent += self._send_spilled(send, chunk, fh, sent)
                        chunk = []
                if chunk:
                    sent += self._send_spilled(send, chunk, fh, sent)
            os.unlink(self.spill_path)
            self.spilled = 0
        while self.memory:
            chunk = [self.memory[i] for i in range(min(batch, len(self.memory)))]
            send(chunk)
            for _ in chunk:
                self.memory.popleft()
            sent += len(chunk)
        return sent

    def _send_spilled(self, send: Callable[[list[dict[str, Any]]], Any], chunk: list[dict[str, Any]],
                      rest: IO[str], sent_before: int) -> int:
        try:
            send(chunk)
        except Exception:
            if sent_before:  # keep only what was not sent yet
                self._rewrite_spill(chunk, rest)
            raise
        return len(chunk)

    def _rewrite_spill(self, remaining: list[dict[str, Any]], rest: IO[str]) -> None:
        assert self.spill_path is not None
        tmp = self.spill_path.with_suffix(".tmp")
        count = 0
        with tmp.open("w", encoding="utf-8") as fh:
            for record in remaining:
                fh.write(dumps(record) + "\n")
                count += 1
            for line in rest:
                fh.write(line)
                count += 1
        os.replace(tmp, self.spill_path)
        self.spilled = count
