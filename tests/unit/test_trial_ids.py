import pytest

from pipeline.errors import InvalidTrialId
from pipeline.sources import sources_for
from pipeline.trial_ids import normalize_trial_id, registry_of

VALID = [
    ("NCT04252118", "ClinicalTrials.gov"),
    ("ChiCTR2100045397", "ChiCTR"),
    ("ChiCTR-IOR-17013155", "ChiCTR"),
    ("ISRCTN83971151", "ISRCTN"),
    ("EUCTR2020-001113-21-FR", "EU-CTR"),
    ("CTRI/2020/04/024775", "CTRI"),
    ("IRCT20200225046632N1", "IRCT"),
    ("DRKS00021208", "DRKS"),
    ("JPRN-jRCTs031190227", "JPRN"),
    ("JPRN-UMIN000039926", "JPRN"),
    ("ACTRN12620000445976", "ANZCTR"),
    ("KCT0005123", "CRiS"),
    ("TCTR20200404004", "TCTR"),
    ("PACTR202004801273802", "PACTR"),
]


@pytest.mark.parametrize("trial_id,registry", VALID)
def test_valid_ids(trial_id, registry):
    assert normalize_trial_id(trial_id) == trial_id
    assert registry_of(trial_id) == registry


def test_nct_is_canonicalized_and_watched_on_both_sources():
    assert normalize_trial_id("  nct04252118 ") == "NCT04252118"
    assert sources_for("NCT04252118") == ("ctgov", "who")
    assert sources_for("ChiCTR2100045397") == ("who",)


@pytest.mark.parametrize(
    "bad",
    ["", "NCT123", "NCT042521189", "NCT04252118; DROP TABLE trials", "NCT04252118\x00", "<script>",
     "FOO12345678", "../../etc/passwd", "NCT04252118&TrialID=x", "ChiCTR-2100045397", 42],
)
def test_invalid_ids_are_rejected_with_a_message(bad):
    with pytest.raises(InvalidTrialId) as info:
        normalize_trial_id(bad)
    assert str(info.value)


@pytest.mark.parametrize(
    "bad",
    ["NCT0425211\uff18",                 # full-width digit eight
     "NCT\u0660\u0664\u0662\u0665\u0662\u0661\u0661\u0668",  # Arabic-Indic digits
     "ISRCTN\u0968\u0969\u0669\u0667\u0661\u0661\u0665\u0661",  # Devanagari / Arabic-Indic mix
     "CTRI/\uff12\uff10\uff12\uff10/05/025114",
     "\uff4ect04252118",                 # full-width n
     "NCT04252118\u200b",               # zero-width space (not stripped by str.strip)
     "NCT0425\u00b2118"],               # superscript two
)
def test_unicode_lookalike_digits_are_rejected(bad):
    """Only ASCII IDs pass: a Unicode digit would reach a URL and a SQL row as a different ID."""
    with pytest.raises(InvalidTrialId):
        normalize_trial_id(bad)
