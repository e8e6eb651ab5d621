"""Message templates: sandboxed Jinja2 with a fixed set of variables (spec §2).

`unknown_variables` walks the parsed template so a campaign naming a variable outside the set
(`investor.nickname`, `foo`) is refused at submission, before anything is queued; `render` fills a
template with strict undefined handling, HTML escaping only for HTML parts; `sample_context` is the
made-up investor that previews show.

The investor's name is not rendered into a queued message: a message for the outbox is rendered with
`investor_name=NAME_SLOT`, and delivery fills the slot (`fill_name`) with the name it reads when it sends,
together with the address. A message body at rest then holds no one's name (names are encrypted at rest,
PIPL), a campaign's fan-out can write its rows in SQL without reading names, and a name corrected after
queueing is the one sent. Pages that show a stored body fill the slot with the name as the reader may see
it (masked unless the role may see personal data).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from flask_babel import lazy_gettext as _l
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

# Every variable path a message template may use (spec §2).
VARIABLES: frozenset[str] = frozenset({
    "investor.name",
    "investor.masked_phone",
    "reward.amount",
    "reward.expires_on",
    "reward.kind_label",
    "campaign.name",
    "unsubscribe_url",
})
_ROOTS: frozenset[str] = frozenset(path.split(".", 1)[0] for path in VARIABLES)

# Where `{{ investor.name }}` was, in a message as stored: U+2063 INVISIBLE SEPARATOR around 投资人姓名.
# It passes Jinja2 and HTML autoescaping unchanged (no markup characters), the case filters (upper, lower,
# title: CJK has no case) and trim (U+2063 is not whitespace) leave it whole, and no text a person types
# holds an invisible separator next to those words. A template that does more with the name than print it
# (index it, test it, `or` a default, a filter) would work on the slot: see `name_transformed`.
NAME_SLOT = "\u2063投资人姓名\u2063"

# Why a template that does more with the name than print it is refused (library) or flagged (campaign editor).
NAME_TRANSFORMED = _l("姓名在发送时才填入：模板中只能原样写 {{ investor.name }}，不能对它做判断、截取、过滤或设默认值")

MAX_REPEAT = 1000  # `"x" * n` and `n ** m` stay small: a template cannot make the renderer allocate gigabytes
MAX_EXPONENT = 64


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's sandbox (no attribute escapes, no mutation) that also bounds repetition and powers."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError("the exponent is too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and times * len(seq) > MAX_REPEAT:
                    raise SecurityError("the repetition is too large")
        return super().call_binop(context, operator, left, right)


_text_env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_html_env = _Sandbox(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)


def _path(node: nodes.Node) -> str | None:
    """Return the dotted path of a name or attribute chain (`investor.name`), or None for anything else."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        parent = _path(node.node)
        return None if parent is None else f"{parent}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        parent = _path(node.node)
        return None if parent is None else f"{parent}.{node.arg.value}"
    return None


def _names(target: nodes.Node) -> set[str]:
    """Return the names a loop or assignment target binds (`x`, or `a, b`)."""
    found = {n.name for n in target.find_all(nodes.Name)}
    if isinstance(target, nodes.Name):
        found.add(target.name)
    return found


def _paths(node: nodes.Node, local: frozenset[str]) -> Iterator[str]:
    """Yield every variable path a node reads, the whole chain once (`investor.name`, not `investor`)."""
    if isinstance(node, nodes.Name):
        if node.ctx == "load" and node.name not in local:
            yield node.name
        return
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        path = _path(node)
        if path is not None:
            if path.split(".", 1)[0] not in local:
                yield path
            return
    if isinstance(node, nodes.For):
        yield from _paths(node.iter, local)
        inner = local | _names(node.target) | {"loop"}
        for child in [*node.body, *node.else_, *([node.test] if node.test is not None else [])]:
            yield from _paths(child, inner)
        return
    if isinstance(node, nodes.Macro | nodes.CallBlock):
        args = node.args if isinstance(node, nodes.Macro) else []
        inner = local | {a.name for a in args} | {"caller", "varargs", "kwargs"}
        for child in node.iter_child_nodes():
            if child not in args:
                yield from _paths(child, inner)
        return
    for child in node.iter_child_nodes():
        yield from _paths(child, local)


def unknown_variables(template_text: str) -> list[str]:
    """Return every variable path the template reads that is not one of `VARIABLES`, sorted, once each.

    A variable set inside the template (`{% set x = ... %}`, a loop target) counts as known from then
    on; a root that is known but read whole (`{{ investor }}`) or a syntax error are reported too, so
    that nothing unrenderable is queued.
    """
    try:
        tree = _text_env.parse(template_text)
    except TemplateSyntaxError as exc:
        return [f"syntax error: {exc.message}"]
    assigned = frozenset(
        {name for a in tree.find_all(nodes.Assign) for name in _names(a.target)}
        | {name for b in tree.find_all(nodes.AssignBlock) for name in _names(b.target)}
        | {m.name for m in tree.find_all(nodes.Macro)}
    )
    found = {p for p in _paths(tree, assigned) if p and p not in VARIABLES}
    if any(True for _ in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport))):
        found.add("{% include/import/extends %}")  # a message is one self-contained template
    return sorted(found)


@lru_cache(maxsize=1024)
def _compiled(template: str, html: bool) -> Template:
    """Compile a template once: a campaign renders the same few texts for every member (compiling cost 2.6 ms)."""
    return (_html_env if html else _text_env).from_string(template)


def plain_parts(template: str) -> list[str | tuple[str, str]] | None:
    """Return a text template as its literal pieces and `(object, field)` variables, if it is nothing more.

    `{{ investor.name }}您好` → `[("investor", "name"), "您好"]`. None for anything else (filters, tags,
    expressions, a syntax error): such a template needs Jinja2 itself. Rendering the pieces — each
    variable as `str()` of its value — gives what `render` gives, so a database can do it for a fan-out.
    """
    try:
        tree = _text_env.parse(template)
    except TemplateSyntaxError:
        return None
    parts: list[str | tuple[str, str]] = []
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                parts.append(node.data)
            elif (isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name)
                  and f"{node.node.name}.{node.attr}" in VARIABLES):
                parts.append((node.node.name, node.attr))
            else:
                return None
    return parts


def name_transformed(template: str) -> bool:
    """Tell whether a template does more with `investor.name` than print it (tests, indexes, filters, `or` …).

    A message is queued with `NAME_SLOT` where the name goes and filled at send time, so such a template
    would work on the slot instead of the name (`{{ investor.name or "客户" }}` never says 客户,
    `{{ investor.name[0] }}` prints an invisible separator). A syntax error is `unknown_variables`' to report.
    """
    try:
        tree = _text_env.parse(template)
    except TemplateSyntaxError:
        return False
    printed = {id(node) for output in tree.find_all(nodes.Output) for node in output.nodes}
    return any(_path(node) == "investor.name" and id(node) not in printed
               for node in tree.find_all((nodes.Getattr, nodes.Getitem)))


def render(template: str, context: Mapping[str, Any], *, html: bool = False) -> str:
    """Render a message template (HTML-escaped when `html`); raise on an unknown variable or a sandbox escape."""
    return _compiled(template, html).render(dict(context))


def _fill(value: Any, name: str, escaped: str, *, html: bool = False) -> Any:
    if isinstance(value, str):
        return value.replace(NAME_SLOT, escaped if html else name) if NAME_SLOT in value else value
    if isinstance(value, Mapping):
        return {k: _fill(v, name, escaped, html=html or k == "html") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill(v, name, escaped, html=html) for v in value]
    return value


def fill_name(content: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    """Return a message's content with the investor's name in every `NAME_SLOT` (HTML-escaped in `html`).

    Every string is filled, however deep (text, subject, SMS params, WeChat data values, url, fallbacks);
    an absent name fills "" (what the template gave for it when names were rendered at queueing).
    """
    name = name or ""
    return _fill(dict(content), name, str(escape(name)))  # escaped as Jinja2's autoescape writes it


def has_slot(content: object) -> bool:
    """Tell whether a message's content (any string in it, however deep) holds a name slot."""
    if isinstance(content, str):
        return NAME_SLOT in content
    if isinstance(content, Mapping):
        return any(has_slot(v) for v in content.values())
    if isinstance(content, list | tuple):
        return any(has_slot(v) for v in content)
    return False


def context(*, investor_name: str, masked_phone: str, reward_amount: str = "", reward_expires_on: str = "",
            reward_kind_label: str = "", campaign_name: str = "", unsubscribe_url: str = "") -> dict[str, Any]:
    """Build a render context with exactly the variables of spec §2."""
    return {
        "investor": {"name": investor_name, "masked_phone": masked_phone},
        "reward": {"amount": reward_amount, "expires_on": reward_expires_on, "kind_label": reward_kind_label},
        "campaign": {"name": campaign_name},
        "unsubscribe_url": unsubscribe_url,
    }


def sample_context(campaign_name: str = "示例活动") -> dict[str, Any]:
    """Return the made-up investor and reward that previews render with (no real person's data)."""
    return context(
        investor_name="张三",
        masked_phone="138****0000",
        reward_amount="50.00",
        reward_expires_on="2026-12-31",
        reward_kind_label="投资红包",
        campaign_name=campaign_name,
        unsubscribe_url="https://example.com/unsubscribe/sample",
    )
