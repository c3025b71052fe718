"""Parse MLflow filter strings and order_by clauses into small, checked values.

The grammar is MLflow's (``mlflow/utils/search_utils.py``): comparisons joined only by
``AND``; an identifier is ``<type>.<key>`` (no type means an attribute), with keys that
contain special characters in backticks or quotes; values are quoted strings, numbers, or
a parenthesised list of quoted strings for ``IN``/``NOT IN``.

``parse_filter`` only knows the grammar. What each searchable entity allows (which
attributes exist, which comparators apply, numeric or string values) is a ``SearchSpec``
that ``check`` applies, so every rejection names what was wrong.

Where MLflow's tokenizer (sqlparse) rejects harmless input, this parser accepts it: bare
keys with ``- : /`` (``params.a-b``), ``+1`` and ``1e+3``, extra spaces in ``IS NOT NULL``.
A quote inside a string value may be escaped by doubling it or with a backslash, and the
value is unescaped (MLflow compares the escaped text as written).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from labdeck.errors import InvalidParameter

ENTITY_TYPES = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}

NUMERIC_COMPARATORS = frozenset({"=", "!=", ">", ">=", "<", "<="})
STRING_COMPARATORS = frozenset({"=", "!=", "LIKE", "ILIKE"})
NULL_COMPARATORS = frozenset({"IS NULL", "IS NOT NULL"})
LIST_COMPARATORS = frozenset({"IN", "NOT IN"})
# MLflow names the canonical words in its errors.
_TYPE_WORDS = ["metric", "parameter", "tag", "attribute", "dataset"]


@dataclass(frozen=True, slots=True)
class Clause:
    """One comparison. ``value`` is a str, a float, a tuple of str (IN) or None (IS NULL).

    ``word`` is the entity-type word as written ("metrics", "tag", ...; "" when there was
    none); it only matters to specs that accept fewer words than MLflow's run search.
    """

    kind: str
    key: str
    op: str
    value: str | float | tuple[str, ...] | None
    quoted: bool = False
    word: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class OrderBy:
    kind: str
    key: str
    ascending: bool = True


@dataclass(frozen=True)
class SearchSpec:
    """What one searchable entity allows. Attribute names map to canonical names."""

    entity: str
    string_attributes: dict[str, str]
    numeric_attributes: dict[str, str]
    list_attributes: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset({"attribute", "tag"})
    tag_comparators: frozenset[str] = STRING_COMPARATORS | NULL_COMPARATORS
    string_comparators: frozenset[str] = STRING_COMPARATORS | LIST_COMPARATORS
    orderable_attributes: dict[str, str] = field(default_factory=dict)
    orderable_kinds: frozenset[str] = frozenset({"attribute"})
    forbidden_attributes: dict[str, str] = field(default_factory=dict)
    # The entity-type words accepted before a dot; None accepts every word of ENTITY_TYPES.
    kind_words: frozenset[str] | None = None

    def check_word(self, word: str) -> None:
        if word and self.kind_words is not None and word not in self.kind_words:
            raise InvalidParameter(
                f"Invalid entity type '{word}'. Valid entity types are {sorted(self.kind_words)}"
            )

    def attribute(self, key: str) -> tuple[str, bool]:
        """Canonical attribute name and whether it is numeric."""
        if key in self.forbidden_attributes:
            raise InvalidParameter(self.forbidden_attributes[key])
        if key in self.string_attributes:
            return self.string_attributes[key], False
        if key in self.numeric_attributes:
            return self.numeric_attributes[key], True
        valid = sorted({*self.string_attributes, *self.numeric_attributes})
        raise InvalidParameter(f"Invalid attribute key '{key}' specified. Valid keys are '{valid}'")


_WS = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z_][\w]*")
_BARE_KEY = re.compile(r"[\w.\-:/]+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?(?![\w.])")
# ``<>`` and ``NOT LIKE`` are read only to be refused by name, as MLflow refuses them.
_COMPARATOR = re.compile(r"(!=|<>|>=|<=|=|>|<|(?i:NOT\s+ILIKE|NOT\s+LIKE|NOT\s+IN|ILIKE|LIKE|IN|IS\s+NOT\s+NULL|IS\s+NULL))")
_BARE_VALUE = re.compile(r"[^\s]+")
_AND = re.compile(r"(?i:AND)(?![\w.`\"'])")


class _Cursor:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        m = _WS.match(self.text, self.pos)
        if m:
            self.pos = m.end()

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def match(self, pattern: re.Pattern[str]) -> str | None:
        self.skip_ws()
        m = pattern.match(self.text, self.pos)
        if not m:
            return None
        self.pos = m.end()
        return m.group(0)

    def quoted(self) -> str:
        """A '...', "..." or `...` string; the quote is escaped by doubling or a backslash."""
        quote = self.text[self.pos]
        out: list[str] = []
        i = self.pos + 1
        while i < len(self.text):
            ch = self.text[i]
            if ch == "\\" and i + 1 < len(self.text) and self.text[i + 1] in (quote, "\\"):
                out.append(self.text[i + 1])
                i += 2
                continue
            if ch == quote:
                if i + 1 < len(self.text) and self.text[i + 1] == quote:
                    out.append(quote)
                    i += 2
                    continue
                self.pos = i + 1
                return "".join(out)
            out.append(ch)
            i += 1
        raise InvalidParameter(f"Invalid filter string: unterminated quote at position {self.pos}: {self.text[self.pos:]!r}")

    def rest(self) -> str:
        return self.text[self.pos :]


def _identifier(cur: _Cursor) -> tuple[str, str]:
    """``(kind, key)``; ``kind`` is the type word as written, or "" when there is no type.

    Type words are case-sensitive (``metrics.x``, not ``METRICS.x``) and may be backticked
    (`` `metrics`.x ``); a key after the dot may be bare or in backticks, double or single
    quotes. A quoted identifier with no type is an attribute (`` `Run name` ``).
    """
    cur.skip_ws()
    ch = cur.peek()
    if ch in ("`", '"'):
        name = cur.quoted()
        if ch == "`" and cur.pos < len(cur.text) and cur.text[cur.pos] == ".":
            if name not in ENTITY_TYPES:
                raise InvalidParameter(f"Invalid entity type '{name}'. Valid values are {_TYPE_WORDS}")
            cur.pos += 1
            return name, _key(cur, name)
        return "", name
    start = cur.pos
    word = cur.match(_WORD)
    if word is None:
        raise InvalidParameter(f"Invalid filter string: expected an identifier at {cur.rest()!r}")
    if cur.pos < len(cur.text) and cur.text[cur.pos] == ".":
        if word in ENTITY_TYPES:
            cur.pos += 1
            return word, _key(cur, word)
        cur.pos = start
        raise InvalidParameter(f"Invalid entity type '{word}'. Valid values are {_TYPE_WORDS}")
    return "", word


def _key(cur: _Cursor, word: str) -> str:
    if cur.pos < len(cur.text) and cur.text[cur.pos] in ("`", '"', "'"):
        return cur.quoted()
    key = cur.match(_BARE_KEY)
    if not key:
        raise InvalidParameter(f"Invalid filter string: expected a key after '{word}.'")
    return key


def _kind(raw: str) -> str:
    return ENTITY_TYPES[raw] if raw else "attribute"


def _value(cur: _Cursor, op: str) -> tuple[str | float | tuple[str, ...], bool]:
    if cur.at_end():
        raise InvalidParameter(f"Invalid comparison clause: expected a value after '{op}'")
    ch = cur.peek()
    if op in LIST_COMPARATORS:
        if ch != "(":
            raise InvalidParameter(f"Invalid filter string: {op} expects a parenthesised list of quoted strings, got {cur.rest()!r}")
        cur.pos += 1
        items: list[str] = []
        while True:
            ch = cur.peek()
            if ch not in ("'", '"'):
                raise InvalidParameter(
                    "While parsing a list in the query, expected string value, punctuation, or whitespace, "
                    f"but got {cur.rest()[:20]!r}"
                )
            items.append(cur.quoted())
            ch = cur.peek()
            if ch == ",":
                cur.pos += 1
                continue
            if ch == ")":
                cur.pos += 1
                break
            raise InvalidParameter(f"Invalid filter string: unterminated list at {cur.rest()!r}")
        if not items:
            raise InvalidParameter("Invalid filter string: an IN list must not be empty")
        return tuple(items), True
    if ch in ("'", '"'):
        return cur.quoted(), True
    number = cur.match(_NUMBER)
    if number is not None:
        return float(number), False
    bare = cur.match(_BARE_VALUE)
    return (bare or ""), False


def parse_filter(text: str | None) -> list[Clause]:
    """Parse a filter string; empty or None means no clauses.

    Like MLflow, a stray ``AND`` (leading, trailing or doubled) joins nothing and is ignored.
    """
    if not text or not text.strip():
        return []
    cur = _Cursor(text)
    clauses: list[Clause] = []
    while True:
        while cur.match(_AND):
            pass
        if cur.at_end():
            return clauses
        if cur.peek() == "(":
            raise InvalidParameter(f"Invalid clause(s) in filter string: parentheses are not allowed, in {text!r}")
        raw_kind, key = _identifier(cur)
        op_raw = cur.match(_COMPARATOR)
        if op_raw is None:
            raise InvalidParameter(f"Invalid filter string: expected a comparator after '{key}', got {cur.rest()!r}")
        op = " ".join(op_raw.upper().split())
        if op == "<>" or (op.startswith("NOT ") and op != "NOT IN"):
            raise InvalidParameter(f"Invalid comparator '{op}' in filter string {text!r}")
        kind = _kind(raw_kind)
        if op in NULL_COMPARATORS:
            clauses.append(Clause(kind, key, op, None, word=raw_kind))
        else:
            value, quoted = _value(cur, op)
            clauses.append(Clause(kind, key, op, value, quoted, word=raw_kind))
        if cur.at_end():
            return clauses
        if cur.match(_AND) is None:
            found = cur.match(_WORD)
            raise InvalidParameter(f"Invalid clause(s) in filter string: '{found or cur.rest()[:20]}'")


def check(clauses: list[Clause], spec: SearchSpec) -> list[Clause]:
    """Apply an entity's rules; returns clauses with attribute keys made canonical."""
    checked: list[Clause] = []
    for clause in clauses:
        spec.check_word(clause.word)
        if clause.kind not in spec.kinds:
            raise InvalidParameter(
                f"Invalid entity type '{clause.kind}' for {spec.entity}. Valid values are {sorted(spec.kinds)}"
            )
        if clause.kind == "attribute":
            checked.append(_check_attribute(clause, spec))
        elif clause.kind == "metric":
            _comparator(clause, NUMERIC_COMPARATORS)
            if clause.quoted or not isinstance(clause.value, float):
                raise InvalidParameter(f"Expected numeric value type for metric. Found {_shown(clause)}")
            checked.append(clause)
        elif clause.kind in ("param", "tag"):
            _comparator(clause, spec.tag_comparators)
            _quoted_string(clause)
            checked.append(clause)
        elif clause.kind == "dataset":
            if clause.key not in ("name", "digest", "context"):
                raise InvalidParameter(
                    f"Invalid dataset key '{clause.key}' specified. Valid keys are '['name', 'digest', 'context']'"
                )
            _comparator(clause, STRING_COMPARATORS | LIST_COMPARATORS)
            _quoted_string(clause)
            checked.append(clause)
    return checked


def _check_attribute(clause: Clause, spec: SearchSpec) -> Clause:
    name, numeric = spec.attribute(clause.key)
    if numeric:
        _comparator(clause, NUMERIC_COMPARATORS)
        if clause.quoted or not isinstance(clause.value, float):
            raise InvalidParameter(
                f"Expected numeric value type for numeric attribute: {clause.key}. Found {_shown(clause)}"
            )
        return Clause("attribute", name, clause.op, clause.value, False, clause.word)
    _comparator(clause, spec.string_comparators)
    if clause.op in LIST_COMPARATORS and name not in spec.list_attributes:
        raise InvalidParameter(
            f"Only {sorted(spec.list_attributes)} attributes support comparison with a list of quoted string values."
        )
    _quoted_string(clause)
    return Clause("attribute", name, clause.op, clause.value, True, clause.word)


def _comparator(clause: Clause, allowed: frozenset[str]) -> None:
    if clause.op not in allowed:
        raise InvalidParameter(
            f"Invalid comparator '{clause.op}' not one of '{sorted(allowed)}' for {clause.kind} '{clause.key}'"
        )


def _quoted_string(clause: Clause) -> None:
    if clause.op in NULL_COMPARATORS:
        return
    if clause.quoted:
        return
    if isinstance(clause.value, float):
        what = {"param": "parameter", "tag": "tag", "attribute": "attributes", "dataset": "dataset attributes"}
        example = " (e.g. 'my-value')" if clause.kind in ("param", "tag") else ""
        raise InvalidParameter(
            f"Expected a quoted string value for {what.get(clause.kind, clause.kind)}{example}. "
            f"Got value {_shown(clause)}"
        )
    raise InvalidParameter(
        "Parameter value is either not quoted or unidentified quote types used for string value "
        f"{_shown(clause)}. Use either single or double quotes."
    )


def _shown(clause: Clause) -> str:
    """The value as it was written, near enough for an error message."""
    value = clause.value
    if isinstance(value, tuple):
        return "(" + ", ".join(f"'{v}'" for v in value) + ")"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"'{value}'" if clause.quoted else str(value)


_DIRECTION = re.compile(r"\s+(?i:(ASC|DESC))\s*$")


def parse_order_by(entries: list[str], spec: SearchSpec) -> list[OrderBy]:
    """``"<identifier> [ASC|DESC]"`` entries, checked against the spec; a field twice is an error."""
    result: list[OrderBy] = []
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise InvalidParameter(f"Invalid order_by clause '{entry}'. Could not be parsed.")
        text = entry.strip()
        ascending = True
        m = _DIRECTION.search(text)
        if m:
            ascending = m.group(1).upper() == "ASC"
            text = text[: m.start()]
        cur = _Cursor(text)
        try:
            raw_kind, key = _identifier(cur)
        except InvalidParameter as e:
            if str(e).startswith("Invalid entity type"):
                raise
            raise InvalidParameter(f"Invalid order_by clause '{entry}'. Could not be parsed.") from None
        if not cur.at_end():
            raise InvalidParameter(f"Invalid order_by clause '{entry}'. Could not be parsed.")
        spec.check_word(raw_kind)
        kind = _kind(raw_kind)
        if kind not in spec.orderable_kinds:
            raise InvalidParameter(f"Invalid order_by entity type '{raw_kind or kind}'")
        if kind == "attribute":
            if key not in spec.orderable_attributes:
                raise InvalidParameter(
                    f"Invalid order by key '{key}' specified. Valid keys are '{sorted(spec.orderable_attributes)}'"
                )
            key = spec.orderable_attributes[key]
        if (kind, key) in seen:
            raise InvalidParameter(f"`order_by` contains duplicate fields: {entries}")
        seen.add((kind, key))
        result.append(OrderBy(kind, key, ascending))
    return result
