"""Enrollment galleries: enroll / identify / remove, chunked search, the file and its failures."""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from lightning_siamese.cli.main import main
from lightning_siamese.cli.tools.identify import run_identify
from lightning_siamese.inference.gallery import Gallery, chunked_search, model_identity
from lightning_siamese.inference.images import labelled_images, read_image
from lightning_siamese.inference.model import load_trained
from lightning_siamese.models.heads import CosFaceHead, KochHead, TripletHead
from tests.conftest import REPO
from tests.models.test_pairwise_similarity import ALL_HEADS, broadcast
from tests.tiny import tiny_checkpoint, write_characters

HEADS = {
    "koch": lambda: KochHead(16).eval(),
    "triplet": lambda: TripletHead(16, normalize=True),
    "cosface": lambda: CosFaceHead(16, num_classes=4),
}


def synthetic(n_classes: int = 5, per_class: int = 3, dim: int = 16, seed: int = 0) -> Gallery:
    g = torch.Generator().manual_seed(seed)
    gallery = Gallery("model-a", {"image_size": 28})
    centres = torch.randn(n_classes, dim, generator=g)
    for c in range(n_classes):
        members = centres[c] + 0.1 * torch.randn(per_class, dim, generator=g)
        gallery.add(members, [f"class{c}"] * per_class, [f"c{c}_{i}.png" for i in range(per_class)])
    return gallery


# --- the gallery itself ---------------------------------------------------------------


def test_prototypes_are_class_means_and_grow_with_enrollment() -> None:
    gallery = synthetic()
    assert gallery.classes == [f"class{c}" for c in range(5)] and len(gallery) == 15
    for c in range(5):
        assert torch.allclose(gallery.prototypes[c], gallery.embeddings[gallery.labels == c].mean(0))
    extra = torch.randn(2, 16)
    gallery.add(extra, ["class1", "new"], ["x.png", "y.png"])
    assert gallery.classes[-1] == "new" and gallery.labels[-2:].tolist() == [1, 5]
    assert torch.allclose(gallery.prototypes[1], torch.cat([gallery.embeddings[3:6], extra[:1]]).mean(0))
    assert torch.allclose(gallery.prototypes[5], extra[1])
    with pytest.raises(ValueError, match="dimension 8 cannot join a gallery of dimension 16"):
        gallery.add(torch.randn(1, 8), ["z"], ["z.png"])


def test_remove_drops_a_class_and_keeps_the_others() -> None:
    gallery = synthetic()
    before = {name: gallery.prototypes[i].clone() for i, name in enumerate(gallery.classes)}
    assert gallery.remove(["class1", "class3"]) == 6
    assert gallery.classes == ["class0", "class2", "class4"] and len(gallery) == 9
    assert not any(p.startswith(("c1_", "c3_")) for p in gallery.paths)
    for i, name in enumerate(gallery.classes):
        assert torch.allclose(gallery.prototypes[i], before[name])
        assert all(gallery.paths[j].startswith(f"c{name[-1]}_") for j in range(len(gallery)) if gallery.labels[j] == i)
    with pytest.raises(KeyError, match=r"'class9' is not in the gallery \(its classes: class0, class2, class4\)"):
        gallery.remove(["class9"])


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize(("chunk_size", "query_block"), [(1, 1), (7, 3), (10_000, 64)])
def test_chunked_search_equals_scoring_everything_at_once(head: str, chunk_size: int, query_block: int) -> None:
    module = HEADS[head]()
    torch.manual_seed(1)
    queries, keys = torch.randn(11, 16), torch.randn(50, 16)
    keys[30] = keys[12]  # a tie: the first key wins, as with argmax
    with torch.no_grad():
        full = module.similarity(queries[:, None], keys[None])
    score, index = chunked_search(queries, keys, module.pairwise_similarity, chunk_size, query_block)
    assert torch.equal(index, full.argmax(1))
    assert torch.allclose(score, full.amax(1), atol=1e-6)
    with pytest.raises(ValueError, match="chunk_size and query_block must be at least 1, got 0 and 64"):
        chunked_search(queries, keys, module.pairwise_similarity, 0)


def test_chunked_search_names_a_broadcast_similarity_passed_by_mistake() -> None:
    head = TripletHead(16)
    with pytest.raises(
        ValueError, match=r"shape \(5,\) for 5 queries and 5 keys, expected \(5, 5\): pass a head's pairwise_similarity"
    ):
        chunked_search(torch.randn(10, 16), torch.randn(10, 16), head.similarity, chunk_size=5, query_block=5)


@pytest.mark.parametrize("head", sorted(ALL_HEADS))
@pytest.mark.parametrize("scoring", ["prototype", "nearest"])
def test_identify_matches_the_broadcast_search(head: str, scoring: str) -> None:
    module = ALL_HEADS[head](16)
    gallery = synthetic(n_classes=40, per_class=3)
    g = torch.Generator().manual_seed(5)
    # Members themselves (identical vectors), near and far queries.
    queries = torch.cat(
        [
            gallery.embeddings[::7],
            gallery.prototypes[::3] + 0.3 * torch.randn(14, 16, generator=g),
            3 * torch.randn(10, 16, generator=g),
        ]
    )
    names = [f"q{i}" for i in range(len(queries))]
    slow_pairwise = partial(broadcast, module)  # the broadcast similarity, as the search ran before
    with torch.no_grad():
        threshold = float(gallery.best(queries, slow_pairwise, scoring)[1].mean())  # some queries known, some not
        fast = gallery.identify(queries, names, module.pairwise_similarity, threshold, scoring, chunk_size=16)
        slow = gallery.identify(queries, names, slow_pairwise, threshold, scoring, chunk_size=16)
    assert [(m.best_class, m.known) for m in fast] == [(m.best_class, m.known) for m in slow]
    torch.testing.assert_close(
        torch.tensor([m.score for m in fast]), torch.tensor([m.score for m in slow]), rtol=1e-5, atol=1e-5
    )


def test_identify_by_prototype_or_nearest_member_with_a_threshold() -> None:
    gallery = synthetic()
    head = TripletHead(16, normalize=True)
    similarity = head.pairwise_similarity
    queries = gallery.prototypes[[2, 0]] + 0.05
    matches = gallery.identify(queries, ["q2", "q0"], similarity, threshold=-0.5)
    assert [(m.query, m.label) for m in matches] == [("q2", "class2"), ("q0", "class0")] and all(
        m.known for m in matches
    )
    far = gallery.identify(-gallery.prototypes[:1], ["far"], similarity, threshold=-0.5)[0]
    assert far.label == "unknown" and not far.known and far.score < -0.5 and far.best_class in gallery.classes
    # Nearest-member scoring: the class of the best single member, scored as that member.
    classes, scores = gallery.best(queries, similarity, "nearest", chunk_size=4)
    with torch.no_grad():
        all_scores = head.similarity(queries[:, None], gallery.embeddings[None])
    assert torch.equal(classes, gallery.labels[all_scores.argmax(1)])
    assert torch.allclose(scores, all_scores.amax(1))
    with pytest.raises(ValueError, match="scoring must be one of"):
        gallery.best(queries, similarity, "mean")


def test_empty_gallery_is_a_clear_error() -> None:
    gallery = synthetic(n_classes=1)
    gallery.remove(["class0"])
    assert len(gallery) == 0 and gallery.prototypes.shape == (0, 16)
    with pytest.raises(ValueError, match="the gallery is empty: enroll some classes first"):
        gallery.identify(torch.randn(1, 16), ["q"], KochHead(16).pairwise_similarity, 0.5)


# --- the file ---------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    gallery = synthetic()
    gallery.save(tmp_path / "g" / "gallery.pt")
    loaded = Gallery.load(tmp_path / "g" / "gallery.pt")
    assert (loaded.classes, loaded.paths, loaded.model_id, loaded.preprocessing) == (
        gallery.classes,
        gallery.paths,
        gallery.model_id,
        gallery.preprocessing,
    )
    assert torch.equal(loaded.embeddings, gallery.embeddings) and torch.equal(loaded.prototypes, gallery.prototypes)
    assert torch.equal(loaded.labels, gallery.labels)
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["gallery.pt"]  # no temporary file left


def test_a_save_that_fails_part_way_leaves_the_old_gallery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gallery.pt"
    synthetic(n_classes=2).save(path)
    old = path.read_bytes()

    def torn_save(obj, file) -> None:
        file.write(b"PK\x03\x04 half a gallery")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", torn_save)
    bigger = synthetic(n_classes=4)
    with pytest.raises(OSError, match="No space left"):
        bigger.save(path)
    assert path.read_bytes() == old and Gallery.load(path).classes == ["class0", "class1"]
    assert [p.name for p in tmp_path.iterdir()] == ["gallery.pt"]


def test_corrupt_truncated_and_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    synthetic().save(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"gallery .*truncated.pt is corrupt or truncated"):
        Gallery.load(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01not a gallery" * 10)
    with pytest.raises(ValueError, match=r"garbage.pt is corrupt or truncated"):
        Gallery.load(garbage)
    foreign = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match=r"weights.pt is not a lightning-siamese gallery"):
        Gallery.load(foreign)
    record = torch.load(good, weights_only=True)
    torch.save(record | {"version": 99}, foreign)
    with pytest.raises(ValueError, match="format version 99; this version reads 1"):
        Gallery.load(foreign)
    torch.save(record | {"prototypes": record["prototypes"][:2]}, foreign)
    with pytest.raises(ValueError, match=r"is inconsistent: 15 paths.*prototypes \(2, 16\) for 5 classes"):
        Gallery.load(foreign)
    with pytest.raises(FileNotFoundError, match=r"gallery .*nowhere.pt does not exist"):
        Gallery.load(tmp_path / "nowhere.pt")


def test_labelled_images_from_class_folders_and_a_list(tmp_path: Path) -> None:
    for member in (
        "people/alice/1.png",
        "people/alice/2.png",
        "people/bob/1.jpg",
        "alpha/Greek/character01/a.png",
        "solo/x.png",
        "people/notes.txt",
    ):
        (tmp_path / member).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / member).write_bytes(b"")
    listing = tmp_path / "lists" / "more.csv"
    listing.parent.mkdir()
    listing.write_text(f'# path,class\n../people/bob/1.jpg,robert\n\n{tmp_path / "solo/x.png"},"with, comma"\n')
    items = labelled_images([str(tmp_path / "people"), str(tmp_path / "alpha"), str(tmp_path / "solo")], str(listing))
    assert [(Path(p).relative_to(tmp_path).as_posix() if Path(p).is_absolute() else p, c) for p, c in items] == [
        ("people/alice/1.png", "alice"),
        ("people/alice/2.png", "alice"),
        ("people/bob/1.jpg", "bob"),
        ("alpha/Greek/character01/a.png", "Greek/character01"),
        ("solo/x.png", "solo"),
        ("lists/../people/bob/1.jpg", "robert"),
        ("solo/x.png", "with, comma"),
    ]
    listing.write_text("a.png,one\nb.png\n")
    with pytest.raises(ValueError, match=r"more.csv line 2: expected 'path,class', got 'b.png'"):
        labelled_images([], str(listing))
    with pytest.raises(FileNotFoundError, match=r"folder .*missing does not exist"):
        labelled_images([str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="nothing to enroll"):
        labelled_images([])


# --- with a checkpoint, through the command -----------------------------------------------


def test_enroll_identify_remove_through_the_command(tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture) -> None:
    enroll_dir = write_characters(tmp_path / "enroll", 4, range(1, 4))
    queries = write_characters(tmp_path / "queries", 4, range(4, 6))
    path = tmp_path / "gallery.pt"
    main(["enroll", str(path), str(enroll_dir), "--ckpt", str(ckpt)])
    assert "Enrolled 12 images (4 new classes, 0 already enrolled, 0 skipped)" in capsys.readouterr().out
    gallery = Gallery.load(path)
    model, data = load_trained(str(ckpt))
    assert gallery.classes == ["char00", "char01", "char02", "char03"] and gallery.model_id == model_identity(ckpt)
    assert gallery.preprocessing == {"image_size": 28, "crop": None, "channels": 1, "invert": True}
    with torch.no_grad():
        expected = model.embed(torch.cat([read_image(p, data) for p in gallery.paths]))
    assert torch.allclose(gallery.embeddings, expected, atol=1e-6)

    # Enrolling again adds nothing; a new class folder adds one class.
    main(
        [
            "enroll",
            str(path),
            str(enroll_dir),
            str(write_characters(tmp_path / "more", 1, range(1, 3)) / "char00"),
            "--ckpt",
            str(ckpt),
        ]
    )
    assert (
        "Enrolled 2 images (0 new classes, 12 already enrolled" in capsys.readouterr().out
    )  # "char00" again: same class

    # identify: the model's own similarity against each prototype, at the stored threshold.
    main(["identify", str(path), str(queries), "--ckpt", str(ckpt), "--output", str(tmp_path / "answers.json")])
    printed = capsys.readouterr().out
    assert "threshold -0.8000 from validation" in printed
    gallery = Gallery.load(path)
    query_paths = sorted(str(p) for p in queries.rglob("*.png"))
    with torch.no_grad():
        scores = model.head.similarity(
            model.embed(torch.cat([read_image(p, data) for p in query_paths]))[:, None], gallery.prototypes[None]
        )
    for p, row in zip(query_paths, scores):
        best = gallery.classes[int(row.argmax())]
        label = best if float(row.max()) >= -0.8 else "unknown"
        assert f"{p}: {label} (score {float(row.max()):.4f}" in printed
    matches = run_identify(str(path), str(ckpt), [str(queries)], 0.5, "nearest", 3)
    assert all(m.label == "unknown" for m in matches)  # -distance never reaches 0.5
    member = enroll_dir / "char02" / "d2.png"  # an enrolled image is its own nearest member, at distance ~0
    (match,) = run_identify(str(path), str(ckpt), [str(member)], None, "nearest", 5)
    assert (match.label, round(match.score, 4)) == ("char02", 0.0)

    main(["remove", str(path), "char01"])
    assert "Removed 1 classes (3 images)" in capsys.readouterr().out
    assert all(
        m.best_class != "char01" for m in run_identify(str(path), str(ckpt), [str(queries)], None, "prototype", 2)
    )


def test_another_checkpoint_cannot_use_the_gallery(tmp_path: Path, ckpt: Path) -> None:
    enroll_dir = write_characters(tmp_path / "enroll", 2, range(1, 3))
    path = tmp_path / "gallery.pt"
    main(["enroll", str(path), str(enroll_dir), "--ckpt", str(ckpt)])
    other = tiny_checkpoint(tmp_path / "other.ckpt", seed=1)
    with pytest.raises(
        ValueError, match=r"gallery .*gallery.pt was built by another model \(TripletHead from .*tiny.ckpt"
    ):
        main(["identify", str(path), str(enroll_dir), "--ckpt", str(other)])
    with pytest.raises(ValueError, match="was built by another model"):
        main(["enroll", str(path), str(enroll_dir), "--ckpt", str(other)])
    copy = shutil.copy(ckpt, tmp_path / "copy.ckpt")  # the same weights in another file: the same model
    main(["identify", str(path), str(enroll_dir), "--ckpt", str(copy)])


def test_an_undecodable_image_is_named_and_nothing_is_lost(
    tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "gallery.pt"
    main(["enroll", str(path), str(write_characters(tmp_path / "first", 2, range(1, 3))), "--ckpt", str(ckpt)])
    before = path.read_bytes()
    batch = write_characters(tmp_path / "second", 3, range(1, 3))
    (batch / "char01" / "d1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ValueError, match=r"cannot decode image .*second/char01/d1.png.*pass --skip_bad_images"):
        main(["enroll", str(path), str(batch), "--ckpt", str(ckpt)])
    assert path.read_bytes() == before
    capsys.readouterr()
    main(["enroll", str(path), str(batch), "--ckpt", str(ckpt), "--skip_bad_images"])
    printed = capsys.readouterr().out
    assert "skipped: cannot decode image" in printed and "second/char01/d1.png" in printed
    gallery = Gallery.load(path)
    assert len(gallery) == 4 + 5 and not any(p.endswith("second/char01/d1.png") for p in gallery.paths)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"")
    (broken / "b.png").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="none of the 2 images could be read"):
        main(["enroll", str(path), str(broken), "--ckpt", str(ckpt), "--skip_bad_images"])
    assert Gallery.load(path).classes == ["char00", "char01", "char02"]


def test_identify_on_an_empty_gallery_and_without_a_threshold(tmp_path: Path, ckpt: Path) -> None:
    path = tmp_path / "gallery.pt"
    enroll_dir = write_characters(tmp_path / "enroll", 1, range(1, 3))
    main(["enroll", str(path), str(enroll_dir), "--ckpt", str(ckpt)])
    main(["remove", str(path), "char00"])
    with pytest.raises(ValueError, match=r"gallery .*gallery.pt is empty: enroll some classes first"):
        main(["identify", str(path), str(enroll_dir), "--ckpt", str(ckpt)])
    bare = tiny_checkpoint(tmp_path / "bare.ckpt", threshold=None)
    path.unlink()
    main(["enroll", str(path), str(enroll_dir), "--ckpt", str(bare)])
    with pytest.raises(ValueError, match=r"bare.ckpt stores no verification threshold.*pass --threshold"):
        main(["identify", str(path), str(enroll_dir), "--ckpt", str(bare)])


@pytest.mark.slow
def test_the_console_command_exits_with_the_message(tmp_path: Path, ckpt: Path) -> None:
    enroll_dir = write_characters(tmp_path / "enroll", 2, range(1, 3))
    path = tmp_path / "gallery.pt"
    main(["enroll", str(path), str(enroll_dir), "--ckpt", str(ckpt)])
    path.write_bytes(path.read_bytes()[:100])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_siamese.cli.main",
            "identify",
            str(path),
            str(enroll_dir),
            "--ckpt",
            str(ckpt),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1 and "gallery.pt is corrupt or truncated" in done.stderr


def test_identify_prefers_the_open_set_threshold_over_the_pair_one() -> None:
    from types import SimpleNamespace

    from lightning_siamese.inference.gallery import identify_threshold

    model = SimpleNamespace(
        openset_threshold=-0.52,
        scoring=SimpleNamespace(openset_far=0.05),
        verification_threshold=0.3,
        verification_threshold_rule="accuracy",
        head=SimpleNamespace(probability=False),
    )
    value, source = identify_threshold(model, "m.ckpt", None)
    assert value == -0.52 and "open-set" in source and "0.05" in source
    assert identify_threshold(model, "m.ckpt", 0.1) == (0.1, "--threshold")
    model.openset_threshold = None
    assert identify_threshold(model, "m.ckpt", None)[0] == 0.3
