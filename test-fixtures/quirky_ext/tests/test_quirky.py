"""Single-threaded tests of the quirky fixture: every type, method and property once, and
the planted single-threaded bugs shown (the crash in a child process)."""

import os
import subprocess
import sys
import types

import pytest

import ftfixture_quirky as fq
from ftfixture_quirky import _q


def test_tagged_module_is_a_member_descriptor():
    assert isinstance(fq.Tagged.__module__, types.MemberDescriptorType)
    tagged = fq.Tagged()
    assert tagged.__module__ == "quirky"
    assert tagged.describe() == "quirky"


def test_guarded_refuses_secret_attributes():
    guarded = fq.Guarded()
    assert guarded.value() == 42
    assert "secret" in dir(guarded)
    with pytest.raises(RuntimeError, match="attribute access refused"):
        guarded.secret


def test_counter_adds_in_place():
    counter = fq.Counter(2)
    counter += 3
    assert counter.total == 5
    assert repr(counter) == "Counter(5)"
    with pytest.raises(TypeError):
        counter += "a"


def test_uninitialised_counter_reports_itself_but_crashes_on_add():
    counter = fq.Counter.__new__(fq.Counter)
    assert repr(counter) == "Counter(<uninitialised>)"
    with pytest.raises(RuntimeError):
        counter.total
    code = "import ftfixture_quirky as fq; x = fq.Counter.__new__(fq.Counter); x += 1"
    # The child gets TSan's defaults, not the run's options: a crash exits non-zero, and its
    # report stays out of the run's logs (this test expects it).
    env = {k: v for k, v in os.environ.items() if k != "TSAN_OPTIONS"}
    crashed = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
    assert crashed.returncode != 0


def test_echo_returns_its_argument_but_breaks_the_contract_for_text():
    assert fq.echo(1) == 1
    with pytest.raises(SystemError, match="returned a result with an exception set"):
        fq.echo("a")


def test_thing_has_a_short_tp_name_and_a_python_subclass():
    assert _q.Thing.__module__ == "_q"
    assert fq.Thing.__mro__[1] is _q.Thing
    thing = fq.Thing("x")
    assert thing.label == "x"
    thing.label = None
    assert thing.describe() == "Thing(None)"
    assert fq.Thing().shout() == "THING('THING')"
    with pytest.raises(TypeError):
        del thing.label
