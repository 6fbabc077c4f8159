"""Read the server's text-proto config files, with errors that name the file and the line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from google.protobuf import message, text_format

from serving.errors import InvalidArgumentError

MessageT = TypeVar("MessageT", bound=message.Message)


def read_text_proto(path: str | os.PathLike, into: MessageT, what: str) -> MessageT:
    """Parse `path` into the empty message `into`; `what` names the file kind in errors."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InvalidArgumentError(f"Could not read {what} file '{path}': {err}") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InvalidArgumentError(
            f"Invalid protobuf file: '{path}', line {line}: not UTF-8 text ({err.reason})"
        ) from err
    try:
        text_format.Parse(text, into)
    except text_format.ParseError as err:
        raise InvalidArgumentError(f"Invalid protobuf file: '{path}'{_where(err)}") from err
    return into


def _where(err: text_format.ParseError) -> str:
    """', line L, column C: <problem>' (ParseError's own text starts with 'L:C : ')."""
    line, column, text = err.GetLine(), err.GetColumn(), str(err)
    if line is None:
        return f": {text}"
    prefix = f"{line}:{column} : " if column is not None else f"{line} : "
    location = f"line {line}" + (f", column {column}" if column is not None else "")
    return f", {location}: {text.removeprefix(prefix)}"
