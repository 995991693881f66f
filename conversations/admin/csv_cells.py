"""CSV for spreadsheets: text cells that a spreadsheet would run as a formula are kept as text."""

import csv
from collections.abc import Iterable
from numbers import Number
from typing import Any

# A spreadsheet reads a cell starting with one of these as a formula (or a DDE call), even after a
# tab or carriage return (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell_inert(value: Any) -> Any:
    """`value` as the writer would write it, with a leading apostrophe if a spreadsheet would read
    that text as a formula.

    Numbers are left as they are (a negative number must stay a number); anything else, a user
    object as much as a string, is judged by the text it becomes."""
    if value is None or isinstance(value, Number):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class InertCsvWriter:
    """A `csv.writer` over `stream` whose text cells never start a formula."""

    def __init__(self, stream: Any) -> None:
        self.writer = csv.writer(stream)

    def writerow(self, row: Iterable[Any]) -> None:
        self.writer.writerow([cell_inert(value) for value in row])
