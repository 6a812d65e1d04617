"""streambench.scenario: scenario files in, validated typed objects out.

- :func:`load_scenario` / :func:`parse_scenario`: YAML -> :class:`Scenario`, or a
  ScenarioError listing every problem with its field path and line.
- :func:`with_overrides`: the CLI's --rate/--connections/--duration/--target/--seed.
- :func:`compile_body` -> :class:`BodyPool`: synthetic message bodies, pre-rendered.
- :func:`resolve`, :func:`resolve_target`, :func:`secret_fields`, :func:`public_dump`:
  ``${ENV}`` secrets, resolved late and never written out.

The reference for scenario files is docs/scenarios.md.
"""

from streambench.scenario.load import load_scenario, parse_scenario, with_overrides
from streambench.scenario.model import Scenario, parse_duration
from streambench.scenario.secrets import public_dump, resolve, resolve_target, secret_fields
from streambench.scenario.synth import PLACEHOLDERS, BodyPool, compile_body

__all__ = [
    "PLACEHOLDERS",
    "BodyPool",
    "Scenario",
    "compile_body",
    "load_scenario",
    "parse_duration",
    "parse_scenario",
    "public_dump",
    "resolve",
    "resolve_target",
    "secret_fields",
    "with_overrides",
]
