"""Enrollment on real data: Omniglot validation characters enrolled into a gallery, held-out drawings identified.

    python benchmarks/gallery_omniglot.py --ckpt CKPT [--zip data/omniglot/images_evaluation.zip] [--shots 1 5]

The checkpoint's training never saw these alphabets (they are experiments/omniglot_cpu.yaml's
validation alphabets). Five alphabets are enrolled with drawers 1..K of each character
(``lightning-siamese enroll``'s own code); two other alphabets are "unknown" characters for
choosing the threshold, and three more are unknown characters for testing it. The threshold
is the one that answers most calibration queries right (drawers 11-15 of the enrolled
characters, and of the calibration alphabets); the test queries are drawers 16-20 of the
enrolled characters (known) and of the three test alphabets (unknown). Reported: closed-set
accuracy (best class, known queries only), open-set accuracy at the calibrated threshold (known
queries must name their class, unknown ones must answer "unknown"), and the AUC of the best
score separating known from unknown queries.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from lightning_siamese.cli.tools.enroll import run_enroll
from lightning_siamese.cli.tools.identify import run_identify
from lightning_siamese.inference.gallery import embed_files, open_for_model

ENROLLED = ["Angelic", "Atemayar_Qelisayer", "Aurek-Besh", "Avesta", "Keble"]
UNKNOWN_CALIBRATION = ["Mongolian", "Oriya"]
UNKNOWN_TEST = ["Sylheti", "Syriac_(Serto)", "ULOG"]


def extract(archive: str, target: Path) -> Path:
    with zipfile.ZipFile(archive) as z:
        z.extractall(target)
    (root,) = [p for p in target.iterdir() if p.is_dir()]
    return root


def drawings(root: Path, alphabets: list[str], drawers: range) -> list[tuple[str, str]]:
    """(path, class) of the given drawers' images; the class is ``Alphabet/characterNN`` as enroll names it."""
    out = []
    for alphabet in alphabets:
        for path in sorted((root / alphabet).rglob("*.png")):
            if int(path.stem.split("_")[1]) in drawers:
                out.append((str(path), f"{alphabet}/{path.parent.name}"))
    return out


def best_threshold(scores: np.ndarray, correct_if_known: np.ndarray, unknown: np.ndarray) -> float:
    """The threshold that answers most queries right: known ones with their class, unknown ones 'unknown'."""
    candidates = np.concatenate([np.sort(scores), [np.inf]])
    right = [(((scores >= t) & correct_if_known) | ((scores < t) & unknown)).mean() for t in candidates]
    return float(candidates[int(np.argmax(right))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--zip", default="data/omniglot/images_evaluation.zip")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--out", default="benchmarks/results/gallery_omniglot.json")
    args = parser.parse_args()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        root = extract(args.zip, Path(tmp) / "omniglot")
        # Queries, embedded once with the checkpoint (as identify embeds them).
        calibration = drawings(root, ENROLLED + UNKNOWN_CALIBRATION, range(11, 16))
        test = drawings(root, ENROLLED + UNKNOWN_TEST, range(16, 21))
        for shots in args.shots:
            enroll_list = Path(tmp) / f"enroll{shots}.csv"
            enroll_list.write_text("".join(f"{p},{c}\n" for p, c in drawings(root, ENROLLED, range(1, shots + 1))))
            gallery_path = str(Path(tmp) / f"gallery{shots}.pt")
            run_enroll(gallery_path, args.ckpt, [], str(enroll_list), skip_bad=False)
            gallery, model, data = open_for_model(gallery_path, args.ckpt, create=False)
            embedded = {
                name: embed_files(model, data, [p for p, _ in queries])[0]
                for name, queries in (("calibration", calibration), ("test", test))
            }
            for scoring in ("prototype", "nearest") if shots > 1 else ("nearest",):
                result = {"shots": shots, "scoring": scoring, "classes": len(gallery.classes), "members": len(gallery)}
                for name, queries in (("calibration", calibration), ("test", test)):
                    classes, scores = gallery.best(embedded[name], model.head.pairwise_similarity, scoring)
                    truth = [c for _, c in queries]
                    unknown = np.array([c not in gallery.classes for c in truth])
                    correct = np.array([gallery.classes[k] == c for k, c in zip(classes.tolist(), truth)])
                    scores = scores.numpy()
                    if name == "calibration":
                        threshold = best_threshold(scores, correct, unknown)
                        continue
                    result |= {
                        "threshold": threshold,
                        "known_queries": int((~unknown).sum()),
                        "unknown_queries": int(unknown.sum()),
                        "closed_set_acc": 100 * correct[~unknown].mean(),
                        "open_set_acc": 100
                        * (((scores >= threshold) & correct) | ((scores < threshold) & unknown)).mean(),
                        "known_accepted_right": 100 * ((scores >= threshold) & correct)[~unknown].mean(),
                        "unknown_rejected": 100 * (scores < threshold)[unknown].mean(),
                        "rejection_auc": roc_auc_score(~unknown, scores),
                    }
                records.append(result)
                print(json.dumps(result), flush=True)
        # An example of the command's own output (prototype scoring, the default): six test drawings, known and unknown.
        shown = next(r for r in reversed(records) if r["scoring"] == "prototype")
        examples = [test[i][0] for i in np.linspace(0, len(test) - 1, 6).round().astype(int)]
        print(
            f"\n$ lightning-siamese identify gallery{shown['shots']}.pt <6 test drawings> --ckpt CKPT --threshold {shown['threshold']:.4f}"
        )
        run_identify(
            str(Path(tmp) / f"gallery{shown['shots']}.pt"), args.ckpt, examples, shown["threshold"], "prototype", 1024
        )
    Path(args.out).write_text(json.dumps(records, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
