"""The user guides keep up with the code: every setting is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from inwire.services.core.settings import CoreSettings
from inwire.services.modelops.settings import ModelOpsSettings
from inwire.services.synthex.settings import SynthexSettings
from inwire.services.training.settings import TrainingSettings

DOCS = Path(__file__).parents[1] / "docs"


@pytest.mark.parametrize(
    ("settings", "guide"),
    [
        (CoreSettings, "core.md"),
        (SynthexSettings, "synthex.md"),
        (TrainingSettings, "training.md"),
        (ModelOpsSettings, "modelops.md"),
    ],
)
def test_every_setting_appears_in_the_user_guide(settings: type, guide: str) -> None:
    text = (DOCS / guide).read_text()
    missing = [name for name in settings.model_fields if f"`{name}`" not in text]
    assert missing == []
