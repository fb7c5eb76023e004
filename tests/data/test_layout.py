"""The data layer's shape: no module above 500 lines, the training-batch datasets in their own module."""

from pathlib import Path

from lightning_siamese import data

DATA = Path(data.__file__).parent


def test_no_data_module_exceeds_500_lines() -> None:
    long = {str(p.relative_to(DATA)): n for p in DATA.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules above 500 lines: {long}"


def test_training_batches_live_beside_the_base_module_and_keep_their_public_names() -> None:
    from lightning_siamese.data.datamodules import batches

    assert data.SampledBatches is batches.SampledBatches and data.KochPairBatches is batches.KochPairBatches
    assert batches.EpochKeySampler.__module__ == "lightning_siamese.data.datamodules.batches"
