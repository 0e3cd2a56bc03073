"""Reading a CSV file into raw arrays: header, cells, missing markers, one-hot encoding, ids refused.

:func:`read_csv` returns a :class:`CsvTable` (raw feature matrix, labels, CSV line numbers, names,
one-hot groups, the missing-value report); ``Dataset.from_csv`` splits and scales it.  Every error
names the file, the line and the column, and says what to pass instead.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .missing import MISSING_MARKERS, counts_text

logger = logging.getLogger(__name__)

__all__ = ["AUTO_ENCODINGS", "CsvTable", "DELIMITERS", "ID_MIN_ROWS", "decode", "read_csv", "sniff_delimiter"]

#: A numeric column is checked for being a row id (unique and monotone in file order) from this many rows.
ID_MIN_ROWS = 20


@dataclass
class CsvTable:
    """A CSV file read into raw arrays (before the split).

    Attributes
    ----------
    X : ndarray (n, d), float64
        Feature values; NaN where a cell is missing; one-hot levels as 0/1 columns.
    y : ndarray (n,)
        Labels (int64 when every label is a whole number, else strings).
    lines : ndarray (n,), int64
        The CSV line of each row (the header is line 1).
    feature_names : list of str
    onehot : list of dict
        ``{"column", "levels", "features"}`` per one-hot encoded text column.
    onehot_columns : ndarray (d,), bool
        Which features are one-hot levels.
    notes : list of str
    missing : dict
        Cell and row counts of missing values, per column and per marker (empty when none).
    read : dict
        How the file was read: ``encoding``, ``delimiter``, ``decimal`` and which were ``sniffed``.
    """

    X: np.ndarray
    y: np.ndarray
    lines: np.ndarray
    feature_names: list[str]
    onehot: list[dict[str, Any]] = field(default_factory=list)
    onehot_columns: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    missing: dict[str, Any] = field(default_factory=dict)
    read: dict[str, Any] = field(default_factory=dict)


def _float_or_nan(v: str) -> float:
    try:
        f = float(v)
    except ValueError:
        return np.nan
    return f if f == f else np.nan  # a spelling of NaN we do not list ("nAn"): not a number


def _parse_floats(col: np.ndarray, miss: np.ndarray) -> np.ndarray:
    """Float value of each cell; NaN where missing or not a number (one vectorised pass when every
    filled cell is a number, else each distinct text parsed once)."""
    out = np.full(len(col), np.nan)
    present = col[~miss]
    try:
        vals = np.asarray(present, dtype=np.float64)
    except ValueError:
        levels, inverse = np.unique(present.astype(str), return_inverse=True)
        vals = np.array([_float_or_nan(v) for v in levels], dtype=np.float64)[inverse]
    out[~miss] = vals
    return out


def _all_numeric(col: np.ndarray) -> bool:
    for v in col:
        if v == "":
            continue
        try:
            float(v)
        except ValueError:
            return False
    return True


#: Encodings tried, in order, when none is given: UTF-8 (with or without a byte-order mark), then the
#: Windows Western European code page spreadsheets write by default.
AUTO_ENCODINGS = ("utf-8-sig", "cp1252")
#: Delimiters a file is sniffed for.
DELIMITERS = (",", ";", "\t", "|")
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d+),\d+$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+$")


def _line_of(raw: bytes, position: int) -> int:
    return raw.count(b"\n", 0, position) + 1


def decode(path: Path, encoding: str | None) -> tuple[str, str]:
    """(text, encoding used): ``encoding`` as given, or the first of ``AUTO_ENCODINGS`` that decodes the file.

    A file that does not decode raises ValueError naming the file, the line, the byte and what to pass.
    """
    raw = path.read_bytes()
    tried = [encoding] if encoding else list(AUTO_ENCODINGS)
    for enc in tried:
        try:
            return raw.decode(enc), enc
        except LookupError:
            raise ValueError(f"{path.name}: unknown encoding {enc!r}; pass a Python codec name such as 'utf-8', "
                             f"'cp1252' or 'latin-1' (CLI: --encoding).") from None
        except UnicodeDecodeError as exc:
            last = exc
    bad = raw[last.start:last.start + 1]
    hint = ("--encoding latin-1 (every byte is a character) or the encoding the file was written in"
            if not encoding else "--encoding cp1252 or --encoding latin-1 if it came from a spreadsheet on Windows, "
            "or leave --encoding out to try UTF-8 and cp1252")
    raise ValueError(
        f"{path.name}: line {_line_of(raw, last.start)} holds the byte {bad!r} (at byte {last.start}) that "
        f"{' nor '.join(tried)} cannot decode. Pass the file's encoding: encoding='...' in from_csv "
        f"(CLI: {hint})."
    )


def _fields(text: str, delimiter: str, limit: int = 50) -> list[int]:
    """Field counts of the first ``limit`` non-blank lines read with ``delimiter``."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    counts = []
    for row in reader:
        if any(cell.strip() for cell in row):
            counts.append(len(row))
            if len(counts) >= limit:
                break
    return counts


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV text: ``csv.Sniffer``'s pick when every line (the header too) then has the same
    number of fields, else the first of ``DELIMITERS`` that gives the header's count on every line."""
    consistent = []
    for d in DELIMITERS:
        counts = _fields(text, d)
        if len(counts) and counts[0] > 1 and all(c == counts[0] for c in counts):
            consistent.append(d)
    try:
        sniffed = csv.Sniffer().sniff(text[:65536], delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        sniffed = None
    if sniffed in consistent:
        return sniffed
    return consistent[0] if consistent else ","


def _read_rows(path: Path, text: str, delimiter: str) -> tuple[list[str], np.ndarray, list[list[str]]]:
    """(header, CSV line of each data row, the rows' cells); blank lines are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"CSV file {str(path)!r} is empty; expected a header row and data rows.") from None
    numbered = [(reader.line_num, r) for r in reader if r and (len(r) > 1 or r[0].strip())]
    if not numbered:
        raise ValueError(f"CSV file {str(path)!r} has a header but no data rows.")
    lines = np.array([ln for ln, _ in numbered], dtype=np.int64)
    rows = [r for _, r in numbered]
    bad_len = [int(lines[i]) for i, r in enumerate(rows) if len(r) != len(header)]
    if bad_len:
        raise ValueError(
            f"{path.name}: lines {bad_len[:5]} have a different number of fields than the header "
            f"({len(header)}, split on {delimiter!r}); fix the file, or pass its delimiter: delimiter=';' in from_csv "
            f"(CLI: --delimiter ';')."
        )
    return header, lines, rows


def _decimal_comma_columns(header: list[str], cols: list[np.ndarray]) -> list[str]:
    """Columns whose every filled cell is a number written with a decimal comma (``3,14``, ``1.234,5``)."""
    out = []
    for h, col in zip(header, cols):
        present = col[~_missing(col)]
        if not len(present) or not _DECIMAL_COMMA.match(present[0]):  # one look before a full scan
            continue
        if all(_DECIMAL_COMMA.match(v) for v in present):
            out.append(h)
    return out


def _missing(col: np.ndarray) -> np.ndarray:
    """Which cells hold a missing-value marker."""
    return np.fromiter((v in MISSING_MARKERS for v in col), dtype=bool, count=len(col))


def _point(v: str) -> str:
    if _DECIMAL_COMMA.match(v) or _THOUSANDS.match(v):
        return v.replace(".", "").replace(",", ".")
    return v


def _to_decimal_point(col: np.ndarray) -> np.ndarray:
    """``1.234,5`` -> ``1234.5``, ``2.500`` -> ``2500``: a decimal-comma file's numbers with a decimal point
    (thousands dots dropped); text cells stay as they are."""
    return np.array([_point(v) for v in col], dtype=object)


class _Encoder:
    """Turns the feature columns into numbers: numeric as is, text one-hot (or refused), missing cells counted."""

    def __init__(self, path: Path, lines: np.ndarray, categorical: str, max_categories: int,
                 keep_columns: frozenset[str] = frozenset(), decimal_comma: Sequence[str] = ()) -> None:
        self.path, self.lines, self.keep_columns = path, lines, keep_columns
        self.decimal_comma = set(decimal_comma)
        self.categorical, self.max_categories = categorical, max_categories
        self.features: list[np.ndarray] = []
        self.names: list[str] = []
        self.onehot: list[bool] = []
        self.groups: list[dict[str, Any]] = []
        self.non_numeric: list[str] = []
        self.missing_cells: list[tuple[int, str, str]] = []  # (row, column, marker)

    def add(self, h: str, col: np.ndarray) -> None:
        miss = _missing(col)
        present = col[~miss]
        if len(present) == 0:
            raise ValueError(
                f"{self.path.name}: column {h!r} holds no values (all {len(col)} rows are empty or missing markers "
                f"such as {col[0]!r}); drop the column."
            )
        parsed = _parse_floats(col, miss)
        numbers = ~np.isnan(parsed) | miss
        self.missing_cells.extend((int(i), h, str(col[i])) for i in np.nonzero(miss)[0])
        if numbers.all():
            if h not in self.keep_columns:
                self._check_id(h, parsed[~miss])
            self.features.append(parsed[:, None])
            self.names.append(h)
            self.onehot.append(False)
            return
        self._check_text(h, col, numbers, miss, present)
        self.non_numeric.append(h)
        if self.categorical == "onehot":
            levels = sorted(set(present.tolist()))
            block = np.stack([(col == lv).astype(np.float64) for lv in levels], axis=1)
            block[miss] = np.nan
            self.groups.append({"column": h, "levels": levels,
                                "features": list(range(len(self.names), len(self.names) + len(levels)))})
            self.features.append(block)
            self.names.extend(f"{h}={lv}" for lv in levels)
            self.onehot.extend([True] * len(levels))

    def _check_id(self, h: str, values: np.ndarray) -> None:
        """Refuse a numeric column that is different on every row and ordered like the file: a row id."""
        if len(values) < ID_MIN_ROWS or len(np.unique(values)) != len(values):
            return
        step = np.diff(values)
        if not (np.all(step > 0) or np.all(step < 0)):
            return
        first = ", ".join(f"{v:g}" for v in values[:3])
        raise ValueError(
            f"{self.path.name}: column {h!r} holds a different number on every one of its {len(values)} rows, "
            f"{'increasing' if step[0] > 0 else 'decreasing'} with the line ({first}, ...): it looks like a row id "
            f"or a timestamp, and a surrogate would split on it ('{h} <= ...') as if it meant something. Drop the "
            f"column, or pass keep_columns=[{h!r}] (CLI: --keep-column {h}) if it really is a feature."
        )

    def _check_text(self, h: str, col: np.ndarray, numbers: np.ndarray, miss: np.ndarray, present: np.ndarray) -> None:
        """Refuse a numeric column with stray words, and a text column with too many levels (an id, free text)."""
        n_num = int((numbers & ~miss).sum())
        junk = np.nonzero(~numbers)[0]
        if n_num >= 0.9 * len(present):
            shown = ", ".join(f"{col[i]!r} on line {self.lines[i]}" for i in junk[:5])
            raise ValueError(
                f"{self.path.name}: column {h!r} is numeric in {n_num} of {len(present)} filled rows but holds "
                f"{len(junk)} non-numeric value{'s' if len(junk) > 1 else ''}: {shown}. Fix those cells, or write "
                f"them as NA if they mean 'missing' (then choose --missing error|drop|impute)."
            )
        if h in self.decimal_comma:
            i = int(np.nonzero(~numbers)[0][0])
            raise ValueError(
                f"{self.path.name}: column {h!r} holds numbers written with a decimal comma ({col[i]!r} on line "
                f"{self.lines[i]}) but the file is read with a decimal point; pass decimal=',' in from_csv "
                f"(CLI: --decimal ,)."
            )
        levels = sorted(set(present.tolist()))
        if len(levels) > self.max_categories:
            examples = ", ".join(repr(v) for v in levels[:3])
            raise ValueError(
                f"{self.path.name}: column {h!r} has {len(levels)} distinct text values in {len(col)} rows "
                f"(e.g. {examples}); one-hot encoding it would add {len(levels)} features. It looks like an "
                f"identifier or free text: drop the column, or raise max_categories (CLI: --max-categories) "
                f"above {len(levels)} if it really is a category."
            )

    def matrix(self, target: str) -> np.ndarray:
        if self.non_numeric and self.categorical == "error":
            raise ValueError(
                f"{self.path.name}: columns {self.non_numeric} are not numeric. Encode them as numbers, "
                f"or pass categorical='onehot' to one-hot encode them."
            )
        if not self.features:
            raise ValueError(f"{self.path.name}: no feature columns besides the target {target!r}.")
        X = np.concatenate(self.features, axis=1)
        inf_rows, inf_cols = np.nonzero(np.isinf(X))
        if len(inf_rows):
            cells = [f"line {self.lines[r]}, column {self.names[c]!r}" for r, c in list(zip(inf_rows, inf_cols))[:5]]
            raise ValueError(
                f"{self.path.name} has infinite values: {'; '.join(cells)}. Replace them with finite numbers or NA."
            )
        return X


def _missing_report(missing_cells: list[tuple[int, str, str]], y_missing: np.ndarray, target: str) -> dict[str, Any]:
    if not missing_cells and not y_missing.any():
        return {}
    by_col: dict[str, int] = {}
    markers: dict[str, int] = {}
    for _, h, marker in missing_cells:
        by_col[h] = by_col.get(h, 0) + 1
        key = marker if marker else "(empty)"
        markers[key] = markers.get(key, 0) + 1
    miss_rows = {r for r, _, _ in missing_cells}
    if y_missing.any():
        by_col[target] = int(y_missing.sum())
    return {
        "cells": len(missing_cells),
        "rows": len(miss_rows | set(np.nonzero(y_missing)[0].tolist())),
        "by_column": by_col,
        "markers": markers,
    }


def _refuse_missing(path: Path, lines: np.ndarray, missing_cells: list[tuple[int, str, str]], report: dict) -> None:
    shown = "; ".join(
        f"line {lines[r]}, column {h!r} = {marker!r}" if marker else f"line {lines[r]}, column {h!r} is empty"
        for r, h, marker in missing_cells[:5]
    )
    more = f" (and {len(missing_cells) - 5} more)" if len(missing_cells) > 5 else ""
    raise ValueError(
        f"{path.name} has missing values: {shown}{more} (line 1 is the header; {report['cells']} cells in "
        f"{report['rows']} rows: {counts_text(report['by_column'])}). Pass missing='drop' to drop those rows "
        f"or missing='impute' to fill them from the training split (CLI: --missing drop|impute), or fill the file."
    )


def _labels(y_vals: np.ndarray) -> np.ndarray:
    """Labels as strings, or int64 when every one is a whole number."""
    y_vals = np.array([str(v) for v in y_vals])
    if _all_numeric(y_vals):
        yf = y_vals.astype(np.float64)
        if np.all(yf == np.round(yf)):
            return yf.astype(np.int64)
    return y_vals


def read_csv(
    path: Path, target: str, *, categorical: str, missing: str, max_categories: int, delimiter: str | None = None,
    keep_columns: frozenset[str] = frozenset(), encoding: str | None = None, decimal: str | None = None,
) -> CsvTable:
    """Read ``path`` (a header row, then data rows) into a :class:`CsvTable`; ``target`` names the label column.

    ``encoding`` None tries UTF-8 (with or without BOM), then cp1252; ``delimiter`` None sniffs it;
    ``decimal`` None reads a decimal comma in a file whose delimiter is not a comma when a column holds
    nothing else.  What was used is logged and recorded in the table's ``read``.  Arguments are
    checked by the caller (``Dataset.from_csv``); see its docstring for the rules.
    """
    text, used = decode(path, encoding)
    sep = delimiter if delimiter is not None else sniff_delimiter(text)
    header, lines, rows = _read_rows(path, text, sep)
    if target not in header:
        raise ValueError(
            f"Target column {target!r} is not in {path.name}. Its columns are: {', '.join(map(repr, header))}."
        )
    cols = [np.array([c.strip() for c in col], dtype=object) for col in zip(*rows)]
    comma = _decimal_comma_columns(header, cols)
    mark = decimal if decimal is not None else ("," if comma and sep != "," else ".")
    if mark == ",":
        cols = [_to_decimal_point(c) for c in cols]
    read = {"encoding": used, "delimiter": sep, "decimal": mark,
            "sniffed": [k for k, v in (("encoding", encoding), ("delimiter", delimiter), ("decimal", decimal)) if v is None]}
    logger.info("%s: encoding %s, delimiter %r, decimal mark %r%s", path.name, used, sep, mark,
                f" ({', '.join(read['sniffed'])} detected; pass them to override)" if read["sniffed"] else "")
    if mark == "." and comma:
        logger.warning("%s: columns %s hold numbers with a decimal comma but the file is read with a decimal point; "
                       "pass decimal=',' (CLI: --decimal ,) to read them as numbers", path.name, comma[:5])
    t = header.index(target)
    y_raw = cols[t]
    y_missing = _missing(y_raw)
    if y_missing.any() and missing != "drop":
        where = ", ".join(f"line {lines[i]} ({y_raw[i]!r})" for i in np.nonzero(y_missing)[0][:5])
        raise ValueError(
            f"{path.name}: the target column {target!r} has missing labels on {int(y_missing.sum())} rows: {where}. "
            f"Labels cannot be imputed; fix them, or pass missing='drop' (CLI: --missing drop) to drop those rows."
        )
    unknown = sorted(set(keep_columns) - set(header))
    if unknown:
        raise ValueError(f"keep_columns names {unknown}, which are not columns of {path.name}: {', '.join(map(repr, header))}.")
    enc = _Encoder(path, lines, categorical, max_categories, frozenset(keep_columns), comma if mark == "." else [])
    for j, h in enumerate(header):
        if j != t:
            enc.add(h, cols[j])
    X = enc.matrix(target)
    notes = [f"one-hot encoded non-numeric columns: {', '.join(enc.non_numeric)}"] if enc.non_numeric else []
    report = _missing_report(enc.missing_cells, y_missing, target)
    if missing == "error" and enc.missing_cells:
        _refuse_missing(path, lines, enc.missing_cells, report)
    y_vals = y_raw
    if y_missing.any():  # missing == "drop": rows without a label go first
        keep = ~y_missing
        X, y_vals, lines = X[keep], y_raw[keep], lines[keep]
        notes.append(f"dropped {int(y_missing.sum())} rows without a label in {target!r}")
        report["dropped_unlabelled"] = int(y_missing.sum())
    if read["sniffed"]:
        notes.append(f"read as {used}, delimiter {sep!r}, decimal mark {mark!r} ({', '.join(read['sniffed'])} detected)")
    return CsvTable(
        X=X, y=_labels(y_vals), lines=lines, feature_names=enc.names, onehot=enc.groups,
        onehot_columns=np.asarray(enc.onehot, dtype=bool), notes=notes, missing=report, read=read,
    )
