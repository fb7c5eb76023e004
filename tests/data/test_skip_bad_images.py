"""The one skip-bad-image rule that every source's loader uses: an error naming the file, or a warning and a skip."""

import warnings

import pytest

from lightning_siamese.data.sources.collection import decode_or_skip


def broken() -> tuple:
    raise ValueError("cannot decode image a/b.png: truncated")


def test_a_bad_image_is_an_error_naming_it_and_the_remedy() -> None:
    with pytest.raises(
        ValueError, match=r"^cannot decode image a/b.png: truncated. Remove the file, or set skip_bad_images: true$"
    ):
        decode_or_skip(broken, "a/b.png", skip_bad_images=False, remedy="Remove the file")


def test_with_skip_bad_images_it_is_a_warning_and_the_file_is_listed() -> None:
    skipped: list[str] = []
    with pytest.warns(UserWarning, match=r"^skipping cannot decode image a/b.png: truncated$"):
        assert (
            decode_or_skip(broken, "a/b.png", skip_bad_images=True, remedy="Remove the file", skipped=skipped) is None
        )
    assert skipped == ["a/b.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_or_skip(lambda: ("image", (1, 1)), "ok.png", skip_bad_images=False, remedy="x") == (
            "image",
            (1, 1),
        )


def test_both_loaders_use_it() -> None:
    import inspect

    from lightning_siamese.data.sources import folder, omniglot

    for module in (folder, omniglot):
        source = inspect.getsource(module)
        assert "decode_or_skip(" in source and 'warnings.warn(f"skipping' not in source
