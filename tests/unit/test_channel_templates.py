from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from channels.templates import VARIABLES, render, sample_context, unknown_variables


def test_every_spec_variable_is_known() -> None:
    text = " ".join("{{ " + path + " }}" for path in sorted(VARIABLES))
    assert unknown_variables(text) == []


@pytest.mark.parametrize(
    ("template", "unknown"),
    [
        ("{{ investor.nickname }}您好", ["investor.nickname"]),
        ("{{ foo }}", ["foo"]),
        ("{{ investor }}", ["investor"]),
        ("{{ investor['id_number'] }}", ["investor.id_number"]),
        ("{% if reward.secret > 1 %}x{% endif %}", ["reward.secret"]),
        ("{{ reward.amount|default(bar) }}", ["bar"]),
        ("{% for x in items %}{{ x.name }}{{ loop.index }}{% endfor %}", ["items"]),
        ("{% set who = investor.name %}{{ who }}{{ whom }}", ["whom"]),
        ("{{ foo }}{{ foo }}{{ a.b.c }}", ["a.b.c", "foo"]),
        ("{% set block %}{{ investor.name }}{% endset %}{{ block }}", []),
        ("{{ investor.name.__class__ }}", ["investor.name.__class__"]),
        ("{{ range(3)|join }}", ["range"]),
        ("{{ investor.name }}{{ reward.amount }}", []),
    ],
)
def test_unknown_variables_finds_every_path_outside_the_spec_set(template: str, unknown: list[str]) -> None:
    assert unknown_variables(template) == unknown


@pytest.mark.parametrize("template", [
    "{% include 'other.html' %}", "{% extends 'base.html' %}", "{% import 'm.html' as m %}",
    "{% from 'm.html' import x %}",
])
def test_loading_other_templates_is_reported(template: str) -> None:
    assert unknown_variables(template) != []


def test_a_syntax_error_is_reported_as_unknown_rather_than_passing() -> None:
    found = unknown_variables("{{ investor.name ")
    assert len(found) == 1 and found[0].startswith("syntax error")


def test_render_fills_the_sample_context() -> None:
    text = "{{ investor.name }}您好，{{ reward.amount }}元{{ reward.kind_label }}已到账（{{ campaign.name }}）"
    assert render(text, sample_context("新手礼包")) == "张三您好，50.00元投资红包已到账（新手礼包）"


def test_render_escapes_html_only_in_html_parts() -> None:
    ctx = sample_context()
    ctx["investor"]["name"] = "<b>李&四</b>"
    assert render("{{ investor.name }}", ctx) == "<b>李&四</b>"
    assert render("<p>{{ investor.name }}</p>", ctx, html=True) == "<p>&lt;b&gt;李&amp;四&lt;/b&gt;</p>"


def test_render_refuses_an_unknown_variable_instead_of_printing_nothing() -> None:
    with pytest.raises(UndefinedError):
        render("{{ investor.nickname }}", sample_context())


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ investor.__class__.__init__.__globals__ }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ 'a'.format.__globals__ }}",
    ],
)
def test_render_refuses_sandbox_escapes(template: str) -> None:
    with pytest.raises((SecurityError, UndefinedError)):
        render(template, sample_context())


@pytest.mark.parametrize("template", ["{{ 'x' * 100000000 }}", "{{ 9 ** 9999999 }}", "{{ [1] * 10**6 }}"])
def test_render_refuses_templates_that_would_exhaust_memory(template: str) -> None:
    with pytest.raises(SecurityError):
        render(template, sample_context())


def test_small_arithmetic_still_renders() -> None:
    assert render("{{ '-' * 3 }}{{ 2 ** 3 }}", sample_context()) == "---8"


def test_render_refuses_to_mutate_the_context() -> None:
    with pytest.raises(SecurityError):
        render("{{ investor.update({'name': 'x'}) }}", sample_context())


def test_sample_context_holds_no_full_phone() -> None:
    assert "*" in sample_context()["investor"]["masked_phone"]
