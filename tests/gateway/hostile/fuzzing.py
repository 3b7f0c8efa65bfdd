"""Running schemathesis over a whole OpenAPI document from inside one pytest test.

Schemathesis' own pytest integration for schemas known only at run time (`from_fixture`) does not work
with pytest 9 (it writes `request.node._nodeid`, which pytest no longer has), and these documents exist
only once the federation runs. So this builds the same per-operation Hypothesis tests schemathesis'
integration builds (examples, coverage and fuzzing phases; valid and invalid requests), runs each, and
reports every operation that failed, with schemathesis' own account of the failing request.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import hypothesis
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.pytest.lazy import get_all_tests

Check = Callable[[Any, Any, Any], bool | None]


def load(document: dict[str, Any], base_url: str) -> Any:
    schema = schemathesis.openapi.from_dict(copy.deepcopy(document))
    schema.config.update(base_url=base_url)
    return schema


def run(
    schema: Any,
    *,
    settings: hypothesis.settings,
    headers: Callable[[Any], dict[str, str]] | dict[str, str] | None = None,
    checks: Callable[[Any], Sequence[Check]] | Sequence[Check],
    timeout: float = 30.0,
    skip: Callable[[Any], bool] = lambda operation: False,
) -> list[str]:
    """Every operation of the schema, exercised; the failures as readable text (empty: all passed).

    `headers` and `checks` may depend on the operation (a callable taking it).
    """
    failures: list[str] = []
    operations = 0

    def call(case: Any) -> None:
        extra = headers(case.operation) if callable(headers) else (headers or {})
        chosen = checks(case.operation) if callable(checks) else checks
        case.call_and_validate(headers=extra, checks=list(chosen), timeout=timeout)

    for result in get_all_tests(schema=schema, test_func=call, settings=settings, given_kwargs=None):
        if not isinstance(result, Ok):
            failures.append(f"schema error: {result.err()}")
            continue
        operation, test = result.ok()
        if skip(operation):
            continue
        operations += 1
        try:
            test()
        except FailureGroup as exc:
            failures.append(f"{operation.label}:\n{_describe(exc)}")
        except Exception as exc:  # a check of ours, or the server gone (a crash is a finding too)
            failures.append(f"{operation.label}:\n  {type(exc).__name__}: {exc}")
    if operations == 0:
        failures.append("no operation was exercised")
    return failures


def _describe(group: FailureGroup) -> str:
    parts = []
    for failure in group.exceptions:
        parts.append(f"  - {type(failure).__name__}: {getattr(failure, 'title', '')} {failure}".rstrip())
    return "\n".join(parts) + f"\n{group}"
