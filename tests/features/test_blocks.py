"""Feature blocks are objects that survive a FeatureUnion (protloc.features._blocks)."""

import numpy as np
import pytest
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import StandardScaler

from protloc.features import CNNFeatureExtractor, FeatureBlock, feature_blocks
from protloc.features._blocks import block_of_column
from protloc.selection import GeneticBlockSelector
from protloc.selection._blocks import resolve_blocks


def _extractor(channels):
    return CNNFeatureExtractor(
        "resnet10t",
        channels=channels,
        weights=None,
        image_size=32,
        device="cpu",
        random_state=0,
        progress=False,
    )


@pytest.fixture(scope="module")
def fitted_union():
    X = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 4)).astype(np.uint8)
    union = FeatureUnion([("image", _extractor("green")), ("cell", _extractor(["red", "blue"]))])
    union.set_output(transform="pandas")
    return union, union.fit_transform(X)


def test_union_blocks_are_objects_with_prefix_and_offsets(fitted_union):
    union, features = fitted_union
    blocks = feature_blocks(union)
    assert all(isinstance(b, FeatureBlock) for b in blocks)
    assert [b.name for b in blocks] == [
        "image__resnet10t__green__image",
        "cell__resnet10t__red__image",
        "cell__resnet10t__blue__image",
    ]
    assert [b.channel for b in blocks] == ["green", "red", "blue"]
    assert blocks[-1].slice.stop == features.shape[1]
    # The column names of the union are exactly the blocks' column names.
    names = [name for b in blocks for name in b.column_names()]
    assert names == list(features.columns)


def test_auto_blocks_from_names_match_the_objects(fitted_union):
    union, features = fitted_union
    columns, names = resolve_blocks("auto", features.shape[1], list(features.columns))
    blocks = feature_blocks(union)
    assert names.tolist() == [b.name for b in blocks]
    for cols, block in zip(columns, blocks):
        assert cols.tolist() == list(range(block.slice.start, block.slice.stop))


def test_selector_takes_the_blocks_of_a_pipeline(fitted_union):
    union, features = fitted_union
    pipe = make_pipeline(union, StandardScaler())
    blocks = feature_blocks(pipe.steps[0][1])
    y = np.repeat([0, 1], 6)
    selector = GeneticBlockSelector(
        blocks=blocks, cv=2, population_size=2, generations=1, elitism=0, progress=False
    ).fit(features.to_numpy(), y)
    assert selector.block_names_.tolist() == [b.name for b in blocks]


def test_block_of_column_reads_only_the_name_format():
    assert block_of_column("image__resnet10t__green__cell-max__3") == (
        "image__resnet10t__green__cell-max"
    )
    assert block_of_column("__3") is None
    assert block_of_column("green__x") is None


def test_steps_without_blocks_are_refused():
    with pytest.raises(TypeError, match="does not describe its output as feature blocks"):
        feature_blocks(StandardScaler())
