"""JSON values as TF Serving's util/json_tensor.cc reads and writes them.

The pieces its tensor (serving.json_tensors) and tf.Example
(serving.json_examples) conversions share: the request document, the
"signature_name" key, `{"b64": ...}` values, numbers checked for lossless
conversion, floats written like its WriteDecimal (absl::StrCat's six digits,
more only when needed to round-trip, `.0` on whole numbers, NaN and Infinity
bare), and its error messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from serving.errors import InvalidArgumentError

SIGNATURE_KEY = "signature_name"
B64_KEY = "b64"
# Nesting accepted by default (--rest_api_max_json_depth): a rank-4 image batch in the row
# format is 6 deep; the C parser itself gives up near Python's recursion limit (~1000).
MAX_DEPTH = 64
MAX_ERROR_VALUE_CHARS = 256  # TF Serving prints the whole value (its TODO: truncate)

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def parse_json(body: bytes, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """The request document: a JSON object (NaN and Infinity allowed, as TF Serving) whose
    arrays and objects nest at most `max_depth` deep."""
    if not body:
        raise InvalidArgumentError("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except UnicodeDecodeError as err:
        raise InvalidArgumentError(f"JSON Parse error: Invalid encoding in string. {err}") from err
    except json.JSONDecodeError as err:
        raise InvalidArgumentError(f"JSON Parse error: {err.msg} at offset: {err.pos}") from err
    except RecursionError as err:
        raise InvalidArgumentError("JSON Parse error: the document is nested too deeply") from err
    if _deeper_than(doc, max_depth):
        raise InvalidArgumentError(
            f"JSON Parse error: the document nests arrays and objects more than {max_depth} "
            "levels deep (--rest_api_max_json_depth)"
        )
    if not isinstance(doc, dict):
        raise format_error(doc, "Is not object")
    return doc


def _deeper_than(doc: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (breadth first: no recursion,
    and a wide, flat tensor costs one pass)."""
    level = [doc] if isinstance(doc, list | dict) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, list | dict)
        ]
    return False


def signature_name(doc: Mapping[str, Any]) -> str:
    """The optional "signature_name" ("" when absent)."""
    value = doc.get(SIGNATURE_KEY, "")
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"JSON Value: {show(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return value


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def decimal(value: float, real: type[np.floating]) -> str:
    """WriteDecimal for one value (see `decimals`)."""
    return decimals(np.array([value], dtype=real))[0]


def decimals(array: np.ndarray) -> list[str]:
    """WriteDecimal for every element of a float array, flattened: absl::StrCat's six digits
    when they round-trip, else max_digits10 (9 for float32, 17 for float64); `.0` on whole
    numbers; NaN, Infinity, -Infinity bare. Decided with numpy and printed by one `%` call,
    so a large tensor costs no per-element Python."""
    real = np.float64 if array.dtype == np.float64 else np.float32
    flat = np.ascontiguousarray(array, dtype=real).ravel()
    finite = np.isfinite(flat)
    short = _six_digits_round_trip(flat, finite)
    precise = 17 if real is np.float64 else 9
    digits = np.where(short, 6, precise)
    with np.errstate(invalid="ignore"):
        whole = finite & (flat == np.trunc(flat)) & (np.abs(flat) < 10.0**digits)
    formats = np.where(whole, "%.1f", np.where(short, "%.6g", f"%.{precise}g"))
    values: list[Any] = flat.tolist()
    for index in np.flatnonzero(~finite).tolist():
        value = values[index]
        formats[index] = "%s"
        values[index] = "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
    return ("\x1f".join(formats.tolist()) % tuple(values)).split("\x1f")


# 1e0..1e22, each exact in float64; times a 24-bit float32 mantissa still exact up to 1e12,
# which bounds the range `_six_digits_round_trip` decides by arithmetic.
_POWERS_OF_TEN = np.array([float(10**k) for k in range(23)])


def _six_digits_round_trip(flat: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Whether `%.6g` of each element parses back to it. float32 values between 1e-7 and
    1e17 are rounded to six digits numerically (m * 10**q, exact there); the rest (float64,
    tiny or huge values) are printed and parsed back."""
    short = np.zeros(flat.shape, dtype=bool)
    magnitude = np.abs(flat.astype(np.float64))
    nonzero = finite & (magnitude > 0)
    short[finite & ~nonzero] = True
    numeric = np.zeros(flat.shape, dtype=bool)
    if flat.dtype == np.float32:
        numeric = nonzero & (magnitude >= 1e-7) & (magnitude < 1e17)
        x = magnitude[numeric]
        exponent = np.floor(np.log10(x)).astype(np.int64)
        exponent += _scaled(x, -exponent - 1) >= 1  # log10 may be one off near powers of ten
        exponent -= _scaled(x, -exponent) < 1
        places = 5 - exponent  # digits after the decimal point that six significant give
        mantissa = np.rint(_scaled(x, places))
        short[numeric] = _scaled(mantissa, -places).astype(np.float32) == x.astype(np.float32)
    rest = np.flatnonzero(nonzero & ~numeric)
    if rest.size:
        printed = list(map("{:.6g}".format, flat[rest].tolist()))
        short[rest] = np.array(printed, dtype=np.float64).astype(flat.dtype) == flat[rest]
    return short


def _scaled(values: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """values * 10**exponents, dividing by the exact power for negative exponents (so the
    result is the correctly rounded quotient, as parsing the decimal would give)."""
    powers = _POWERS_OF_TEN[np.abs(exponents)]
    return np.where(exponents >= 0, values * powers, values / powers)


def is_b64(value: Mapping[str, Any]) -> bool:
    """{"b64": "<string>"} and nothing else."""
    return len(value) == 1 and isinstance(value.get(B64_KEY), str)


def decode_b64(value: Mapping[str, Any]) -> bytes:
    if not is_b64(value):
        raise InvalidArgumentError(
            f"JSON Value: {show(value)} not formatted correctly for base64 data"
        )
    text = value[B64_KEY]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidArgumentError("Unable to base64 decode") from err


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return is_int(value) or isinstance(value, float)


def is_lossless(value: int | float, target: str) -> bool:
    """IsLosslessDecimal: integers within the mantissa, decimals within the range."""
    if isinstance(value, float) and not math.isfinite(value):
        return True
    if is_int(value) and -(2**63) <= value <= 2**64 - 1:
        digits = 24 if target == "float" else 53
        return abs(value) <= 2**digits - 1
    if target == "double":
        return math.isfinite(float(value))
    return -_FLOAT32_MAX <= float(value) <= _FLOAT32_MAX


def json_type(value: Any) -> str:
    """rapidjson's name for the type of `value`, as TF Serving's messages print it."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def format_error(value: Any, detail: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"JSON Value: {show(value)} {detail}")


def show(value: Any) -> str:
    """`value` as an error message quotes it (truncated: requests can be large)."""
    text = json.dumps(value)
    if len(text) > MAX_ERROR_VALUE_CHARS:
        text = text[:MAX_ERROR_VALUE_CHARS] + "..."
    return text


def lossy_error(value: Any, target: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"Cannot convert JSON value: {show(value)} to {target} without loss of precision."
    )
