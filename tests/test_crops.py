import numpy as np
import pytest
from sklearn.model_selection import GroupKFold
from sklearn.utils._indexing import _safe_indexing

from protloc._containers import CellCrops


def _crops():
    cells = np.arange(5 * 2 * 2 * 1, dtype=np.uint8).reshape(5, 2, 2, 1)
    return CellCrops(
        crops={"cell": cells, "nucleus": cells + 100},
        image_index=np.array([0, 0, 1, 3, 3]),
        n_images=4,
        channels=("green",),
        properties={"area": np.array([10, 11, 12, 13, 14])},
        ids=np.array(["a", "b", "c", "d"], dtype=object),
        n_dropped=np.array([0, 1, 0, 2]),
    )


def test_indexing_selects_images_and_renumbers_cells():
    crops = _crops()
    sub = _safe_indexing(crops, np.array([3, 2, 0]))
    assert isinstance(sub, CellCrops) and len(sub) == 3
    assert sub.image_index.tolist() == [0, 0, 2, 2]
    assert sub.properties["area"].tolist() == [13, 14, 10, 11]
    assert sub.ids.tolist() == ["d", "c", "a"] and sub.n_dropped.tolist() == [2, 0, 0]
    np.testing.assert_array_equal(sub.crops["nucleus"][0], crops.crops["nucleus"][3])
    assert sub.cells_per_image.tolist() == [2, 0, 2]
    assert crops[np.array([False, True, False, False])].n_cells == 1


def test_groups_feed_group_kfold():
    crops = _crops()
    rows = np.zeros((crops.n_cells, 1))
    for train, test in GroupKFold(n_splits=2).split(rows, groups=crops.groups):
        assert not set(crops.groups[train]) & set(crops.groups[test])


@pytest.mark.parametrize(
    "change, match",
    [
        ({"image_index": np.array([0, 1, 0, 1, 1])}, "non-decreasing"),
        ({"image_index": np.array([0, 0, 1, 3, 4])}, "non-decreasing"),
        ({"channels": ("green", "blue")}, "channels"),
        ({"properties": {"area": np.array([1])}}, "has 1 rows for 5 cells"),
        ({"crops": {}}, "at least one region"),
    ],
)
def test_invalid_containers(change, match):
    crops = _crops()
    kwargs = dict(
        crops=crops.crops,
        image_index=crops.image_index,
        n_images=4,
        channels=crops.channels,
        properties=crops.properties,
    )
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        CellCrops(**kwargs)
