import sys

import ftfixture_gil


def test_answer():
    assert ftfixture_gil.answer() == 42


def test_import_state_is_observable():
    # Under PYTHON_GIL=0 the GIL stays off; otherwise this import turned it on.
    assert isinstance(sys._is_gil_enabled(), bool)
