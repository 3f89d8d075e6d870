"""yaml_emit.dump writes the bytes yaml.safe_dump(sort_keys=False) writes, whichever emitter it used.

PyYAML 6.0 (uv.lock) with libyaml: its `emitter.py` and libyaml's `emitter.c` pick scalar styles alike and
differ in folding double-quoted scalars and in the simple-key length limit; the data below is drawn to reach both.
"""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components import yaml_emit
from tests.conftest import sample

# Printable ASCII with the characters that change quoting, line breaks, tabs, escapes and non-ASCII text.
_ALPHABET = st.one_of(st.characters(min_codepoint=32, max_codepoint=126),
                      st.sampled_from(list("\n\n  \\\"'#:-{}[]\t\r\x00é日\u00a0\u2028\ufeff\U0001F600")),
                      st.characters(blacklist_categories=("Cs",)))
_TEXT = st.text(alphabet=_ALPHABET, max_size=300)
_KEYS = st.one_of(st.text(alphabet=_ALPHABET, min_size=1, max_size=40),
                  st.integers(min_value=115, max_value=135).map(lambda n: "k" * n))
# JSON and YAML texts in string values (annotations, podSpecPatch, ConfigMap data): quotes inside quoted scalars.
_EMBEDDED = st.dictionaries(st.text(alphabet=_ALPHABET, max_size=20), st.text(alphabet=_ALPHABET, max_size=20),
                            max_size=6).flatmap(lambda d: st.sampled_from([
                                json.dumps(d), json.dumps(d, separators=(",", ":")), yaml.safe_dump(d)]))
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXT, _EMBEDDED)
_DATA = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(_KEYS, inner, max_size=4)), max_leaves=25)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(_KEYS, _DATA, max_size=5))
def test_dump_is_safe_dump(data):
    assert yaml_emit.dump(data) == yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("data", [
    {"k" * 121 + ": 1": 1, "a": ["k" * 125]},
    {"k": "\n'[x -- :[z #\"x'\\x:y'] c cx- a#x{zbx[#\\z\"-[c\n #\\{x\\#z[}#c\n}{}:\n#]cxzac'}\\# y##-z'"},
    {"k" * 123: []},
    {"k" * 129: {"k" * 123: None}},
    {"k" * 128: 1},
])
def test_known_disagreements_are_written_by_pyyaml(data):
    # A long double-quoted scalar with escapes, and keys of 123 to 128 characters: where the emitters do differ.
    assert yaml.dump(data, Dumper=yaml.CSafeDumper, sort_keys=False) != yaml.safe_dump(data, sort_keys=False)
    assert yaml_emit.dump(data) == yaml.safe_dump(data, sort_keys=False)


def test_most_manifests_take_libyaml(monkeypatch):
    manifests = [manifest for _, manifest in sample("dev").manifests()]
    expected = [yaml.safe_dump(manifest, sort_keys=False) for manifest in manifests]
    pure = []
    original = yaml.safe_dump
    monkeypatch.setattr(yaml, "safe_dump", lambda data, **kw: pure.append(data) or original(data, **kw))
    assert [yaml_emit.dump(manifest) for manifest in manifests] == expected
    assert len(pure) < len(manifests) / 4, "the fast path is (nearly) never taken"
