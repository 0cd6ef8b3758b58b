"""The runs table query: filter (status, tag, metric threshold), sort, paginate index rows.

Pure functions over :class:`tracking.ui.index.RunRow` lists, so they are tested without a server.

Filter syntax (what the form fields accept):

* ``status``: one status value, e.g. ``Completed``.
* ``tag``: ``key`` (tag present) or ``key=value`` (exact value).
* ``metric``: ``name OP number`` with OP one of ``< <= > >= = !=``, e.g. ``mse < 0.5``.
* ``q``: substring of the run id or display name.
* ``sort``: ``created``, ``status``, ``duration``, ``run_id``, ``target``, ``metric:<name>`` or
  ``tag:<key>``; ``order`` is ``asc`` or ``desc``.
"""
from __future__ import annotations

import math
import operator
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import UserInputError
from ..status import RunStatus
from .index import RunRow

MAX_PER_PAGE = 500
MAX_METRIC_COLUMNS = 24
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "!=": operator.ne, "==": operator.eq,
    "<": operator.lt, ">": operator.gt, "=": operator.eq}
_METRIC_FILTER = re.compile(r"^\s*(.+?)\s*(<=|>=|!=|==|<|>|=)\s*([-+0-9.eEinfINFnaN]+)\s*$")
_PLAIN_SORTS = ("created", "status", "duration", "run_id", "target", "kind")


@dataclass(frozen=True)
class RunQuery:
    status: str | None = None
    tag: str | None = None
    metric: str | None = None
    q: str | None = None
    sort: str = "created"
    order: str = "desc"
    page: int = 1
    per_page: int = 50
    children: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "RunQuery":
        """Build from URL query parameters.

        Raises:
            UserInputError: a value cannot be understood (the message says what is accepted).
        """
        status = params.get("status") or None
        if status is not None:
            RunStatus.parse(status)
        order = params.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise UserInputError(f"order must be 'asc' or 'desc', got {order!r}")
        sort = params.get("sort") or "created"
        if sort not in _PLAIN_SORTS and not sort.startswith(("metric:", "tag:")):
            raise UserInputError(f"cannot sort by {sort!r}; use one of {', '.join(_PLAIN_SORTS)}, "
                                 "metric:<name> or tag:<key>")
        metric = params.get("metric") or None
        if metric is not None:
            parse_metric_filter(metric)
        return cls(status=status, tag=params.get("tag") or None, metric=metric,
                   q=params.get("q") or None, sort=sort, order=order,
                   page=_int(params, "page", 1, 1, 10**9),
                   per_page=_int(params, "per_page", 50, 1, MAX_PER_PAGE),
                   children=params.get("children") in ("1", "true", "on", "yes"))

    def params(self, **override: Any) -> dict[str, Any]:
        """URL parameters of this query (with overrides), defaults left out."""
        values = {"status": self.status, "tag": self.tag, "metric": self.metric, "q": self.q,
                  "sort": self.sort, "order": self.order, "page": self.page,
                  "per_page": self.per_page, "children": "1" if self.children else None}
        values.update(override)
        defaults = {"sort": "created", "order": "desc", "page": 1, "per_page": 50}
        return {k: v for k, v in values.items() if v is not None and defaults.get(k) != v}


def _int(params: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = params.get(key)
    if not raw:
        return default
    try:
        return min(high, max(low, int(raw)))
    except ValueError:
        raise UserInputError(f"{key} must be a whole number, got {raw!r}") from None


def parse_metric_filter(text: str) -> tuple[str, Callable[[Any, Any], bool], float]:
    match = _METRIC_FILTER.match(text)
    if not match:
        raise UserInputError(f"metric filter {text!r} not understood; write e.g. 'mse < 0.5' "
                             "(operators < <= > >= = !=)")
    try:
        threshold = float(match.group(3))
    except ValueError:
        raise UserInputError(f"metric filter {text!r}: {match.group(3)!r} is not a number") from None
    return match.group(1), _OPS[match.group(2)], threshold


def _tag_matcher(text: str) -> Callable[[RunRow], bool]:
    if "=" in text:
        key, value = text.split("=", 1)
        key, value = key.strip(), value.strip()
        return lambda row: row.tags.get(key) == value
    key = text.strip()
    return lambda row: key in row.tags


def _metric_matcher(text: str) -> Callable[[RunRow], bool]:
    name, op, threshold = parse_metric_filter(text)

    def match(row: RunRow) -> bool:
        value = row.metrics.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        return op(value, threshold)
    return match


def filter_rows(rows: list[RunRow], query: RunQuery) -> list[RunRow]:
    tests: list[Callable[[RunRow], bool]] = []
    if not query.children:
        tests.append(lambda row: not row.parent_run_id)
    if query.status:
        tests.append(lambda row: row.status == query.status)
    if query.tag:
        tests.append(_tag_matcher(query.tag))
    if query.metric:
        tests.append(_metric_matcher(query.metric))
    if query.q:
        needle = query.q.lower()
        tests.append(lambda row: needle in row.run_id.lower()
                     or needle in (row.display_name or "").lower())
    return [row for row in rows if all(test(row) for test in tests)]


def _sort_value(row: RunRow, sort: str) -> Any:
    if sort.startswith("metric:"):
        value = row.metrics.get(sort[7:])
        if isinstance(value, float) and math.isnan(value):
            return None
        return value
    if sort.startswith("tag:"):
        return row.tags.get(sort[4:])
    return row.duration if sort == "duration" else getattr(row, sort)


def sort_rows(rows: list[RunRow], sort: str, order: str) -> list[RunRow]:
    """Sorted rows; rows without a value come last whatever the order, mixed types by text."""
    keyed = [(_sort_value(row, sort), row) for row in rows]
    present = [(v, r) for v, r in keyed if v is not None]
    missing = [r for v, r in keyed if v is None]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v, _ in present)
    key = (lambda item: item[0]) if numeric else (lambda item: str(item[0]))
    present.sort(key=key, reverse=order == "desc")
    return [r for _, r in present] + missing


@dataclass(frozen=True)
class RunPage:
    rows: list[RunRow]
    total: int
    page: int
    pages: int
    metric_columns: list[str]
    tag_columns: list[str]


def run_page(rows: list[RunRow], query: RunQuery) -> RunPage:
    """Filter, sort and cut one page; columns are the metrics/tags the matching runs have."""
    matched = sort_rows(filter_rows(rows, query), query.sort, query.order)
    pages = max(1, math.ceil(len(matched) / query.per_page))
    page = min(query.page, pages)
    chunk = matched[(page - 1) * query.per_page: page * query.per_page]
    metric_counts: Counter[str] = Counter()
    tag_counts: Counter[str] = Counter()
    for row in matched:
        metric_counts.update(row.metrics.keys())
        tag_counts.update(row.tags.keys())
    metric_columns = sorted(n for n, _ in metric_counts.most_common(MAX_METRIC_COLUMNS))
    tag_columns = sorted(n for n, _ in tag_counts.most_common(MAX_METRIC_COLUMNS // 2))
    return RunPage(chunk, len(matched), page, pages, metric_columns, tag_columns)
