"""Server-sent events as raw bytes: the `data` payloads of complete events, without a model per chunk.

Follows the event-stream rules the `openai` SDK's own decoder follows: lines end in CR, LF or CRLF (and
nothing else: JSON may carry U+2028 or U+0085 raw), an event ends at a blank line, its `data:` lines are
joined with LF, comments (`: keep-alive`), other fields and events without data are skipped, and an
event the stream ends before finishing is dropped.
"""

from __future__ import annotations


class SSEDataDecoder:
    """Feed body chunks as they arrive; get back the data of each event they complete."""

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # an unfinished line, in pieces (no re-copying as it grows)
        self._data: list[bytes] = []  # the data lines of the event being read
        self._skip_lf = False  # the last chunk ended in CR: an LF starting the next one ends no line

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data of every event this chunk completes, in order."""
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = chunk[-1:] == b"\r"
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            if chunk:
                self._partial.append(chunk)
            return []
        lines = chunk.split(b"\n")
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = b"".join(self._partial)
            self._partial.clear()
        if tail := lines.pop():
            self._partial.append(tail)
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line == b"data":  # a field name alone has an empty value
                data.append(b"")
        return events
