"""The `scaled` note names its factor by value (issue 22 (10)): "N = 2 times too large"
sat in a note whose N was the batch size (4), one name for two things."""

from __future__ import annotations

import re

import pytest

from jaxcnn.check.classify import describe_scale


@pytest.mark.parametrize(("alpha", "text", "says"), [
    (2.0, "2", "2 times too large: a factor of 2 too many"),
    (0.5, "1/2", "2 times too small: a division by 2 too many"),
    (0.25, "1/4", "4 times too small: a division by 4 too many"),
    (-3.0, "-3", "3 times too large"),
])
def test_the_scale_note_names_the_factor_by_its_value_never_n(alpha, text, says):
    shown, hint = describe_scale(alpha)
    assert shown == text and hint.startswith(says)
    assert not re.search(r"\bN\b", hint)  # N is the batch size wherever a note uses it
