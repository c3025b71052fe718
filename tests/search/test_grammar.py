"""MLflow's search grammar (api-surface a.4): ``parse_filter``, ``check`` and ``parse_order_by``.

Every accepted form is checked for the clauses it produces, every rejection for its
message. Two properties close the gaps between examples: random well-formed filters parse
back to the clauses they were written from, and on the forms MLflow's own parser
(``SearchUtils``, sqlparse-based) handles, it and ours produce the same clauses.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labdeck.errors import InvalidParameter
from labdeck.search.grammar import Clause, OrderBy, check, parse_filter, parse_order_by
from labdeck.tracking.logged_models import LOGGED_MODEL_SPEC
from labdeck.tracking.run_search import RUN_SPEC
from labdeck.tracking.store import EXPERIMENT_SPEC


def runs(text: str) -> list[tuple]:
    return [(c.kind, c.key, c.op, c.value) for c in check(parse_filter(text), RUN_SPEC)]


def experiments(text: str) -> list[tuple]:
    return [(c.kind, c.key, c.op, c.value) for c in check(parse_filter(text), EXPERIMENT_SPEC)]


def rejected(text: str, message: str, spec=RUN_SPEC) -> None:
    with pytest.raises(InvalidParameter) as info:
        check(parse_filter(text), spec)
    assert str(info.value) == message


# ---------------------------------------------------------------------------- accepted


def test_empty_filters_have_no_clauses():
    assert parse_filter(None) == []
    assert parse_filter("") == []
    assert parse_filter("   ") == []


@pytest.mark.parametrize(
    ("word", "kind"),
    [
        ("metric", "metric"),
        ("metrics", "metric"),
        ("param", "param"),
        ("params", "param"),
        ("parameter", "param"),
        ("parameters", "param"),
        ("tag", "tag"),
        ("tags", "tag"),
        ("attribute", "attribute"),
        ("attributes", "attribute"),
        ("attr", "attribute"),
        ("run", "attribute"),
        ("dataset", "dataset"),
        ("datasets", "dataset"),
    ],
)
def test_every_entity_type_alias(word, kind):
    value = {"metric": "1", "attribute": "'a'", "dataset": "'a'"}.get(kind, "'a'")
    key = {"attribute": "run_id", "dataset": "name"}.get(kind, "k")
    expected = 1.0 if kind == "metric" else "a"
    assert runs(f"{word}.{key} = {value}") == [(kind, key, "=", expected)]
    # the type word may be backticked, as MLflow trims backticks from it
    assert runs(f"`{word}`.{key} = {value}") == [(kind, key, "=", expected)]


def test_an_identifier_without_type_is_an_attribute():
    assert runs("status = 'FINISHED'") == [("attribute", "status", "=", "FINISHED")]


@pytest.mark.parametrize(
    "text",
    [
        "tags.`mlflow.runName` = 'x'",
        'tags."mlflow.runName" = \'x\'',
        "tags.'mlflow.runName' = 'x'",
        "tags.mlflow.runName = 'x'",
    ],
)
def test_keys_bare_backticked_or_quoted(text):
    assert runs(text) == [("tag", "mlflow.runName", "=", "x")]


def test_quoted_keys_keep_spaces_and_special_characters():
    assert runs("metrics.`my metric` > 1") == [("metric", "my metric", ">", 1.0)]
    assert runs('params."a b = c" = \'v\'') == [("param", "a b = c", "=", "v")]
    assert runs("params.`a``b` = 'v'") == [("param", "a`b", "=", "v")]


def test_bare_keys_may_hold_the_key_characters_mlflow_allows():
    # MLflow's sqlparse wants these backticked; accepting them bare is harmless
    assert runs("params.a-b = 'x' AND metrics.a/b:c > 0") == [
        ("param", "a-b", "=", "x"),
        ("metric", "a/b:c", ">", 0.0),
    ]


@pytest.mark.parametrize("alias", ["run_name", "`Run name`", '"Run Name"', "`run name`", "attributes.`Run name`"])
def test_run_name_aliases(alias):
    assert runs(f"{alias} = 'x'") == [("attribute", "run_name", "=", "x")]


@pytest.mark.parametrize("alias", ["created", "Created", "attributes.created", "start_time"])
def test_created_is_start_time(alias):
    assert runs(f"{alias} >= 1700000000000") == [("attribute", "start_time", ">=", 1700000000000.0)]


@pytest.mark.parametrize("attribute", ["run_id", "run_name", "user_id", "status", "artifact_uri"])
@pytest.mark.parametrize("op", ["=", "!=", "LIKE", "ILIKE"])
def test_string_attributes(attribute, op):
    assert runs(f"attributes.{attribute} {op} 'v%'") == [("attribute", attribute, op, "v%")]


@pytest.mark.parametrize("op", ["=", "!=", ">", ">=", "<", "<="])
def test_numeric_comparators(op):
    assert runs(f"metrics.m {op} 2 AND end_time {op} 3") == [
        ("metric", "m", op, 2.0),
        ("attribute", "end_time", op, 3.0),
    ]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("0", 0.0),
        ("-2", -2.0),
        ("1.5", 1.5),
        ("-1.5", -1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e5", 1e5),
        ("1E5", 1e5),
        ("2.5e-3", 2.5e-3),
        ("-2.5E-3", -2.5e-3),
        ("1e+3", 1e3),
        ("+1", 1.0),
    ],
)
def test_numbers(literal, value):
    assert runs(f"metrics.m > {literal}") == [("metric", "m", ">", value)]
    assert runs(f"metrics.m>{literal}") == [("metric", "m", ">", value)]


@pytest.mark.parametrize("op", ["LIKE", "ILIKE", "like", "ilike", "Like", "iLike"])
def test_like_and_ilike_in_any_case(op):
    assert runs(f"params.p {op} '%a_'") == [("param", "p", op.upper(), "%a_")]
    assert runs(f"tags.t {op} '%a_'") == [("tag", "t", op.upper(), "%a_")]


def test_in_and_not_in_on_run_id():
    assert runs("run_id IN ('a', 'b')") == [("attribute", "run_id", "IN", ("a", "b"))]
    assert runs('attributes.run_id in ("a")') == [("attribute", "run_id", "IN", ("a",))]
    assert runs("run_id NOT IN ('a','b')") == [("attribute", "run_id", "NOT IN", ("a", "b"))]
    assert runs("run_id not   in ( 'a' , \"b\" )") == [("attribute", "run_id", "NOT IN", ("a", "b"))]


@pytest.mark.parametrize("key", ["name", "digest", "context"])
def test_dataset_keys(key):
    assert runs(f"dataset.{key} IN ('a', 'b') AND datasets.{key} ILIKE 'x%'") == [
        ("dataset", key, "IN", ("a", "b")),
        ("dataset", key, "ILIKE", "x%"),
    ]


@pytest.mark.parametrize("kind", ["params", "tags"])
def test_is_null_and_is_not_null(kind):
    assert runs(f"{kind}.k IS NULL") == [(kind[:-1], "k", "IS NULL", None)]
    assert runs(f"{kind}.k is not null") == [(kind[:-1], "k", "IS NOT NULL", None)]
    assert runs(f"{kind}.k IS  NOT  NULL") == [(kind[:-1], "k", "IS NOT NULL", None)]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'it''s'", "it's"),
        ("'it\\'s'", "it's"),
        ('"say ""hi"""', 'say "hi"'),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"it\'s"', "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        ("'back\\\\slash'", "back\\slash"),
        ("''", ""),
        ("'a AND b'", "a AND b"),
        ("'(x)'", "(x)"),
    ],
)
def test_string_values_and_escaped_quotes(literal, value):
    assert runs(f"tags.t = {literal}") == [("tag", "t", "=", value)]


def test_and_in_any_case_and_stray_ands_are_ignored():
    expected = [("metric", "a", ">", 1.0), ("param", "b", "=", "x")]
    for text in [
        "metrics.a > 1 AND params.b = 'x'",
        "metrics.a > 1 and params.b = 'x'",
        "metrics.a > 1 aNd params.b = 'x'",
        "AND metrics.a > 1 AND params.b = 'x'",
        "metrics.a > 1 AND AND params.b = 'x'",
        "metrics.a > 1 AND params.b = 'x' AND",
        "  metrics.a>1   AND\tparams.b='x'  ",
    ]:
        assert runs(text) == expected, text


def test_clauses_keep_their_order_and_repeat():
    assert runs("metrics.a > 1 AND metrics.a < 5 AND tags.t != 'x'") == [
        ("metric", "a", ">", 1.0),
        ("metric", "a", "<", 5.0),
        ("tag", "t", "!=", "x"),
    ]


def test_check_returns_canonical_attribute_names_and_marks_strings_quoted():
    [clause] = check(parse_filter("`Run Name` LIKE 'a%'"), RUN_SPEC)
    assert clause == Clause("attribute", "run_name", "LIKE", "a%", True)
    [clause] = check(parse_filter("Created < 5"), RUN_SPEC)
    assert clause == Clause("attribute", "start_time", "<", 5.0, False)


# ---------------------------------------------------------------------------- rejected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.x > 1 OR metrics.y > 1", "Invalid clause(s) in filter string: 'OR'"),
        ("metrics.x > 1 or metrics.y > 1", "Invalid clause(s) in filter string: 'or'"),
        (
            "(metrics.x > 1)",
            "Invalid clause(s) in filter string: parentheses are not allowed, in '(metrics.x > 1)'",
        ),
        (
            "metrics.x > 1 AND (metrics.y > 1)",
            "Invalid clause(s) in filter string: parentheses are not allowed, in 'metrics.x > 1 AND (metrics.y > 1)'",
        ),
        ("metrics.x > 1 metrics.y > 2", "Invalid clause(s) in filter string: 'metrics'"),
    ],
)
def test_only_and_joins_clauses(text, message):
    rejected(text, message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "status = FINISHED",
            "Parameter value is either not quoted or unidentified quote types used for string value FINISHED. "
            "Use either single or double quotes.",
        ),
        ("params.lr = 0.1", "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 0.1"),
        ("tags.t = 1", "Expected a quoted string value for tag (e.g. 'my-value'). Got value 1"),
        ("run_id = 7", "Expected a quoted string value for attributes. Got value 7"),
        ("dataset.name = 7", "Expected a quoted string value for dataset attributes. Got value 7"),
    ],
)
def test_string_values_must_be_quoted(text, message):
    rejected(text, message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.x > '0.5'", "Expected numeric value type for metric. Found '0.5'"),
        ('metrics.x > "1"', "Expected numeric value type for metric. Found '1'"),
        ("metrics.x = abc", "Expected numeric value type for metric. Found abc"),
        ("start_time = '100'", "Expected numeric value type for numeric attribute: start_time. Found '100'"),
        ("created > x", "Expected numeric value type for numeric attribute: created. Found x"),
    ],
)
def test_numeric_values_must_be_numbers(text, message):
    rejected(text, message)


@pytest.mark.parametrize("attribute", ["status", "run_name", "user_id", "artifact_uri", "`Run name`"])
def test_in_only_on_run_id(attribute):
    message = "Only ['run_id'] attributes support comparison with a list of quoted string values."
    rejected(f"{attribute} IN ('a')", message)
    rejected(f"{attribute} NOT IN ('a')", message)


@pytest.mark.parametrize("text", ["lifecycle_stage = 'active'", "attributes.lifecycle_stage = 'deleted'"])
def test_lifecycle_stage_is_not_searchable(text):
    rejected(text, "Invalid attribute key 'lifecycle_stage' specified: use run_view_type to select deleted runs.")


def test_unknown_attribute():
    rejected("foo = 'x'", _unknown_attribute_message("foo"))
    rejected("attributes.experiment_id = '1'", _unknown_attribute_message("experiment_id"))


def _unknown_attribute_message(key: str) -> str:
    return (
        f"Invalid attribute key '{key}' specified. Valid keys are '['Created', 'Run Name', 'Run name', "
        "'artifact_uri', 'created', 'end_time', 'run name', 'run_id', 'run_name', 'start_time', 'status', 'user_id']'"
    )


@pytest.mark.parametrize("word", ["bad", "METRICS", "Metrics", "Tags", "`bad`", "model"])
def test_unknown_entity_type(word):
    shown = word.strip("`")
    rejected(
        f"{word}.x = 'a'",
        f"Invalid entity type '{shown}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.x <> 1", "Invalid comparator '<>' in filter string 'metrics.x <> 1'"),
        ("tags.x NOT LIKE 'a'", "Invalid comparator 'NOT LIKE' in filter string \"tags.x NOT LIKE 'a'\""),
        (
            "metrics.x LIKE 'a'",
            "Invalid comparator 'LIKE' not one of '['!=', '<', '<=', '=', '>', '>=']' for metric 'x'",
        ),
        (
            "metrics.x IS NULL",
            "Invalid comparator 'IS NULL' not one of '['!=', '<', '<=', '=', '>', '>=']' for metric 'x'",
        ),
        (
            "params.x IN ('a')",
            "Invalid comparator 'IN' not one of '['!=', '=', 'ILIKE', 'IS NOT NULL', 'IS NULL', 'LIKE']' for param 'x'",
        ),
        (
            "run_id IS NULL",
            "Invalid comparator 'IS NULL' not one of '['!=', '=', 'ILIKE', 'IN', 'LIKE', 'NOT IN']' for attribute 'run_id'",
        ),
        (
            "start_time LIKE '1%'",
            "Invalid comparator 'LIKE' not one of '['!=', '<', '<=', '=', '>', '>=']' for attribute 'start_time'",
        ),
        (
            "dataset.name IS NULL",
            "Invalid comparator 'IS NULL' not one of '['!=', '=', 'ILIKE', 'IN', 'LIKE', 'NOT IN']' for dataset 'name'",
        ),
        ("dataset.foo = 'a'", "Invalid dataset key 'foo' specified. Valid keys are '['name', 'digest', 'context']'"),
    ],
)
def test_comparators_per_entity(text, message):
    rejected(text, message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tags.x = 'a", "Invalid filter string: unterminated quote at position 9: \"'a\""),
        ("metrics.x", "Invalid filter string: expected a comparator after 'x', got ''"),
        ("metrics.x >", "Invalid comparison clause: expected a value after '>'"),
        ("metrics. > 1", "Invalid filter string: expected a key after 'metrics.'"),
        (
            "run_id IN ()",
            "While parsing a list in the query, expected string value, punctuation, or whitespace, but got ')'",
        ),
        (
            "run_id IN ('a', 1)",
            "While parsing a list in the query, expected string value, punctuation, or whitespace, but got '1)'",
        ),
        (
            "run_id IN 'a'",
            "Invalid filter string: IN expects a parenthesised list of quoted strings, got \"'a'\"",
        ),
        ("= 'a'", "Invalid filter string: expected an identifier at \"= 'a'\""),
    ],
)
def test_malformed_filters(text, message):
    rejected(text, message)


# ---------------------------------------------------------------------------- experiments, logged models


def test_experiment_filters():
    assert experiments("name LIKE 'a%' AND attribute.name != 'b'") == [
        ("attribute", "name", "LIKE", "a%"),
        ("attribute", "name", "!=", "b"),
    ]
    assert experiments("experiment_id IN ('1', '2')") == [("attribute", "experiment_id", "IN", ("1", "2"))]
    assert experiments("creation_time >= 5 AND last_update_time < 7") == [
        ("attribute", "creation_time", ">=", 5.0),
        ("attribute", "last_update_time", "<", 7.0),
    ]
    assert experiments("tags.t IS NULL AND tag.u ILIKE 'X'") == [("tag", "t", "IS NULL", None), ("tag", "u", "ILIKE", "X")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name IN ('a')", "Only ['experiment_id'] attributes support comparison with a list of quoted string values."),
        (
            "attributes.name = 'a'",
            "Invalid entity type 'attributes'. Valid entity types are ['attribute', 'tag', 'tags']",
        ),
        ("metrics.m > 1", "Invalid entity type 'metrics'. Valid entity types are ['attribute', 'tag', 'tags']"),
        ("params.p = 'a'", "Invalid entity type 'params'. Valid entity types are ['attribute', 'tag', 'tags']"),
        (
            "lifecycle_stage = 'active'",
            "Invalid attribute key 'lifecycle_stage' specified: use view_type to select deleted experiments.",
        ),
        (
            "foo = 'a'",
            "Invalid attribute key 'foo' specified. Valid keys are "
            "'['creation_time', 'experiment_id', 'last_update_time', 'name']'",
        ),
        (
            "tags.t IN ('a')",
            "Invalid comparator 'IN' not one of '['!=', '=', 'ILIKE', 'IS NOT NULL', 'IS NULL', 'LIKE']' for tag 't'",
        ),
        ("name = 'a' OR name = 'b'", "Invalid clause(s) in filter string: 'OR'"),
    ],
)
def test_experiment_rejections(text, message):
    rejected(text, message, EXPERIMENT_SPEC)


def test_logged_model_filters_take_mlflows_plural_words_and_lists_on_tags():
    clauses = check(
        parse_filter("metrics.acc > 0.5 AND params.p IN ('a') AND tags.t NOT IN ('b') AND name LIKE 'm%'"),
        LOGGED_MODEL_SPEC,
    )
    assert [(c.kind, c.key, c.op, c.value) for c in clauses] == [
        ("metric", "acc", ">", 0.5),
        ("param", "p", "IN", ("a",)),
        ("tag", "t", "NOT IN", ("b",)),
        ("attribute", "name", "LIKE", "m%"),
    ]
    rejected(
        "metric.acc > 1",
        "Invalid entity type 'metric'. Valid entity types are ['attributes', 'metrics', 'params', 'tags']",
        LOGGED_MODEL_SPEC,
    )


# ---------------------------------------------------------------------------- order_by


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("metrics.m", OrderBy("metric", "m", True)),
        ("metrics.m DESC", OrderBy("metric", "m", False)),
        ("metric.m desc", OrderBy("metric", "m", False)),
        ("metrics.m ASC", OrderBy("metric", "m", True)),
        ("metrics.m   Desc  ", OrderBy("metric", "m", False)),
        ("metrics.`m x` DESC", OrderBy("metric", "m x", False)),
        ('metrics."m x"', OrderBy("metric", "m x", True)),
        ("metrics.'m x'", OrderBy("metric", "m x", True)),
        ("`metrics`.m", OrderBy("metric", "m", True)),
        ("params.p", OrderBy("param", "p", True)),
        ("parameters.p DESC", OrderBy("param", "p", False)),
        ("tags.`mlflow.runName` DESC", OrderBy("tag", "mlflow.runName", False)),
        ("start_time", OrderBy("attribute", "start_time", True)),
        ("created DESC", OrderBy("attribute", "start_time", False)),
        ("Created", OrderBy("attribute", "start_time", True)),
        ("attributes.run_name", OrderBy("attribute", "run_name", True)),
        ("attr.end_time DESC", OrderBy("attribute", "end_time", False)),
        ("run.run_id", OrderBy("attribute", "run_id", True)),
        ("user_id", OrderBy("attribute", "user_id", True)),
        ("status", OrderBy("attribute", "status", True)),
        ("artifact_uri", OrderBy("attribute", "artifact_uri", True)),
    ],
)
def test_order_by_forms(entry, expected):
    assert parse_order_by([entry], RUN_SPEC) == [expected]


def test_order_by_keeps_entries_in_order():
    assert parse_order_by(["metrics.m DESC", "params.p", "start_time"], RUN_SPEC) == [
        OrderBy("metric", "m", False),
        OrderBy("param", "p", True),
        OrderBy("attribute", "start_time", True),
    ]
    assert parse_order_by([], RUN_SPEC) == []


@pytest.mark.parametrize(
    "entries",
    [
        ["metrics.m", "metrics.m DESC"],
        ["metrics.m", "metric.m"],
        ["created", "start_time"],
        ["params.p", "parameters.p DESC"],
    ],
)
def test_order_by_duplicate_fields(entries):
    with pytest.raises(InvalidParameter) as info:
        parse_order_by(entries, RUN_SPEC)
    assert str(info.value) == f"`order_by` contains duplicate fields: {entries}"


def test_order_by_same_key_of_different_kinds_is_no_duplicate():
    assert len(parse_order_by(["metrics.k", "params.k", "tags.k"], RUN_SPEC)) == 3


_RUN_ORDER_KEYS = "['Created', 'artifact_uri', 'created', 'end_time', 'run_id', 'run_name', 'start_time', 'status', 'user_id']"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("metrics.m DESCENDING", "Invalid order_by clause 'metrics.m DESCENDING'. Could not be parsed."),
        ("metrics.m DESC ASC", "Invalid order_by clause 'metrics.m DESC ASC'. Could not be parsed."),
        ("metrics.m,params.p", "Invalid order_by clause 'metrics.m,params.p'. Could not be parsed."),
        ("", "Invalid order_by clause ''. Could not be parsed."),
        ("   ", "Invalid order_by clause '   '. Could not be parsed."),
        ("foo", f"Invalid order by key 'foo' specified. Valid keys are '{_RUN_ORDER_KEYS}'"),
        ("lifecycle_stage", f"Invalid order by key 'lifecycle_stage' specified. Valid keys are '{_RUN_ORDER_KEYS}'"),
        ("`Run name`", f"Invalid order by key 'Run name' specified. Valid keys are '{_RUN_ORDER_KEYS}'"),
        ("dataset.name", "Invalid order_by entity type 'dataset'"),
        (
            "METRICS.m",
            "Invalid entity type 'METRICS'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']",
        ),
        ("bad.x DESC", "Invalid entity type 'bad'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"),
    ],
)
def test_bad_order_by(entry, message):
    with pytest.raises(InvalidParameter) as info:
        parse_order_by([entry], RUN_SPEC)
    assert str(info.value) == message


def test_experiment_order_by():
    assert parse_order_by(["name DESC", "attribute.creation_time"], EXPERIMENT_SPEC) == [
        OrderBy("attribute", "name", False),
        OrderBy("attribute", "creation_time", True),
    ]
    for entry, message in [
        ("tags.t", "Invalid order_by entity type 'tags'"),
        ("attributes.name", "Invalid entity type 'attributes'. Valid entity types are ['attribute', 'tag', 'tags']"),
        (
            "lifecycle_stage",
            "Invalid order by key 'lifecycle_stage' specified. Valid keys are "
            "'['creation_time', 'experiment_id', 'last_update_time', 'name']'",
        ),
    ]:
        with pytest.raises(InvalidParameter) as info:
            parse_order_by([entry], EXPERIMENT_SPEC)
        assert str(info.value) == message


# ---------------------------------------------------------------------------- properties

_WORDS = {
    "metric": ["metric", "metrics"],
    "param": ["param", "params", "parameter", "parameters"],
    "tag": ["tag", "tags"],
    "attribute": ["", "attribute", "attributes", "attr", "run"],
    "dataset": ["dataset", "datasets"],
}
_STRING_ATTRIBUTES = {
    "run_id": "run_id",
    "run_name": "run_name",
    "user_id": "user_id",
    "status": "status",
    "artifact_uri": "artifact_uri",
    "Run name": "run_name",
    "run name": "run_name",
    "Run Name": "run_name",
}
_NUMERIC_ATTRIBUTES = {"start_time": "start_time", "end_time": "end_time", "created": "start_time", "Created": "start_time"}

_bare_keys = st.from_regex(r"\A[A-Za-z_][\w.\-:/]{0,12}\Z")
_any_keys = st.text(st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=12)
_values = st.text(st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=("Cs",)), max_size=12)


def _cased(draw, word: str) -> str:
    return "".join(ch.upper() if draw(st.booleans()) else ch.lower() for ch in word)


def _quote_key(draw, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][\w.\-:/]*", key) and draw(st.booleans()):
        return key
    quote = draw(st.sampled_from(["`", '"', "'"]))
    return quote + key.replace("\\", "\\\\").replace(quote, quote * 2) + quote


def _quote_value(draw, value: str) -> str:
    """A quote inside is doubled or backslashed; a backslash is always backslashed."""
    quote = draw(st.sampled_from(["'", '"']))
    value = value.replace("\\", "\\\\")
    if draw(st.booleans()):
        return quote + value.replace(quote, quote * 2) + quote
    return quote + value.replace(quote, "\\" + quote) + quote


def _number(draw) -> tuple[str, float]:
    style = draw(st.sampled_from(["int", "decimal", "exponent"]))
    if style == "int":
        n = draw(st.integers(-(10**15), 10**15))
        return str(n), float(n)
    if style == "decimal":
        text = f"{draw(st.integers(-(10**6), 10**6))}.{draw(st.integers(0, 999)):03d}"
        return text, float(text)
    text = f"{draw(st.integers(-99, 99))}{draw(st.sampled_from(['e', 'E']))}{draw(st.sampled_from(['', '-', '+']))}{draw(st.integers(0, 30))}"
    return text, float(text)


@st.composite
def clause_and_text(draw, mlflow_safe: bool = False):
    """One comparison, as the Clause ``check`` should return and as filter text."""
    kind = draw(st.sampled_from(["metric", "param", "tag", "attribute", "dataset"]))
    word = draw(st.sampled_from(_WORDS[kind]))
    if mlflow_safe:
        def key_text(key: str) -> str:
            return key if draw(st.booleans()) else f"`{key}`"

        def value_text(value: str) -> str:
            return f"'{value}'" if draw(st.booleans()) else f'"{value}"'

        def op_text(op: str) -> str:
            return op
    else:
        def key_text(key: str) -> str:
            return _quote_key(draw, key)

        def value_text(value: str) -> str:
            return _quote_value(draw, value)

        def op_text(op: str) -> str:
            return (" " * draw(st.integers(1, 2))).join(_cased(draw, part) for part in op.split())

    safe_keys = st.from_regex(r"\Ak_[A-Za-z0-9_]{0,8}\Z")
    safe_values = st.from_regex(r"\A[A-Za-z0-9_%. -]{0,10}\Z")
    keys = safe_keys if mlflow_safe else st.one_of(_bare_keys, _any_keys)
    values = safe_values if mlflow_safe else _values
    prefix = f"{word}." if word else ""

    if kind == "metric":
        key = draw(keys)
        op = draw(st.sampled_from(["=", "!=", ">", ">=", "<", "<="]))
        literal, number = _number(draw)
        if mlflow_safe:
            literal = literal.replace("+", "")
            number = float(literal)
        return Clause("metric", key, op, number), f"{prefix}{key_text(key)} {op} {literal}"
    if kind in ("param", "tag"):
        key = draw(keys)
        op = draw(st.sampled_from(["=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"]))
        if op.startswith("IS"):
            return Clause(kind, key, op, None), f"{prefix}{key_text(key)} {op_text(op)}"
        value = draw(values)
        return Clause(kind, key, op, value, True), f"{prefix}{key_text(key)} {op_text(op)} {value_text(value)}"
    if kind == "dataset":
        key = draw(st.sampled_from(["name", "digest", "context"]))
        op = draw(st.sampled_from(["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"]))
        if op in ("IN", "NOT IN"):
            items = tuple(draw(st.lists(values, min_size=1, max_size=3)))
            listed = "(" + ", ".join(value_text(v) for v in items) + ")"
            return Clause("dataset", key, op, items, True), f"{prefix}{key} {op_text(op)} {listed}"
        value = draw(values)
        return Clause("dataset", key, op, value, True), f"{prefix}{key} {op_text(op)} {value_text(value)}"
    if draw(st.booleans()):
        written = draw(st.sampled_from(sorted(_NUMERIC_ATTRIBUTES)))
        op = draw(st.sampled_from(["=", "!=", ">", ">=", "<", "<="]))
        n = draw(st.integers(0, 2**53))
        return Clause("attribute", _NUMERIC_ATTRIBUTES[written], op, float(n)), f"{prefix}{written} {op} {n}"
    written = draw(st.sampled_from(sorted(_STRING_ATTRIBUTES)))
    name = f"`{written}`" if " " in written else written
    if written == "run_id" and draw(st.booleans()):
        op = draw(st.sampled_from(["IN", "NOT IN"]))
        items = tuple(draw(st.lists(values, min_size=1, max_size=3)))
        listed = "(" + ", ".join(value_text(v) for v in items) + ")"
        return Clause("attribute", "run_id", op, items, True), f"{prefix}{name} {op_text(op)} {listed}"
    op = draw(st.sampled_from(["=", "!=", "LIKE", "ILIKE"]))
    value = draw(values)
    return Clause("attribute", _STRING_ATTRIBUTES[written], op, value, True), f"{prefix}{name} {op_text(op)} {value_text(value)}"


@st.composite
def filters(draw, mlflow_safe: bool = False):
    pairs = draw(st.lists(clause_and_text(mlflow_safe), min_size=1, max_size=5))
    if mlflow_safe:
        joiners = [" AND "] * (len(pairs) - 1)
    else:
        joiners = [draw(st.sampled_from([" AND ", " and ", "  And\t", "\nAND\n"])) for _ in pairs[1:]]
    text = pairs[0][1] + "".join(j + t for j, (_, t) in zip(joiners, pairs[1:], strict=True))
    return [c for c, _ in pairs], text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters())
def test_round_trip(generated):
    clauses, text = generated
    assert check(parse_filter(text), RUN_SPEC) == clauses


def _mlflow_clauses(text: str) -> list[Clause]:
    from mlflow.utils.search_utils import SearchUtils

    out = []
    for c in SearchUtils.parse_search_filter(text):
        kind = {"parameter": "param"}.get(c["type"], c["type"])
        key = SearchUtils.translate_key_alias(c["key"]) if kind == "attribute" else c["key"]
        value = c["value"]
        if kind == "metric" or isinstance(value, int):
            value = float(value)
        elif isinstance(value, list):
            value = tuple(value)
        quoted = kind != "metric" and value is not None and not isinstance(value, float)
        out.append(Clause(kind, key, c["comparator"].upper(), value, quoted))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters(mlflow_safe=True))
def test_mlflow_parses_the_same_clauses(generated):
    clauses, text = generated
    assert _mlflow_clauses(text) == clauses
    assert check(parse_filter(text), RUN_SPEC) == clauses
