"""A real pseudo-terminal for the tests, and what a terminal would show of its output."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import termios

COLUMNS = 120


def open_terminal(columns: int = COLUMNS) -> tuple[int, int]:
    """A pseudo-terminal `columns` wide: (fd to read what is shown, fd of the terminal)."""
    reader, writer = os.openpty()
    fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    return reader, writer


def read_pending(reader: int) -> str:
    """What was written to the terminal so far."""
    chunks = []
    while select.select([reader], [], [], 0.2)[0]:
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def screen(output: str) -> list[str]:
    """The non-empty lines a terminal shows: carriage returns and clear-to-end-of-line applied."""
    lines: list[str] = []
    for raw in output.replace("\r\n", "\n").split("\n"):
        line: list[str] = []
        cursor = 0
        for part in re.split(r"(\r|\x1b\[K)", raw):
            if part == "\r":
                cursor = 0
            elif part == "\x1b[K":
                del line[cursor:]
            else:
                line[cursor : cursor + len(part)] = part
                cursor += len(part)
        if line:
            lines.append("".join(line))
    return lines
