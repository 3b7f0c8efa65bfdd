from connectors import Redactor


def test_masks_the_values_that_were_sent():
    redact = Redactor(["Wanjiru", "TIN12345678"])
    assert redact("No taxpayer TIN12345678 named wanjiru") == "No taxpayer *** named ***"


def test_masks_long_digit_runs_it_was_not_told_about():
    assert Redactor()("person 1234567890 not found; code 42") == "person *** not found; code 42"


def test_bounds_length_and_folds_whitespace():
    out = Redactor()("x\n\n" * 500)
    assert len(out) == 200
    assert "\n" not in out


def test_short_values_are_not_masked_everywhere():
    # masking 'M' (a sex code) would destroy every message
    assert Redactor(["M", None, 7])("Missing element") == "Missing element"
